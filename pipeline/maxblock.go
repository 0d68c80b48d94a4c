package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrBufferFull is wrapped by the error of a record that waited MaxBlock
// for room in the client's buffer (MaxBufferedRecords, MaxBufferedBytes)
// and got none: the brokers took no records for that long.
var ErrBufferFull = errors.New("buffer full")

// maxBlockError is the error of a record that found no room in the
// client's buffer within MaxBlock. It is what the wait's context returns
// from Err, so it is also a context.DeadlineExceeded.
type maxBlockError struct{ d time.Duration }

func (e maxBlockError) Error() string {
	return fmt.Sprintf("%v for %v: the brokers took no records for that long (MaxBlock, Kafka max.block.ms; the buffer is MaxBufferedRecords and MaxBufferedBytes, Kafka buffer.memory)", ErrBufferFull, e.d)
}

func (e maxBlockError) Is(target error) bool {
	return target == ErrBufferFull || target == context.DeadlineExceeded
}

// room counts what the client's buffer can still take without blocking, as
// credits the Send side spends: one record and its bytes per record handed
// to the client. Credits are recomputed, rarely, when they run out: the
// records in flight (Producer.inFlight, which the client's buffered records
// never exceed) and the bytes handed to the client and not yet completed
// are subtracted from the limits. A record that finds no credit may have to
// wait for room, and is produced with a blockCtx instead.
//
// The client counts a record out of its buffer just after its promise
// returns, so for that moment it holds one record more than the producer
// counts in flight: a record produced on credit may wait for it, which the
// promise goroutine ends at once, whatever the brokers do.
//
// The bytes in flight are Producer.bytesIn, what the records handed to the
// client weigh as the client counts it (key, value, header keys and
// values), less Producer.bytesOut, what those completed weigh; the first is
// written on the Send side, the second by the promise, and they are kept
// apart like the other counters.
type room struct {
	records atomic.Int64
	bytes   atomic.Int64
}

// recordBytes is a record's size as the client's buffer counts it.
func recordBytes(kr *kgo.Record) int64 {
	n := len(kr.Key) + len(kr.Value)
	for _, h := range kr.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// produce hands e's record to the client. While the client's buffer has
// room for it, that is a plain Produce with the record's context; otherwise
// the wait for room is bounded by MaxBlock (blockCtx), after which the
// record fails with ErrBufferFull. e belongs to the client once produce
// calls it, and may be recycled before produce returns.
func (p *Producer) produce(e *envelope) {
	size := recordBytes(&e.kr)
	p.bytesIn.Add(size)
	if p.spendRoom(size) {
		p.cl.Produce(e.kr.Context, &e.kr, p.promise)
		return
	}
	ctx := &blockCtx{Context: e.kr.Context, max: p.maxBlock}
	p.cl.Produce(ctx, &e.kr, p.promise)
	ctx.admitted()
}

// produceSync is produce for SendSync: it waits for the record's outcome,
// and returns the client's error. With room in the buffer it uses
// ProduceSync, which sends the record's batch without waiting out Linger;
// a record that has to wait for room does not get that.
func (p *Producer) produceSync(e *envelope) error {
	size := recordBytes(&e.kr)
	p.bytesIn.Add(size)
	defer p.bytesOut.Add(size)
	if p.spendRoom(size) {
		return p.cl.ProduceSync(e.kr.Context, &e.kr)[0].Err
	}
	ctx := &blockCtx{Context: e.kr.Context, max: p.maxBlock}
	done := make(chan error, 1)
	p.cl.Produce(ctx, &e.kr, func(_ *kgo.Record, err error) { done <- err })
	ctx.admitted()
	return <-done
}

// spendRoom spends one record's credits, and reports whether there were
// enough.
func (p *Producer) spendRoom(size int64) bool {
	ok := p.room.records.Add(-1) >= 0
	if p.maxBufBytes > 0 {
		ok = p.room.bytes.Add(-size) >= 0 && ok
	}
	if ok {
		return true
	}
	// Out of credit: recompute it from what is in flight now. A
	// concurrent spender makes the swap fail, and it is redone; a
	// spender that did not can only be counted twice, which errs on the
	// side of waiting.
	for {
		old := p.room.records.Load()
		n := int64(p.maxBufRecords) - p.inFlight()
		if p.room.records.CompareAndSwap(old, n) {
			break
		}
	}
	if p.maxBufBytes > 0 {
		for {
			old := p.room.bytes.Load()
			n := int64(p.maxBufBytes) - (p.bytesIn.Load() - p.bytesOut.Load())
			if p.room.bytes.CompareAndSwap(old, n) {
				break
			}
		}
	}
	// The record itself is counted in flight already.
	ok = p.room.records.Load() >= 0
	if p.maxBufBytes > 0 {
		ok = p.room.bytes.Load() >= 0 && ok
	}
	return ok
}

// blockCtx is the context given to Produce for a record that may have to
// wait for room in the client's buffer. franz-go waits on it while the
// buffer is full, and keeps it with the record afterwards (a buffered
// record fails if it ends). So it ends when the record's own context ends
// or when the wait has lasted max, but only while the wait lasts: once
// Produce returns (admitted), it never ends, and the record's own context
// alone can fail the buffered record, as for any other. Its timer is
// started only if franz-go waits (calls Done while producing).
type blockCtx struct {
	context.Context // the record's
	max             time.Duration

	mu      sync.Mutex
	done    chan struct{}
	err     error
	admit   bool
	timer   *time.Timer
	stopCtx func() bool
	asked   bool // Done was called
	doneNil bool // Done was first called after admission: it returns nil
}

func (c *blockCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.asked {
		if c.doneNil {
			return nil
		}
		return c.done
	}
	c.asked = true
	if c.admit {
		c.doneNil = true
		return nil
	}
	c.done = make(chan struct{})
	c.timer = time.AfterFunc(c.max, func() { c.end(maxBlockError{c.max}) })
	c.stopCtx = context.AfterFunc(c.Context, func() { c.end(c.Context.Err()) })
	return c.done
}

func (c *blockCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// end ends the wait with err, unless the record was admitted meanwhile.
func (c *blockCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admit || c.err != nil {
		return
	}
	c.err = err
	close(c.done)
}

// admitted is called once Produce returned: the record is buffered (or
// complete), and the context no longer ends with the wait.
func (c *blockCtx) admitted() {
	c.mu.Lock()
	c.admit = true
	t, stop := c.timer, c.stopCtx
	c.mu.Unlock()
	if t != nil {
		t.Stop()
		stop()
	}
}
