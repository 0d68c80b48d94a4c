package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// stager batches records for the plugin stages (StageBatch).
//
// Send appends a record's envelope to pending. The batch is run (the stages,
// then Produce for each record) by the Send that fills it, by a timer when
// its first record has waited linger, or by Flush, SendSync, Close and the
// transaction methods. A runner holds procMu while it takes records from
// pending and until it has handed the last of them to the client: taking
// only under procMu keeps records in the order they were sent, across
// runners.
type stager struct {
	max    int
	linger time.Duration
	ics    bool // an interceptor takes batches: batch whatever the partitioner

	mu      sync.Mutex
	pending []*envelope
	timer   *time.Timer
	// n counts the records in pending and those taken by a runner that
	// has not handed them to the client yet. busy is n > 0, read without
	// mu, so that an unbatched send can tell whether it must let batched
	// ones go first; it changes at most twice per batch, as atomic writes
	// cost a send more than the lock does.
	n    int
	busy atomic.Bool
	// spare is a done slice put back by a runner, for the next one.
	spare []completion

	// What follows belongs to whoever holds procMu.
	procMu   sync.Mutex
	work     []*envelope
	recs     []*plugins.Record
	verdicts []plugins.Verdict
	errs     []error
	penvs    []*envelope // the envelopes of the records given to the partitioner
	nums     []int32
	parts    []int32
	// done holds the records a runner failed or filtered. They are
	// completed (OnAck, callback) after procMu is released, so that a
	// callback that calls Send cannot wait for the lock its own goroutine
	// holds.
	done []completion

	// completing counts runners completing their done records: Flush
	// waits for them.
	completing atomic.Int32

	// Acknowledgements queued in AckBatchers: ackArmed is set while the
	// ack timer is armed. ackMu serializes flushes. The completion
	// goroutine reads ackArmed for every acknowledgement: it has a cache
	// line of its own.
	_        cacheLinePad
	ackArmed atomic.Bool
	ackTimer *time.Timer
	ackMu    sync.Mutex
}

// completion is a record failed or filtered in a stage batch.
type completion struct {
	e   *envelope
	o   Outcome
	err error
}

func newStager(p *Producer, max int, linger time.Duration, ics bool) *stager {
	b := &stager{
		max:      max,
		linger:   linger,
		ics:      ics,
		pending:  make([]*envelope, 0, max),
		work:     make([]*envelope, 0, max),
		recs:     make([]*plugins.Record, max),
		verdicts: make([]plugins.Verdict, max),
		errs:     make([]error, max),
		penvs:    make([]*envelope, max),
		nums:     make([]int32, max),
		parts:    make([]int32, max),
	}
	b.timer = time.AfterFunc(time.Hour, func() { p.runPending(false) })
	b.timer.Stop()
	b.ackTimer = time.AfterFunc(time.Hour, func() {
		b.ackArmed.Store(false)
		p.flushAcks()
	})
	b.ackTimer.Stop()
	return b
}

// active reports whether a record sent now is batched: an interceptor or
// the current partitioner takes batches.
func (b *stager) active(p *Producer) bool {
	return b.ics || p.part.Load().bp != nil
}

// enqueue is Send in batch mode: the checks that need no plugin, then the
// record joins the pending batch.
func (p *Producer) enqueue(ctx context.Context, r *plugins.Record, cb func(*plugins.Record, Result)) {
	if ctx == nil {
		ctx = context.Background()
	}
	if r == nil {
		p.prepare(ctx, r, cb) // fails it
		return
	}
	p.sent.Add(1)
	e := getEnvelope()
	e.kr.Context, e.rec, e.cb = ctx, r, cb
	if p.closed.Load() {
		p.complete(e, Failed, ErrClosed)
		return
	}
	b := p.stage
	b.mu.Lock()
	b.pending = append(b.pending, e)
	n := len(b.pending)
	if n == 1 {
		b.timer.Reset(b.linger)
	}
	if b.n++; b.n == 1 {
		b.busy.Store(true)
	}
	b.mu.Unlock()
	if n >= b.max {
		p.runPending(true)
	}
}

