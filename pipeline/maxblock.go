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

// room bounds what the Send side may hand to the client without it
// blocking: limits that the counts of the Send side (records admitted,
// bytes handed in) must not pass. A record certainly finds room if, once
// counted, the records admitted are at most records and the bytes handed
// in at most bytes. The limits are recomputed, rarely, when a record finds
// them passed: from the records and bytes completed by then, plus
// MaxBufferedRecords and MaxBufferedBytes. A record that still finds no
// room may have to wait for it, and is produced with a blockCtx instead.
// This keeps the bound off the per-record path: no lock, allocation, timer
// or atomic write of its own for a record that finds room (BenchmarkProduce;
// see RATIONALE.md).
//
// Records admitted include those not yet handed to the client (stage
// batches), and records that complete count out only once their callback
// ran: the records the client holds never exceed admitted - completed. The
// client counts a record out of its buffer just after its promise returns,
// so for that moment it holds one record more than the producer counts in
// flight: a record produced with room may wait for it, which the promise
// goroutine ends at once, whatever the brokers do.
//
// The bytes handed in are Producer.bytesIn, what the records handed to the
// client weigh as the client counts it (key, value, header keys and
// values); Producer.bytesOut is what those completed weigh. The first is
// written on the Send side, the second by the promise, and they are kept
// apart like the other counters. The limits only grow, as the counts they
// are computed from do.
type room struct {
	records atomic.Int64 // for the count of Producer.adm
	bytes   atomic.Int64 // for Producer.bytesIn
}

// recordBytes is a record's size as the client's buffer counts it.
func recordBytes(kr *kgo.Record) int64 {
	n := len(kr.Key) + len(kr.Value)
	for _, h := range kr.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// produce hands the records of es to the client, in order. While the
// client's buffer has room for a record, that is a plain Produce with the
// record's context; otherwise the wait for room is bounded by MaxBlock
// (blockCtx), after which the record fails with ErrBufferFull. Once a
// record gave up so (gaveUp: one of the same call before es), a following
// one that finds no room fails at once with the same error instead of
// waiting MaxBlock again: the brokers took nothing for that long, and a
// batch of n records (SendBatch, a stage batch) must not hold its caller n
// times MaxBlock. It returns whether a record gave up, for the caller's
// next records. Each envelope belongs to the client once produce hands it
// over, and may be complete before produce returns.
func (p *Producer) produce(gaveUp bool, es ...*envelope) bool {
	for _, e := range es {
		if p.hasRoom(p.bytesIn.Add(recordBytes(&e.kr))) {
			p.cl.Produce(e.ctx, &e.kr, p.promise)
			continue
		}
		ctx := &blockCtx{Context: e.ctx, max: p.maxBlock, expired: gaveUp}
		p.cl.Produce(ctx, &e.kr, p.promise)
		gaveUp = ctx.admitted()
	}
	return gaveUp
}

// produceSync is produce for SendSync: it waits for the record's outcome,
// and returns the client's error. With room in the buffer it uses
// ProduceSync, which sends the record's batch without waiting out Linger;
// a record that has to wait for room does not get that.
func (p *Producer) produceSync(e *envelope) error {
	size := recordBytes(&e.kr)
	defer p.bytesOut.Add(size)
	if p.hasRoom(p.bytesIn.Add(size)) {
		return p.cl.ProduceSync(e.ctx, &e.kr)[0].Err
	}
	ctx := &blockCtx{Context: e.ctx, max: p.maxBlock}
	done := make(chan error, 1)
	p.cl.Produce(ctx, &e.kr, func(_ *kgo.Record, err error) { done <- err })
	ctx.admitted()
	return <-done
}

// hasRoom reports whether the client's buffer certainly has room for a
// record already admitted, once in, the bytes handed in with it, is
// counted.
func (p *Producer) hasRoom(in int64) bool {
	admitted := int64(p.adm.Load() & countMask)
	if admitted <= p.room.records.Load() && (p.maxBufBytes == 0 || in <= p.room.bytes.Load()) {
		return true
	}
	// Passed: recompute the limits from what completed by now. The
	// completion counters are read before unchained, which they include,
	// so that a record counted in both never raises the limit.
	done := int64(p.delivered.Load() + p.filtered.Load() + p.failed.Load())
	raise(&p.room.records, done-int64(p.unchained.Load())+int64(p.maxBufRecords))
	if p.maxBufBytes > 0 {
		raise(&p.room.bytes, p.bytesOut.Load()+int64(p.maxBufBytes))
	}
	return admitted <= p.room.records.Load() && (p.maxBufBytes == 0 || in <= p.room.bytes.Load())
}

// raise sets limit to at least v.
func raise(limit *atomic.Int64, v int64) {
	for {
		old := limit.Load()
		if old >= v || limit.CompareAndSwap(old, v) {
			return
		}
	}
}

// blockCtx is the context given to Produce for a record that may have to
// wait for room in the client's buffer. franz-go waits on it while the
// buffer is full, and keeps it with the record afterwards (a buffered
// record fails if it ends). So while the wait lasts it ends when the
// record's own context ends or when the wait has lasted max; once Produce
// returns (admitted), it is the record's own context, which alone can fail
// the buffered record, as for any other. Its timer is started only if
// franz-go waits (calls Done while producing). A Done channel asked for
// during the wait stays the wait's: it ends only if the wait did.
type blockCtx struct {
	context.Context // the record's
	max             time.Duration

	mu      sync.Mutex
	done    chan struct{} // the wait's, made by the first Done during it
	err     error         // why the wait ended
	expired bool          // the wait has no time left: it ends as it starts
	admit   bool
	timer   *time.Timer
	stopCtx func() bool
}

func (c *blockCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return c.done
	case c.admit:
		return c.Context.Done()
	case c.done == nil && c.expired:
		c.done, c.err = make(chan struct{}), maxBlockError{c.max}
		close(c.done)
	case c.done == nil:
		c.done = make(chan struct{})
		c.timer = time.AfterFunc(c.max, func() { c.end(maxBlockError{c.max}) })
		c.stopCtx = context.AfterFunc(c.Context, func() { c.end(c.Context.Err()) })
	}
	return c.done
}

func (c *blockCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.admit {
		return c.Context.Err()
	}
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
// complete), and the context no longer ends with the wait. It reports
// whether the wait gave up for want of room (MaxBlock passed).
func (c *blockCtx) admitted() (gaveUp bool) {
	c.mu.Lock()
	c.admit = true
	t, stop := c.timer, c.stopCtx
	gaveUp = errors.Is(c.err, ErrBufferFull)
	c.mu.Unlock()
	if t != nil {
		t.Stop()
		stop()
	}
	return gaveUp
}
