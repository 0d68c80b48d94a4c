package wasmhost

import (
	"context"
	"fmt"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// OnAckBatch implements plugins.AckBatcher: it gives the guest the
// acknowledgements of rs (acks[i] for rs[i]) on one instance taken from the
// pool once: in calls of kpipe_on_ack_batch of at most 1 MiB of input each
// if the module exports it (ABI 5.5) and there is more than one, else in
// one kpipe_on_ack call per acknowledgement. errs[i] gets the error of
// record i. A batch call that fails as a whole (a fault or KPIPE_ERROR) is
// re-run one acknowledgement at a time, as OnSendBatch does, so that
// exactly the acknowledgements whose own call fails get an error. For an
// interceptor that does not export kpipe_on_ack it does nothing. Stats
// counts each acknowledgement as an OnAck call. OnAckBatch returns an error,
// and sets no errs[i], only when no instance could be had at all.
func (p *Plugin) OnAckBatch(ctx context.Context, rs []*plugins.Record, acks []plugins.Ack, errs []error) error {
	const h = hookOnAck
	errs = errs[:len(rs)]
	clear(errs)
	if p.kinds&plugins.KindInterceptor != 0 && !p.wantsAcks {
		return nil
	}
	batch := p.hasBatch[h] && len(rs) > 1 // kpipe_on_ack serves one at less cost
	step := func(inst *instance, i int, single bool) (int, error) {
		if !single && batch {
			if j, err := inst.onAckBatch(ctx, rs, acks, i, errs); j > i {
				return j, err
			}
		}
		errs[i] = inst.onAck(ctx, rs[i], acks[i])
		return i + 1, errs[i]
	}
	return p.batchLoop(ctx, h, len(rs), step, func(i int, err error) {
		for ; i < len(rs); i++ {
			errs[i] = err
		}
	})
}

// onAck makes one kpipe_on_ack call with the acknowledgement of r. A
// *Fault means that the caller must discard the instance.
func (inst *instance) onAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) error {
	const h = hookOnAck
	p := inst.p
	errText := ackErrText(ack)
	size := p.ackSize(errText, r)
	if err := p.checkSize(h, size); err != nil {
		return err
	}
	in, f := inst.input(ctx, h, size)
	if f != nil {
		return f
	}
	p.putAck(in, ack.Offset, errText, r)
	return inst.callOnAck(ctx, size)
}

func ackErrText(ack plugins.Ack) string {
	if ack.Err != nil {
		return ack.Err.Error()
	}
	return ""
}

// onAckBatch makes one kpipe_on_ack_batch call with the acknowledgements of
// rs from i on that fit in one chunk, and returns the end of the chunk, or
// i if rs[i]'s entry is too large for a batch entry (it then goes to
// kpipe_on_ack). The error is the call's failure, if any (then each
// acknowledgement of the chunk has it); a *Fault means that the caller must
// discard the instance.
func (inst *instance) onAckBatch(ctx context.Context, rs []*plugins.Record, acks []plugins.Ack, i int, errs []error) (int, error) {
	const h, hb = hookOnAck, hookOnAckBatch
	p := inst.p
	j, total := i, 0
	for ; j < len(rs); j++ {
		n := abi.EntryHeader + p.ackSize(ackErrText(acks[j]), rs[j])
		if n > abi.MaxSize {
			break
		}
		if j > i && total+n > batchChunk {
			break
		}
		total += n
	}
	if j == i {
		return i, nil
	}
	count := j - i
	fail := func(err error) (int, error) {
		for k := i; k < j; k++ {
			errs[k] = err
		}
		return j, err
	}
	in, f := inst.input(ctx, hb, total)
	if f != nil {
		return fail(f)
	}
	off := 0
	for k := i; k < j; k++ {
		errText := ackErrText(acks[k])
		n := p.ackSize(errText, rs[k])
		abi.PutEntryHeader(in[off:], n)
		p.putAck(in[off+abi.EntryHeader:], acks[k].Offset, errText, rs[k])
		off += abi.EntryHeader + n
	}
	p.stats.batches[h].Add(1)
	inst.stack[0], inst.stack[1] = uint64(count), uint64(total)
	res, f := inst.call(ctx, hb)
	if f != nil {
		return fail(f)
	}
	switch res {
	case 0:
		return j, nil
	case abi.StatusError:
		return fail(inst.guestErrorOf(hb, h))
	}
	return fail(p.fault(hb, FaultInvalidOutput, fmt.Errorf("result %d is not 0 or KPIPE_ERROR", res)))
}