// runPending runs the pending records through the stages and hands them to
// the client. With full, it is the run of a Send that filled a batch: it
// runs only whole batches (another Send may have run them first) and
// leaves the rest pending, for the next Send or the timer. Otherwise it
// runs everything pending. It returns once the records it took are in the
// client (or complete), which is what callers that must keep records in
// order rely on; records it failed or filtered may still be completing.
func (p *Producer) runPending(full bool) {
	b := p.stage
	b.procMu.Lock()
	b.mu.Lock()
	k := len(b.pending)
	if full {
		k -= k % b.max
	}
	if k == 0 {
		b.mu.Unlock()
		b.procMu.Unlock()
		return
	}
	b.work, b.pending = b.pending, b.work[:0]
	if rest := b.work[k:]; len(rest) > 0 {
		// The timer was armed for the first of the records taken:
		// arm it again for those left.
		b.pending = append(b.pending, rest...)
		clear(rest)
		b.work = b.work[:k]
		b.timer.Reset(b.linger)
	}
	b.mu.Unlock()

	for w := b.work; len(w) > 0; {
		c := min(len(w), b.max)
		p.runBatch(w[:c])
		w = w[c:]
	}
	clear(b.work)
	b.work = b.work[:0]
	b.mu.Lock()
	if b.n -= k; b.n == 0 {
		b.busy.Store(false)
	}
	b.mu.Unlock()
	done := b.done
	if len(done) > 0 {
		b.done = nil
		b.completing.Add(1)
	}
	b.procMu.Unlock()

	if len(done) == 0 {
		return
	}
	for i := range done {
		p.complete(done[i].e, done[i].o, done[i].err)
		done[i] = completion{}
	}
	b.completing.Add(-1)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = done[:0]
	}
	b.mu.Unlock()
}

// fail notes that e ends with o and err; the runner completes it once it
// has released procMu. procMu must be held.
func (b *stager) fail(e *envelope, o Outcome, err error) {
	if b.done == nil {
		b.mu.Lock()
		b.done, b.spare = b.spare, nil
		b.mu.Unlock()
	}
	b.done = append(b.done, completion{e, o, err})
}

// runBatch runs up to max records through the stages, as prepare does for
// one, and hands those that are left to the client, in order. procMu must be
// held.
func (p *Producer) runBatch(es []*envelope) {
	b := p.stage
	n := 0
	for _, e := range es {
		if r := e.rec; r.Topic == "" {
			if p.topic == "" {
				b.fail(e, Failed, ErrNoTopic)
				continue
			}
			r.Topic = p.topic
		}
		es[n] = e
		n++
	}
	es = es[:n]
	for i, s := range p.ics {
		if len(es) == 0 {
			break
		}
		if s.batch != nil {
			es = p.onSendBatch(i, s, es)
			continue
		}
		n = 0
		for _, e := range es {
			if err := p.onSend(i, s, e); err != nil {
				b.fail(e, Filtered, err)
				continue
			}
			es[n] = e
			n++
		}
		es = es[:n]
	}

	ps := p.part.Load()
	var now time.Time
	n = 0
	for _, e := range es {
		if err := p.seal(e, ps); err != nil {
			b.fail(e, Failed, err)
			continue
		}
		if e.kr.Timestamp.IsZero() {
			// What the client would do when it buffers the record,
			// done now so that the partitioner sees it, and once
			// for the batch. The record is given the timestamp
			// it is produced with, as Partition would.
			if now.IsZero() {
				now = time.Now()
			}
			e.kr.Timestamp, e.rec.Timestamp = now, now
		}
		es[n] = e
		n++
	}
	es = es[:n]
	if ps.bp != nil {
		p.precompute(ps, es)
	}
	for _, e := range es {
		p.produce(e)
	}
}

