package wasmhost

import (
	"context"

	"github.com/kpipe/kpipe/plugins"
)

// The typed views of a Plugin: loading a module as an interceptor yields an
// Interceptor, which has the interceptor hooks and no others, so that using
// a module as the wrong kind is a compile-time error. Each view is what the
// pipeline is given for its kind; Plugin returns the loaded module, for its
// name, kinds and Stats.

// Interceptor is a module loaded as an interceptor. It implements
// plugins.Interceptor, plugins.BatchInterceptor, plugins.AckBatcher,
// plugins.AckObserver and plugins.Closer.
type Interceptor struct{ p *Plugin }

// Serializer is a module loaded as a serializer. It implements
// plugins.Serializer and plugins.Closer.
type Serializer struct{ p *Plugin }

// Partitioner is a module loaded as a partitioner. It implements
// plugins.Partitioner, plugins.BatchPartitioner and plugins.Closer.
type Partitioner struct{ p *Plugin }

var (
	_ plugins.BatchInterceptor = (*Interceptor)(nil)
	_ plugins.AckBatcher       = (*Interceptor)(nil)
	_ plugins.AckObserver      = (*Interceptor)(nil)
	_ plugins.Closer           = (*Interceptor)(nil)
	_ plugins.Serializer       = (*Serializer)(nil)
	_ plugins.Closer           = (*Serializer)(nil)
	_ plugins.BatchPartitioner = (*Partitioner)(nil)
	_ plugins.Closer           = (*Partitioner)(nil)
)

// LoadInterceptor loads wasm as Load does, as an interceptor: the module
// must declare the kind.
func (h *Host) LoadInterceptor(ctx context.Context, name string, wasm []byte, opts ...PluginOption) (*Interceptor, error) {
	p, err := h.Load(ctx, name, wasm, plugins.KindInterceptor, opts...)
	if err != nil {
		return nil, err
	}
	return &Interceptor{p}, nil
}

// LoadSerializer loads wasm as Load does, as a serializer.
func (h *Host) LoadSerializer(ctx context.Context, name string, wasm []byte, opts ...PluginOption) (*Serializer, error) {
	p, err := h.Load(ctx, name, wasm, plugins.KindSerializer, opts...)
	if err != nil {
		return nil, err
	}
	return &Serializer{p}, nil
}

// LoadPartitioner loads wasm as Load does, as a partitioner.
func (h *Host) LoadPartitioner(ctx context.Context, name string, wasm []byte, opts ...PluginOption) (*Partitioner, error) {
	p, err := h.Load(ctx, name, wasm, plugins.KindPartitioner, opts...)
	if err != nil {
		return nil, err
	}
	return &Partitioner{p}, nil
}

// Interceptor returns the interceptor view of p, or nil if p was not
// loaded as one (its kind at Load did not include it; kind 0 includes what
// the module declares).
func (p *Plugin) Interceptor() *Interceptor {
	if p.kinds&plugins.KindInterceptor == 0 {
		return nil
	}
	return &Interceptor{p}
}

// Serializer returns the serializer view of p, or nil if p is not one.
func (p *Plugin) Serializer() *Serializer {
	if p.kinds&plugins.KindSerializer == 0 {
		return nil
	}
	return &Serializer{p}
}

// Partitioner returns the partitioner view of p, or nil if p is not one.
func (p *Plugin) Partitioner() *Partitioner {
	if p.kinds&plugins.KindPartitioner == 0 {
		return nil
	}
	return &Partitioner{p}
}

// Plugin returns the loaded module.
func (i *Interceptor) Plugin() *Plugin { return i.p }

// OnSend implements plugins.Interceptor; see Plugin.OnSend.
func (i *Interceptor) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	return i.p.OnSend(ctx, r)
}

// OnAck implements plugins.Interceptor; see Plugin.OnAck.
func (i *Interceptor) OnAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) error {
	return i.p.OnAck(ctx, r, ack)
}

// OnSendBatch implements plugins.BatchInterceptor; see Plugin.OnSendBatch.
func (i *Interceptor) OnSendBatch(ctx context.Context, rs []*plugins.Record, verdicts []plugins.Verdict, errs []error) error {
	return i.p.OnSendBatch(ctx, rs, verdicts, errs)
}

// OnAckBatch implements plugins.AckBatcher; see Plugin.OnAckBatch.
func (i *Interceptor) OnAckBatch(ctx context.Context, rs []*plugins.Record, acks []plugins.Ack, errs []error) error {
	return i.p.OnAckBatch(ctx, rs, acks, errs)
}

// WantsAcks implements plugins.AckObserver; see Plugin.WantsAcks.
func (i *Interceptor) WantsAcks() bool { return i.p.WantsAcks() }

// Close closes the module; see Plugin.Close.
func (i *Interceptor) Close(ctx context.Context) error { return i.p.Close(ctx) }

// Plugin returns the loaded module.
func (s *Serializer) Plugin() *Plugin { return s.p }

// Serialize implements plugins.Serializer; see Plugin.Serialize.
func (s *Serializer) Serialize(ctx context.Context, target plugins.Target, r *plugins.Record) ([]byte, error) {
	return s.p.Serialize(ctx, target, r)
}

// Close closes the module; see Plugin.Close.
func (s *Serializer) Close(ctx context.Context) error { return s.p.Close(ctx) }

// Plugin returns the loaded module.
func (t *Partitioner) Plugin() *Plugin { return t.p }

// Partition implements plugins.Partitioner; see Plugin.Partition.
func (t *Partitioner) Partition(ctx context.Context, r *plugins.Record, numPartitions int32) (int32, error) {
	return t.p.Partition(ctx, r, numPartitions)
}

// PartitionBatch implements plugins.BatchPartitioner; see
// Plugin.PartitionBatch.
func (t *Partitioner) PartitionBatch(ctx context.Context, rs []*plugins.Record, numPartitions, parts []int32, errs []error) error {
	return t.p.PartitionBatch(ctx, rs, numPartitions, parts, errs)
}

// Close closes the module; see Plugin.Close.
func (t *Partitioner) Close(ctx context.Context) error { return t.p.Close(ctx) }
