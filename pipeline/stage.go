package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// This file is the stage path: run takes records of one chain through the
// interceptors, the serializers and, for a partitioner that takes batches,
// the partitioner, and returns those that go to the client. A record sent
// alone is a batch of one on the same path; the stager below only decides
// which records run together.

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
}

// completion is a record failed or filtered in a stage batch.
type completion struct {
	e   *envelope
	o   Outcome
	err error
}

func newStager(p *Producer, max int, linger time.Duration) *stager {
	b := &stager{
		max:     max,
		linger:  linger,
		pending: make([]*envelope, 0, max),
		work:    make([]*envelope, 0, max),
	}
	b.makeScratch()
	b.timer = time.AfterFunc(time.Hour, func() { p.runPending(false) })
	b.timer.Stop()
	return b
}

// makeScratch gives b the scratch space of batch plugin calls for up to
// b.max records.
func (b *stager) makeScratch() {
	b.recs = make([]*plugins.Record, b.max)
	b.verdicts = make([]plugins.Verdict, b.max)
	b.errs = make([]error, b.max)
	b.penvs = make([]*envelope, b.max)
	b.nums = make([]int32, b.max)
	b.parts = make([]int32, b.max)
}

// enqueue queues e, whose chain batches, for a stage batch.
func (p *Producer) enqueue(e *envelope) {
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

	p.runChunks(b, b.work)
	clear(b.work)
	b.work = b.work[:0]
	b.mu.Lock()
	if b.n -= k; b.n == 0 {
		b.busy.Store(false)
	}
	b.mu.Unlock()
	p.releaseProc(b)
}

// end ends e with o and err: at once for a record run alone (b nil), or,
// in a stage batch, once the runner has released procMu.
func (p *Producer) end(b *stager, e *envelope, o Outcome, err error) {
	if b == nil {
		p.complete(e, o, err)
		return
	}
	if b.done == nil {
		b.mu.Lock()
		b.done, b.spare = b.spare, nil
		b.mu.Unlock()
	}
	b.done = append(b.done, completion{e, o, err})
}

