package wasmhost

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// The consume-side kinds of ABI version 2 (sdk/ABI.md section 10): a
// consume interceptor (kpipe_on_consume) and a deserializer
// (kpipe_deserialize). They run on records a consumer fetched, which they
// take as the *kgo.Record the client returned; the host encodes each one
// with its offset, and a record no plugin changes is never copied.

// ConsumeInterceptor is a module loaded as a consume interceptor. It
// implements plugins.ConsumeInterceptor, plugins.BatchConsumeInterceptor
// and plugins.Closer.
type ConsumeInterceptor struct{ p *Plugin }

// Deserializer is a module loaded as a deserializer. It implements
// plugins.Deserializer and plugins.Closer.
type Deserializer struct{ p *Plugin }

var (
	_ plugins.BatchConsumeInterceptor = (*ConsumeInterceptor)(nil)
	_ plugins.Closer                  = (*ConsumeInterceptor)(nil)
	_ plugins.Deserializer            = (*Deserializer)(nil)
	_ plugins.Closer                  = (*Deserializer)(nil)
	_ plugins.BatchConsumeInterceptor = (*Plugin)(nil)
	_ plugins.Deserializer            = (*Plugin)(nil)
)

// LoadConsumeInterceptor loads wasm as Load does, as a consume interceptor:
// the module must declare the kind, which needs the marker of ABI v2.
func (h *Host) LoadConsumeInterceptor(ctx context.Context, name string, wasm []byte, opts ...PluginOption) (*ConsumeInterceptor, error) {
	p, err := h.Load(ctx, name, wasm, plugins.KindConsumeInterceptor, opts...)
	if err != nil {
		return nil, err
	}
	return &ConsumeInterceptor{p}, nil
}

// LoadDeserializer loads wasm as Load does, as a deserializer.
func (h *Host) LoadDeserializer(ctx context.Context, name string, wasm []byte, opts ...PluginOption) (*Deserializer, error) {
	p, err := h.Load(ctx, name, wasm, plugins.KindDeserializer, opts...)
	if err != nil {
		return nil, err
	}
	return &Deserializer{p}, nil
}

// ConsumeInterceptor returns the consume interceptor view of p, or nil if p
// is not one.
func (p *Plugin) ConsumeInterceptor() *ConsumeInterceptor {
	if p.kinds&plugins.KindConsumeInterceptor == 0 {
		return nil
	}
	return &ConsumeInterceptor{p}
}

// Deserializer returns the deserializer view of p, or nil if p is not one.
func (p *Plugin) Deserializer() *Deserializer {
	if p.kinds&plugins.KindDeserializer == 0 {
		return nil
	}
	return &Deserializer{p}
}

// Plugin returns the loaded module.
func (c *ConsumeInterceptor) Plugin() *Plugin { return c.p }

// OnConsume implements plugins.ConsumeInterceptor; see Plugin.OnConsume.
func (c *ConsumeInterceptor) OnConsume(ctx context.Context, r *kgo.Record) (plugins.Verdict, error) {
	return c.p.OnConsume(ctx, r)
}

// OnConsumeBatch implements plugins.BatchConsumeInterceptor; see
// Plugin.OnConsumeBatch.
func (c *ConsumeInterceptor) OnConsumeBatch(ctx context.Context, rs []*kgo.Record, verdicts []plugins.Verdict, errs []error) error {
	return c.p.OnConsumeBatch(ctx, rs, verdicts, errs)
}

// Close closes the module; see Plugin.Close.
func (c *ConsumeInterceptor) Close(ctx context.Context) error { return c.p.Close(ctx) }

// Plugin returns the loaded module.
func (d *Deserializer) Plugin() *Plugin { return d.p }

// Deserialize implements plugins.Deserializer; see Plugin.Deserialize.
func (d *Deserializer) Deserialize(ctx context.Context, target plugins.Target, r *kgo.Record) ([]byte, error) {
	return d.p.Deserialize(ctx, target, r)
}

// Close closes the module; see Plugin.Close.
func (d *Deserializer) Close(ctx context.Context) error { return d.p.Close(ctx) }

