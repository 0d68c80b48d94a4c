package wasmhost

import (
	"context"
	"fmt"

	"github.com/kpipe/kpipe/internal/abi"
	"github.com/kpipe/kpipe/plugins"
)

// Compile-time checks that Plugin implements the plugin interfaces.
var (
	_ plugins.Interceptor = (*Plugin)(nil)
	_ plugins.Serializer  = (*Plugin)(nil)
	_ plugins.Partitioner = (*Plugin)(nil)
)

// begin checks that the plugin implements hook h, counts the call, and
// takes an instance.
func (p *Plugin) begin(ctx context.Context, h hook) (*instance, error) {
	if p.kinds&hookKinds[h] == 0 {
		return nil, fmt.Errorf("wasmhost: plugin %q: %s: the plugin is not a %s (it declares %s)",
			p.name, hookNames[h], kindNames(hookKinds[h]), kindNames(p.kinds))
	}
	p.stats.calls[h].Add(1)
	return p.acquire(ctx, h)
}

// checkSize fails a call whose input is too large for the ABI, before it
// takes an instance.
func (p *Plugin) checkSize(h hook, n int) error {
	if n > abi.MaxSize {
		return fmt.Errorf("wasmhost: plugin %q: %s: input of %d bytes is larger than the ABI allows (%d)", p.name, hookNames[h], n, abi.MaxSize)
	}
	return nil
}

// putRecord writes the n-byte encoding of r into the instance's input
// buffer.
func (inst *instance) putRecord(ctx context.Context, h hook, r *plugins.Record, n int) *Fault {
	in, f := inst.input(ctx, h, n)
	if f != nil {
		return f
	}
	abi.PutRecord(in, r)
	return nil
}

// OnSend implements plugins.Interceptor by calling kpipe_on_send (ABI 5.1).
// A result record is decoded and validated completely before r is changed;
// its bytes share one new backing array. On any error r is unchanged.
func (p *Plugin) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	const h = hookOnSend
	n := abi.RecordSize(r)
	if err := p.checkSize(h, n); err != nil {
		return plugins.Continue, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return plugins.Continue, err
	}
	if f := inst.putRecord(ctx, h, r, n); f != nil {
		p.discard(inst)
		return plugins.Continue, f
	}
	inst.stack[0] = uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		p.discard(inst)
		return plugins.Continue, f
	}
	switch {
	case res == 0:
		p.release(inst)
		return plugins.Continue, nil
	case res == abi.StatusDrop:
		p.release(inst)
		return plugins.Drop, nil
	case res == abi.StatusError:
		e := inst.guestError(h)
		p.release(inst)
		return plugins.Continue, e
	}
	out, f := inst.output(h, res)
	if f != nil {
		p.discard(inst)
		return plugins.Continue, f
	}
	if err := abi.DecodeRecord(out, r); err != nil {
		p.discard(inst)
		return plugins.Continue, p.fault(h, FaultInvalidOutput, err)
	}
	p.release(inst)
	return plugins.Continue, nil
}

// OnAck implements plugins.Interceptor by calling kpipe_on_ack with the
// acknowledgement encoding (ABI 4.2, 5.2). For an interceptor that does not
// export kpipe_on_ack (see WantsAcks) it does nothing and returns nil; the
// call is not counted in Stats.
func (p *Plugin) OnAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) error {
	const h = hookOnAck
	if p.kinds&plugins.KindInterceptor != 0 && !p.wantsAcks {
		return nil
	}
	var errText string
	if ack.Err != nil {
		errText = ack.Err.Error()
	}
	size := abi.AckSize(errText, r)
	if err := p.checkSize(h, size); err != nil {
		return err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return err
	}
	in, f := inst.input(ctx, h, size)
	if f != nil {
		p.discard(inst)
		return f
	}
	abi.PutAck(in, ack.Offset, errText, r)
	inst.stack[0] = uint64(size)
	res, f := inst.call(ctx, h)
	if f != nil {
		p.discard(inst)
		return f
	}
	switch res {
	case 0:
		p.release(inst)
		return nil
	case abi.StatusError:
		e := inst.guestError(h)
		p.release(inst)
		return e
	}
	p.discard(inst)
	return p.fault(h, FaultInvalidOutput, fmt.Errorf("result %d is not 0 or KPIPE_ERROR", res))
}

// Serialize implements plugins.Serializer by calling kpipe_serialize
// (ABI 5.3). The result is a copy owned by the caller: empty but non-nil
// for a zero-length result, nil for KPIPE_NULL.
func (p *Plugin) Serialize(ctx context.Context, target plugins.Target, r *plugins.Record) ([]byte, error) {
	const h = hookSerialize
	n := abi.RecordSize(r)
	if err := p.checkSize(h, n); err != nil {
		return nil, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return nil, err
	}
	if f := inst.putRecord(ctx, h, r, n); f != nil {
		p.discard(inst)
		return nil, f
	}
	inst.stack[0], inst.stack[1] = uint64(target), uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		p.discard(inst)
		return nil, f
	}
	switch res {
	case abi.StatusNull:
		p.release(inst)
		return nil, nil
	case abi.StatusError:
		e := inst.guestError(h)
		p.release(inst)
		return nil, e
	}
	out, f := inst.output(h, res)
	if f != nil {
		p.discard(inst)
		return nil, f
	}
	b := make([]byte, len(out))
	copy(b, out)
	p.release(inst)
	return b, nil
}

// Partition implements plugins.Partitioner by calling kpipe_partition
// (ABI 5.4). KPIPE_DEFAULT_PARTITION becomes plugins.DefaultPartition; a
// partition out of range is a *GuestError (with DefaultPartition), as is
// KPIPE_ERROR.
func (p *Plugin) Partition(ctx context.Context, r *plugins.Record, numPartitions int32) (int32, error) {
	const h = hookPartition
	n := abi.RecordSize(r)
	if err := p.checkSize(h, n); err != nil {
		return plugins.DefaultPartition, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return plugins.DefaultPartition, err
	}
	if f := inst.putRecord(ctx, h, r, n); f != nil {
		p.discard(inst)
		return plugins.DefaultPartition, f
	}
	inst.stack[0], inst.stack[1] = uint64(uint32(numPartitions)), uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		p.discard(inst)
		return plugins.DefaultPartition, f
	}
	switch {
	case res >= 0 && res < int64(numPartitions):
		p.release(inst)
		return int32(res), nil
	case res == abi.StatusDefaultPartition:
		p.release(inst)
		return plugins.DefaultPartition, nil
	case res == abi.StatusError:
		e := inst.guestError(h)
		p.release(inst)
		return plugins.DefaultPartition, e
	case res >= 0:
		p.stats.errors[h].Add(1)
		p.release(inst)
		return plugins.DefaultPartition, &GuestError{Plugin: p.name, Hook: hookNames[h],
			Message: fmt.Sprintf("partition %d is out of range for %d partitions", res, numPartitions)}
	}
	p.discard(inst)
	return plugins.DefaultPartition, p.fault(h, FaultInvalidOutput, fmt.Errorf("result %d is not a partition or a status code of %s", res, hookNames[h]))
}
