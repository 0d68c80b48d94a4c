package wasmhost

import (
	"context"
	"fmt"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
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
	if err := p.checkKind(h); err != nil {
		return nil, err
	}
	p.stats.calls[h].Add(1)
	return p.acquire(ctx, h)
}

// checkKind fails a call of hook h if the plugin is not of its kind.
func (p *Plugin) checkKind(h hook) error {
	if p.kinds&hookKinds[h] == 0 {
		return fmt.Errorf("wasmhost: plugin %q: %s: the plugin is not a %s (it declares %s)",
			p.name, hookNames[h], kindNames(hookKinds[h]), kindNames(p.kinds))
	}
	return nil
}

// end gives back an instance after a call: it is discarded if the call
// ended with a fault, released otherwise.
func (p *Plugin) end(inst *instance, err error) {
	if isFault(err) {
		p.discard(inst)
	} else {
		p.release(inst)
	}
}

// isFault reports whether err is a *Fault, after which the instance that
// ran the call must be discarded.
func isFault(err error) bool {
	_, ok := err.(*Fault)
	return ok
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

// partitionSize returns the size of the input of kpipe_partition for r: its
// key encoding with KPIPE_FEATURE_PARTITION_KEY, else the record encoding.
func (p *Plugin) partitionSize(r *plugins.Record) int {
	if p.features&abi.FeaturePartitionKey != 0 {
		return abi.KeySize(r.Key)
	}
	return abi.RecordSize(r)
}

// putPartitionInput writes the input of kpipe_partition for r into b, as
// partitionSize measures it, and returns its size.
func (p *Plugin) putPartitionInput(b []byte, r *plugins.Record) int {
	if p.features&abi.FeaturePartitionKey != 0 {
		return abi.PutKey(b, r.Key)
	}
	return abi.PutRecord(b, r)
}

// ackSize returns the size of the acknowledgement encoding of r: the lean
// one with KPIPE_FEATURE_ACK_NO_RECORD, else the full one (ABI 4.2).
func (p *Plugin) ackSize(errText string, r *plugins.Record) int {
	if p.features&abi.FeatureAckNoRecord != 0 {
		return abi.LeanAckSize(errText)
	}
	return abi.AckSize(errText, r)
}

// putAck writes the acknowledgement of r into b, as ackSize measures it.
func (p *Plugin) putAck(b []byte, offset int64, errText string, r *plugins.Record) {
	if p.features&abi.FeatureAckNoRecord != 0 {
		abi.PutLeanAck(b, offset, errText, r)
	} else {
		abi.PutAck(b, offset, errText, r)
	}
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
	v, err := inst.onSend(ctx, r, n)
	p.end(inst, err)
	return v, err
}

// onSend runs kpipe_on_send for r, of encoded size n, on the instance. A
// *Fault means that the caller must discard the instance.
func (inst *instance) onSend(ctx context.Context, r *plugins.Record, n int) (plugins.Verdict, error) {
	const h = hookOnSend
	if f := inst.putRecord(ctx, h, r, n); f != nil {
		return plugins.Continue, f
	}
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
	if err := inst.decodeSendResult(out, r); err != nil {
		return plugins.Continue, inst.p.fault(h, FaultInvalidOutput, err)
	}
	return plugins.Continue, nil
}

// OnAck implements plugins.Interceptor by calling kpipe_on_ack with the
// acknowledgement encoding (ABI 4.2, 5.2; the lean one of section 8 if the
// guest enabled KPIPE_FEATURE_ACK_NO_RECORD). For an interceptor that does not
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
	size := p.ackSize(errText, r)
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
	p.putAck(in, ack.Offset, errText, r)
	err = inst.callOnAck(ctx, size)
	p.end(inst, err)
	return err
}

// callOnAck calls kpipe_on_ack with the size-byte acknowledgement already in
// the input buffer. A *Fault means that the caller must discard the
// instance.
func (inst *instance) callOnAck(ctx context.Context, size int) error {
	const h = hookOnAck
	inst.stack[0] = uint64(size)
	res, f := inst.call(ctx, h)
	if f != nil {
		return f
	}
	switch res {
	case 0:
		return nil
	case abi.StatusError:
		return inst.guestError(h)
	}
	return inst.p.fault(h, FaultInvalidOutput, fmt.Errorf("result %d is not 0 or KPIPE_ERROR", res))
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
// (ABI 5.4), with the record or, if the guest enabled
// KPIPE_FEATURE_PARTITION_KEY, only its key (ABI 8). KPIPE_DEFAULT_PARTITION becomes plugins.DefaultPartition; a
// partition out of range is a *GuestError (with DefaultPartition), as is
// KPIPE_ERROR.
func (p *Plugin) Partition(ctx context.Context, r *plugins.Record, numPartitions int32) (int32, error) {
	const h = hookPartition
	n := p.partitionSize(r)
	if err := p.checkSize(h, n); err != nil {
		return plugins.DefaultPartition, err
	}
	inst, err := p.begin(ctx, h)
	if err != nil {
		return plugins.DefaultPartition, err
	}
	part, err := inst.partition(ctx, r, n, numPartitions)
	p.end(inst, err)
	return part, err
}

// partition runs kpipe_partition for r, whose input (partitionSize) has n
// bytes, on the instance. A *Fault means that the caller must discard the
// instance.
func (inst *instance) partition(ctx context.Context, r *plugins.Record, n int, numPartitions int32) (int32, error) {
	const h = hookPartition
	in, f := inst.input(ctx, h, n)
	if f != nil {
		return plugins.DefaultPartition, f
	}
	inst.p.putPartitionInput(in, r)
	inst.stack[0], inst.stack[1] = uint64(uint32(numPartitions)), uint64(n)
	res, f := inst.call(ctx, h)
	if f != nil {
		return plugins.DefaultPartition, f
	}
	return inst.partitionResult(h, h, res, numPartitions)
}

// partitionResult interprets a result v of kpipe_partition (hook h) or of
// one record of kpipe_partition_batch (h, the batch hook; base is the
// per-record hook, whose counters it uses). An invalid result is a *Fault;
// the caller must then discard the instance.
func (inst *instance) partitionResult(h, base hook, v int64, numPartitions int32) (int32, error) {
	p := inst.p
	switch {
	case v >= 0 && v < int64(numPartitions):
		return int32(v), nil
	case v == abi.StatusDefaultPartition:
		return plugins.DefaultPartition, nil
	case v == abi.StatusError:
		return plugins.DefaultPartition, inst.guestErrorOf(h, base)
	case v >= 0:
		p.stats.errors[base].Add(1)
		return plugins.DefaultPartition, &GuestError{Plugin: p.name, Hook: hookNames[h],
			Message: fmt.Sprintf("partition %d is out of range for %d partitions", v, numPartitions)}
	}
	return plugins.DefaultPartition, p.fault(h, FaultInvalidOutput, fmt.Errorf("result %d is not a partition or a status code of %s", v, hookNames[h]))
}