// OnConsume implements plugins.ConsumeInterceptor by calling
// kpipe_on_consume (ABI 10.2) with the consumed record. A result record (or
// edit list, with KPIPE_FEATURE_EDITS) is decoded and validated completely
// before r is changed; then r's key, value, headers and timestamp are the
// result's, sharing one new backing array, and its topic, partition and
// offset stay. On any error r is unchanged.
func (p *Plugin) OnConsume(ctx context.Context, r *kgo.Record) (plugins.Verdict, error) {
	const h = hookOnConsume
	n := abi.ConsumedSize(r)
	if err := p.checkSize(h, n); err != nil {
		return plugins.Continue, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return plugins.Continue, err
	}
	v, err := inst.onConsume(ctx, r, n)
	p.end(inst, err)
	return v, err
}

// onConsume runs kpipe_on_consume for r, of encoded size n, on the
// instance. A *Fault means that the caller must discard the instance.
func (inst *instance) onConsume(ctx context.Context, r *kgo.Record, n int) (plugins.Verdict, error) {
	const h = hookOnConsume
	in, f := inst.input(ctx, h, n)
	if f != nil {
		return plugins.Continue, f
	}
	abi.PutConsumed(in, r)
	inst.stack[0] = uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		return plugins.Continue, f
	}
	switch {
	case res == 0:
		return plugins.Continue, nil
	case res == abi.StatusDrop:
		return plugins.Drop, nil
	case res == abi.StatusError:
		return plugins.Continue, inst.guestError(h)
	}
	out, f := inst.output(h, res)
	if f != nil {
		return plugins.Continue, f
	}
	view := abi.ConsumedView(r)
	if err := inst.decodeSendResult(out, &view); err != nil {
		return plugins.Continue, inst.p.fault(h, FaultInvalidOutput, err)
	}
	abi.ApplyConsumed(&view, r)
	return plugins.Continue, nil
}

// OnConsumeBatch implements plugins.BatchConsumeInterceptor: it runs
// kpipe_on_consume for each record of rs, all on one instance taken from
// the pool once (ABI v2 has no batch export for it). Each record gets what
// OnConsume would have returned for it; after a fault the records that
// follow run on a fresh instance. It returns an error, and sets no errs[i],
// only when no instance could be had at all.
func (p *Plugin) OnConsumeBatch(ctx context.Context, rs []*kgo.Record, verdicts []plugins.Verdict, errs []error) error {
	const h = hookOnConsume
	verdicts, errs = verdicts[:len(rs)], errs[:len(rs)]
	for i := range rs {
		verdicts[i], errs[i] = plugins.Continue, nil
	}
	step := func(inst *instance, i int, _ bool) (int, error) {
		n := abi.ConsumedSize(rs[i])
		if err := p.checkSize(h, n); err != nil {
			errs[i] = err
			return i + 1, nil
		}
		verdicts[i], errs[i] = inst.onConsume(ctx, rs[i], n)
		return i + 1, errs[i]
	}
	return p.batchLoop(ctx, h, len(rs), step, func(i int, err error) {
		for ; i < len(rs); i++ {
			verdicts[i], errs[i] = plugins.Continue, err
		}
	})
}

// Deserialize implements plugins.Deserializer by calling kpipe_deserialize
// (ABI 10.3) with the consumed record. The result is a copy owned by the
// caller: empty but non-nil for a zero-length result, nil for KPIPE_NULL.
func (p *Plugin) Deserialize(ctx context.Context, target plugins.Target, r *kgo.Record) ([]byte, error) {
	const h = hookDeserialize
	n := abi.ConsumedSize(r)
	if err := p.checkSize(h, n); err != nil {
		return nil, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return nil, err
	}
	b, err := inst.deserialize(ctx, target, r, n)
	p.end(inst, err)
	return b, err
}

// deserialize runs kpipe_deserialize on the instance. A *Fault means that
// the caller must discard the instance.
func (inst *instance) deserialize(ctx context.Context, target plugins.Target, r *kgo.Record, n int) ([]byte, error) {
	const h = hookDeserialize
	in, f := inst.input(ctx, h, n)
	if f != nil {
		return nil, f
	}
	abi.PutConsumed(in, r)
	inst.stack[0], inst.stack[1] = uint64(target), uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		return nil, f
	}
	switch res {
	case abi.StatusNull:
		return nil, nil
	case abi.StatusError:
		return nil, inst.guestError(h)
	}
	if res < 0 {
		return nil, inst.p.fault(h, FaultInvalidOutput, fmt.Errorf("result %d is not a status code of %s", res, hookNames[h]))
	}
	out, f := inst.output(h, res)
	if f != nil {
		return nil, f
	}
	return append(make([]byte, 0, len(out)), out...), nil
}