// onSendBatch runs interceptor i, which takes batches, over the records of
// es, and returns those that go on. A failed call, or a failed record,
// leaves the record as it was (plugins.BatchInterceptor's contract) and
// counts one failure per record; an invalid verdict counts as a failure,
// but as the record may have been changed, it goes on as it is.
func (p *Producer) onSendBatch(i int, s *interceptorSlot, es []*envelope) []*envelope {
	if !s.sendBr.allow() {
		s.onSend.bypasses.Add(uint64(len(es)))
		return es
	}
	b := p.stage
	m := len(es)
	recs, verdicts, errs := b.recs[:m], b.verdicts[:m], b.errs[:m]
	for j, e := range es {
		recs[j] = e.rec
		verdicts[j] = plugins.Continue
		errs[j] = nil
		if s.acks {
			e.seen |= 1 << i // to be given OnAck
		}
	}
	err := s.callOnSendBatch(p.life, recs, verdicts, errs)
	n, failed := 0, 0
	var firstErr error
	for j, e := range es {
		ferr := err
		if ferr == nil {
			if ferr = errs[j]; ferr == nil && verdicts[j] != plugins.Continue && verdicts[j] != plugins.Drop {
				ferr = fmt.Errorf("invalid verdict %d", verdicts[j])
			}
		}
		if ferr != nil {
			if failed++; firstErr == nil {
				firstErr = ferr
			}
		} else {
			if verdicts[j] == plugins.Drop {
				s.onSend.drops.Add(1)
				e.seen &^= 1 << i
				b.fail(e, Filtered, fmt.Errorf("%w by interceptor %q", ErrFiltered, s.name))
				continue
			}
		}
		es[n] = e
		n++
	}
	batchCallDone(p, s.name, HookOnSend, &s.onSend, &s.sendBr, m, failed, firstErr)
	clear(recs)
	clear(errs)
	return es[:n]
}

// batchCallDone counts the failed records of a batch call of m records and
// feeds the plugin's circuit breaker once for the call, as for a single
// call: a failure if every record failed, a success if any went through.
// A plugin failing on every record thus opens its breaker after threshold
// batch calls; one fault of a batch call, which fails all its records, is
// one failure, not one per record.
func batchCallDone(p *Producer, name string, hook Hook, st *hookStats, br *breaker, m, failed int, firstErr error) {
	switch {
	case failed == m:
		p.pluginFailedN(name, hook, st, br, firstErr, failed)
	case failed > 0:
		p.countFailures(name, hook, st, firstErr, failed)
		br.success()
	default:
		br.success()
	}
}

func (s *interceptorSlot) callOnSendBatch(ctx context.Context, rs []*plugins.Record, verdicts []plugins.Verdict, errs []error) (err error) {
	t := s.onSend.startN(len(rs))
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		s.onSend.endN(t, len(rs))
	}()
	return s.batch.OnSendBatch(ctx, rs, verdicts, errs)
}

// precompute asks partitioner s, which takes batches, for the partitions of
// the records of es that do not name theirs and whose topic's partition
// count is known, in one call, and leaves each answer in the record's
// envelope for topicPartitioner.partition. Failures are counted and logged
// here, as partition would; records it leaves out are partitioned one at a
// time.
//
// The partitioner is given the callers' records themselves, which seal left
// as they are produced (serialized key and value, final topic, headers and
// timestamp, no partition): unlike one copied for it, as partition does,
// that costs no copy.
func (p *Producer) precompute(s *partitionerSlot, es []*envelope) {
	if !s.br.allow() {
		return // partition counts the bypasses
	}
	b := p.stage
	m := 0
	var topic string
	var parts int32
	known := false
	for _, e := range es {
		if e.explicit {
			continue
		}
		if !known || e.kr.Topic != topic {
			topic, parts, known = e.kr.Topic, p.partitions(e.kr.Topic), true
		}
		if parts <= 0 {
			continue
		}
		b.recs[m] = e.rec
		b.nums[m] = parts
		b.parts[m] = plugins.DefaultPartition
		b.errs[m] = nil
		b.penvs[m] = e
		m++
	}
	if m == 0 {
		return
	}
	recs, nums, out, errs := b.recs[:m], b.nums[:m], b.parts[:m], b.errs[:m]
	err := s.callPartitionBatch(p.life, recs, nums, out, errs)
	failed := 0
	var firstErr error
	for j, e := range b.penvs[:m] {
		e.preSlot, e.preN, e.prePart = s, nums[j], -1
		ferr := err
		if ferr == nil {
			ferr = errs[j]
		}
		switch part := out[j]; {
		case ferr != nil:
		case part >= 0 && part < nums[j]:
			e.prePart = part
			continue
		case part == plugins.DefaultPartition:
			continue
		default:
			ferr = fmt.Errorf("partition %d out of range [0, %d)", part, nums[j])
		}
		if failed++; firstErr == nil {
			firstErr = ferr
		}
	}
	batchCallDone(p, s.name, HookPartition, s.stats, &s.br, m, failed, firstErr)
	clear(recs)
	clear(errs)
	clear(b.penvs[:m])
}

