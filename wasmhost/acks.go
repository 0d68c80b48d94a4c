package wasmhost

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// ackQueue holds a plugin's encoded acknowledgements until they are
// delivered (QueueAck, FlushAcks). Each entry is what kpipe_on_ack_batch
// takes (ABI 5.5): u32 size, then the acknowledgement (ABI 4.2, or the
// lean encoding of section 8 with KPIPE_FEATURE_ACK_NO_RECORD). Two
// buffers take turns: acknowledgements are queued into one while the other
// is delivered, so that in steady state queueing does not allocate and a
// delivery does not hold up QueueAck.
//
// The completion goroutine writes it for every acknowledgement while Send
// goroutines read the Plugin fields around it for every call: it is padded
// so that it shares no cache line with them.
type ackQueue struct {
	_    [64]byte
	size int // acknowledgements that make a delivery

	mu     sync.Mutex
	queued []byte // guarded by mu
	n      int    // entries in queued; guarded by mu

	// delivering is held by the one delivery in progress, so that a
	// plugin never runs two at once and delivers in queue order.
	delivering sync.Mutex
	sending    []byte // guarded by delivering
	_          [64]byte
}

// maxIdleAckBuffer is the capacity above which a delivered queue buffer is
// dropped rather than kept for reuse, so that one huge acknowledgement does
// not pin its memory for the plugin's lifetime.
const maxIdleAckBuffer = 4 << 20

// QueueAck implements plugins.AckBatcher. It encodes the acknowledgement of
// r at once (the caller may reuse r when QueueAck returns) and, when the
// queue holds the plugin's batch size (WithAckBatchSize), delivers the
// queue as FlushAcks does and returns what FlushAcks returns. For an
// interceptor that does not export kpipe_on_ack it does nothing and
// returns 0 and nil. An acknowledgement too large for the ABI, or a plugin
// that is not an interceptor, is an error with delivered = 1.
//
// Acknowledgements still queued when the plugin is closed are dropped:
// call FlushAcks before Close.
func (p *Plugin) QueueAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) (delivered int, err error) {
	const h = hookOnAck
	if err := p.checkKind(h); err != nil {
		return 1, err
	}
	if !p.wantsAcks {
		return 0, nil
	}
	var errText string
	if ack.Err != nil {
		errText = ack.Err.Error()
	}
	size := p.ackSize(errText, r)
	if err := p.checkSize(h, sizeHeader+size); err != nil {
		return 1, err
	}
	q := &p.acks
	q.mu.Lock()
	off := len(q.queued)
	q.queued = slices.Grow(q.queued, sizeHeader+size)[:off+sizeHeader+size]
	binary.LittleEndian.PutUint32(q.queued[off:], uint32(size))
	p.putAck(q.queued[off+sizeHeader:], ack.Offset, errText, r)
	q.n++
	full := q.n >= q.size
	q.mu.Unlock()
	if !full {
		return 0, nil
	}
	return p.FlushAcks(ctx)
}

// FlushAcks implements plugins.AckBatcher: it delivers the queued
// acknowledgements now, on one instance of the pool, in calls of
// kpipe_on_ack_batch of at most 1 MiB of input each if the module exports
// it (and there is more than one), else in one kpipe_on_ack call per
// acknowledgement. It returns how many it delivered and the error of the
// first call that failed, if any (a *GuestError or a *Fault; after a fault
// the rest go to a fresh instance). A delivery in progress, by another
// FlushAcks or QueueAck, is waited for, so that the guest sees the
// acknowledgements in the order they were queued. Stats counts each
// acknowledgement as an OnAck call.
func (p *Plugin) FlushAcks(ctx context.Context) (delivered int, err error) {
	if !p.wantsAcks {
		return 0, nil
	}
	q := &p.acks
	q.delivering.Lock()
	defer q.delivering.Unlock()
	q.mu.Lock()
	q.queued, q.sending = q.sending[:0], q.queued
	n := q.n
	q.n = 0
	q.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	err = p.deliverAcks(ctx, q.sending, n)
	if cap(q.sending) > maxIdleAckBuffer {
		q.sending = nil
	}
	return n, err
}

// deliverAcks delivers the n encoded acknowledgements in buf, and returns
// the error of the first call that failed.
func (p *Plugin) deliverAcks(ctx context.Context, buf []byte, n int) error {
	const h = hookOnAck
	var first error
	batch := p.hasBatch[h] && n > 1 // kpipe_on_ack serves one at less cost
	step := func(inst *instance, i int) (next int, err error) {
		if batch {
			next, err = inst.onAckBatch(ctx, buf, i)
		} else {
			next = i + sizeHeader + int(binary.LittleEndian.Uint32(buf[i:]))
			err = inst.onAckEncoded(ctx, buf[i+sizeHeader:next])
		}
		if first == nil {
			first = err
		}
		return next, err
	}
	fail := func(_ int, err error) {
		if first == nil {
			first = err
		}
	}
	if err := p.batchLoop(ctx, h, n, len(buf), step, fail); err != nil {
		return err
	}
	return first
}

// onAckEncoded calls kpipe_on_ack with one encoded acknowledgement. A
// *Fault means that the caller must discard the instance.
func (inst *instance) onAckEncoded(ctx context.Context, ack []byte) error {
	in, f := inst.input(ctx, hookOnAck, len(ack))
	if f != nil {
		return f
	}
	copy(in, ack)
	return inst.callOnAck(ctx, len(ack))
}

// onAckBatch makes one kpipe_on_ack_batch call with the encoded
// acknowledgements of buf from offset i on that fit in one chunk, and
// returns the offset after them. The error applies to each of them; a
// *Fault means that the caller must discard the instance.
func (inst *instance) onAckBatch(ctx context.Context, buf []byte, i int) (int, error) {
	const h, hb = hookOnAck, hookOnAckBatch
	p := inst.p
	j, count := i, 0
	for j < len(buf) {
		n := sizeHeader + int(binary.LittleEndian.Uint32(buf[j:]))
		if j > i && j+n-i > batchChunk {
			break
		}
		j += n
		count++
	}
	in, f := inst.input(ctx, hb, j-i)
	if f != nil {
		return j, f
	}
	copy(in, buf[i:j])
	p.stats.batches[h].Add(1)
	inst.stack[0], inst.stack[1] = uint64(count), uint64(j-i)
	res, f := inst.call(ctx, hb)
	if f != nil {
		return j, f
	}
	switch res {
	case 0:
		return j, nil
	case abi.StatusError:
		ge := inst.guestErrorOf(hb, h)
		p.stats.errors[h].Add(uint64(count - 1))
		return j, ge
	}
	return j, p.fault(hb, FaultInvalidOutput, fmt.Errorf("result %d is not 0 or KPIPE_ERROR", res))
}