// run runs the records of es, which all entered chain ch, through the
// stages: the default topic, the interceptors in order, the serializers,
// the timestamp, and for a partitioner that takes batches its choice of
// partitions. It returns those that go on to the client, in order (a
// prefix of es, reused); the others are ended. b is the stager whose
// scratch space the batch calls use and which ends records after the run,
// or nil for a record run alone by its Send or SendSync: plugins are then
// called once per record.
func (p *Producer) run(ch *chain, es []*envelope, b *stager) []*envelope {
	n := 0
	for _, e := range es {
		if r := e.rec; r.Topic == "" {
			if p.topic == "" {
				p.end(b, e, Failed, ErrNoTopic)
				continue
			}
			r.Topic = p.topic
		}
		es[n] = e
		n++
	}
	es = es[:n]
	for i, s := range ch.ics {
		if len(es) == 0 {
			break
		}
		if s.batch != nil && b != nil {
			es = p.onSendBatch(i, s, es, b)
			continue
		}
		n = 0
		for _, e := range es {
			if o, err := p.onSend(i, s, e); err != nil {
				p.end(b, e, o, err)
				continue
			}
			es[n] = e
			n++
		}
		es = es[:n]
	}

	var now time.Time
	n = 0
	for _, e := range es {
		if err := p.seal(ch, e); err != nil {
			p.end(b, e, Failed, err)
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
	if ch.part.bp != nil && b != nil {
		p.precompute(ch.part, es, b)
	}
	return es
}

// onSend runs OnSend of interceptor i, s, on e's record with the record's
// context. It returns the outcome and error of a record that ends here
// (dropped by the interceptor, or failed or dropped by its failure policy),
// or a nil error if the record goes on.
func (p *Producer) onSend(i int, s *interceptorSlot, e *envelope) (Outcome, error) {
	g := &s.send
	if !g.allow(1) {
		return p.sendFailed(i, s, e, nil)
	}
	if s.acks {
		e.seen |= 1 << i // to be given OnAck
	}
	r := e.rec
	saved := *r
	var v plugins.Verdict
	err := g.call(1, func() (err error) {
		v, err = s.ic.OnSend(e.ctx, r)
		return err
	})
	if err == nil && v != plugins.Continue && v != plugins.Drop {
		err = fmt.Errorf("invalid verdict %d", v)
	}
	if err != nil {
		*r = saved
		g.failed(err)
		return p.sendFailed(i, s, e, err)
	}
	g.ok()
	if v == plugins.Drop {
		g.st.drops.Add(1)
		e.seen &^= 1 << i
		return Filtered, fmt.Errorf("%w by interceptor %q", ErrFiltered, g.name)
	}
	return 0, nil
}

// sendFailed applies interceptor s's failure policy to e, on which its
// OnSend failed with err or was bypassed (err nil).
func (p *Producer) sendFailed(i int, s *interceptorSlot, e *envelope, err error) (Outcome, error) {
	g := &s.send
	switch g.policy {
	case FailRecord:
		return Failed, g.recordError(err)
	case DropRecord:
		g.st.drops.Add(1)
		e.seen &^= 1 << i
		return Filtered, g.recordError(err)
	}
	return 0, nil
}

// onSendBatch runs interceptor i, which takes batches, over the records of
// es, and returns those that go on. A failed call, or a failed record,
// leaves the record as it was (plugins.BatchInterceptor's contract) and
// counts one failure per record, to which the failure policy applies; an
// invalid verdict counts as a failure, but as the record may have been
// changed, it goes on as it is under SkipPlugin.
func (p *Producer) onSendBatch(i int, s *interceptorSlot, es []*envelope, b *stager) []*envelope {
	g := &s.send
	if !g.allow(len(es)) {
		n := 0
		for _, e := range es {
			if o, err := p.sendFailed(i, s, e, nil); err != nil {
				p.end(b, e, o, err)
				continue
			}
			es[n] = e
			n++
		}
		return es[:n]
	}
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
	err := g.call(m, func() error { return s.batch.OnSendBatch(p.life, recs, verdicts, errs) })
	if err != nil && p.life.Err() != nil {
		// Close ended the call (see Close): the records fail as closed,
		// whatever the plugin's policy, and the plugin is not counted
		// as failing. Under "skip" they would go on without its
		// changes, into a client that is closing.
		for _, e := range es {
			p.end(b, e, Failed, fmt.Errorf("%w: the call of interceptor %q was stopped: %v", ErrClosed, g.name, err))
		}
		clear(recs)
		clear(errs)
		return es[:0]
	}
	n := 0
	for j, e := range es {
		ferr := err
		if ferr == nil {
			if ferr = errs[j]; ferr == nil && verdicts[j] != plugins.Continue && verdicts[j] != plugins.Drop {
				ferr = fmt.Errorf("invalid verdict %d", verdicts[j])
			}
		}
		if ferr != nil {
			g.failed(ferr)
			if o, rerr := p.sendFailed(i, s, e, ferr); rerr != nil {
				p.end(b, e, o, rerr)
				continue
			}
		} else {
			g.ok()
			if verdicts[j] == plugins.Drop {
				g.st.drops.Add(1)
				e.seen &^= 1 << i
				p.end(b, e, Filtered, fmt.Errorf("%w by interceptor %q", ErrFiltered, g.name))
				continue
			}
		}
		es[n] = e
		n++
	}
	clear(recs)
	clear(errs)
	return es[:n]
}

// seal runs the serializers of ch on e's record, which the interceptors are
// done with, and fills in the kgo.Record to produce. It returns why the
// record fails, if it does, which the caller ends.
func (p *Producer) seal(ch *chain, e *envelope) error {
	r := e.rec
	if r.Topic == "" {
		return ErrNoTopic
	}
	key, val := r.Key, r.Value
	if ch.keySer != nil || ch.valSer != nil {
		var err error
		if key != nil && ch.keySer != nil {
			if key, err = ch.keySer.serialize(e.ctx, r); err != nil {
				return err
			}
		}
		if val != nil && ch.valSer != nil {
			if val, err = ch.valSer.serialize(e.ctx, r); err != nil {
				return err
			}
		}
		// Only now: both serializers see the record as the
		// interceptors left it.
		r.Key, r.Value = key, val
	}

	e.origPart = r.Partition
	if r.HasPartition {
		e.explicit = true
	} else if ch.part.explicit {
		return fmt.Errorf("partitioner %q: %w", ch.part.g.name, plugins.ErrNoPartition)
	}
	e.kr.Topic = r.Topic
	e.kr.Key = key
	e.kr.Value = val
	e.kr.Headers = r.Headers
	e.kr.Timestamp = r.Timestamp
	e.kr.Partition = r.Partition
	return nil
}

// serialize runs the serializer; a failure always fails the record.
func (s *serializerSlot) serialize(ctx context.Context, r *plugins.Record) (b []byte, err error) {
	g := &s.g
	err = g.call(1, func() (err error) {
		b, err = s.s.Serialize(ctx, s.target, r)
		return err
	})
	if err != nil {
		g.failed(err)
		return nil, &PluginError{Kind: g.kind, Plugin: g.name, Hook: g.hook, Err: err, sentinel: ErrSerialize,
			msg: fmt.Sprintf("%v: %s serializer %q: %v", ErrSerialize, s.target, g.name, err)}
	}
	return b, nil
}

// precompute asks partitioner s, which takes batches, for the partitions of
// the records of es that do not name theirs and whose topic's partition
// count is known, in one call, and leaves each answer in the record's
// envelope for topicPartitioner.partition, which decides. Failures are
// counted here; records it leaves out are partitioned one at a time.
//
// The partitioner is given the callers' records themselves, which seal left
// as they are produced (serialized key and value, final topic, headers and
// timestamp, no partition): unlike one copied for it, as partition does,
// that costs no copy.
func (p *Producer) precompute(s *partitionerSlot, es []*envelope, b *stager) {
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
	g := &s.g
	penvs := b.penvs[:m]
	if !g.allow(m) {
		// Bypassed: the policy applies to each record.
		for j, e := range penvs {
			e.pre, e.preN, e.prePart = true, b.nums[j], -1
			if g.policy == FailRecord {
				e.partErr = g.recordError(nil)
			}
		}
		clear(b.recs[:m])
		clear(penvs)
		return
	}
	recs, nums, out, errs := b.recs[:m], b.nums[:m], b.parts[:m], b.errs[:m]
	err := g.call(m, func() error { return s.bp.PartitionBatch(p.life, recs, nums, out, errs) })
	for j, e := range penvs {
		e.pre, e.preN, e.prePart = true, nums[j], -1
		ferr := err
		if ferr == nil {
			ferr = errs[j]
		}
		switch part := out[j]; {
		case ferr != nil:
		case part >= 0 && part < nums[j]:
			e.prePart = part
			g.ok()
			continue
		case part == plugins.DefaultPartition:
			g.ok()
			continue
		default:
			ferr = fmt.Errorf("partition %d out of range [0, %d)", part, nums[j])
		}
		g.failed(ferr)
		if g.policy == FailRecord {
			e.partErr = g.recordError(ferr)
		}
	}
	clear(recs)
	clear(errs)
	clear(penvs)
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