func (s *partitionerSlot) callPartitionBatch(ctx context.Context, rs []*plugins.Record, nums, parts []int32, errs []error) (err error) {
	t := s.stats.startN(len(rs))
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		s.stats.endN(t, len(rs))
	}()
	return s.bp.PartitionBatch(ctx, rs, nums, parts, errs)
}

// queueAck gives ack to interceptor s, an AckBatcher, and arms the ack
// timer. It is acks' OnAck for such interceptors.
func (p *Producer) queueAck(s *interceptorSlot, r *plugins.Record, ack plugins.Ack) {
	delivered, err := s.callQueueAck(p.life, r, ack)
	p.acksDelivered(s, delivered, err)
	if b := p.stage; !b.ackArmed.Load() && b.ackArmed.CompareAndSwap(false, true) {
		b.ackTimer.Reset(b.linger)
	}
}

func (s *interceptorSlot) callQueueAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) (delivered int, err error) {
	t := s.onAck.start()
	defer func() {
		if x := recover(); x != nil {
			delivered, err = 1, fmt.Errorf("panic: %v", x)
		}
		s.onAck.end(t)
	}()
	return s.ackB.QueueAck(ctx, r, ack)
}

// acksDelivered counts the outcome of a delivery of delivered queued
// acknowledgements of interceptor s.
func (p *Producer) acksDelivered(s *interceptorSlot, delivered int, err error) {
	switch {
	case delivered <= 0:
	case err == nil:
		s.ackBr.success()
	default:
		// Every acknowledgement of a failed delivery counts as a
		// failure (the plugin was not told about it, as far as the
		// pipeline can know), but the circuit breaker counts the
		// delivery once: one failed call of 64 acknowledgements is
		// one failure of the plugin, not 64 in a row, or a batch
		// with one bad acknowledgement would trip the breaker where
		// the same plugin called per record never does.
		p.pluginFailedN(s.name, HookOnAck, &s.onAck, &s.ackBr, err, delivered)
	}
}

// flushAcks delivers the acknowledgements queued in every AckBatcher.
func (p *Producer) flushAcks() {
	b := p.stage
	if b == nil {
		return
	}
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	for _, s := range p.ics {
		if s.ackB != nil {
			delivered, err := s.callFlushAcks(p.life)
			p.acksDelivered(s, delivered, err)
		}
	}
}

func (s *interceptorSlot) callFlushAcks(ctx context.Context) (delivered int, err error) {
	defer func() {
		if x := recover(); x != nil {
			delivered, err = 1, fmt.Errorf("panic: %v", x)
		}
	}()
	return s.ackB.FlushAcks(ctx)
}

// settle runs the pending batch and waits until the records a runner failed
// or filtered are complete, or ctx ends.
func (p *Producer) settle(ctx context.Context) error {
	b := p.stage
	if b == nil {
		return nil
	}
	p.runPending(false)
	for b.completing.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}
