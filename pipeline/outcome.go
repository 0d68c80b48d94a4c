package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// This file is the end of a record's trip: the client's promise (or the
// stage path, for a record that never reached the client) gives the record
// its outcome, the interceptors that saw it get their acknowledgements,
// and done reports it to its callback.

// onPromise is the promise of every record sent with Send.
func (p *Producer) onPromise(kr *kgo.Record, err error) {
	p.bytesOut.Add(recordBytes(kr))
	p.finish(envelopeOf(kr), err, true)
}

// finish completes a record that went to the client. It reports whether
// the record is done; if not, the acknowledgement queue holds it (see ack).
// promise says that the client's promise called it, with e.kr as produced.
func (p *Producer) finish(e *envelope, err error, promise bool) bool {
	kr := &e.kr
	r := e.rec
	if err != nil {
		// Only a callback or an OnAck can look at the record now;
		// without them, leave its memory, out of the cache by now,
		// alone. With them: run left r's topic, key, value and
		// headers as produced, and the client does not change them;
		// the partitioner may have stored a partition in it, which
		// the record did not get.
		if e.cb != nil || e.seen != 0 {
			r.Timestamp = kr.Timestamp
			r.Partition, r.HasPartition = e.origPart, e.explicit
		}
		if e.partErr != nil {
			err = e.partErr // the partitioner failed it: see topicPartitioner.Partition
		} else {
			err = p.explain(e, err)
		}
		return p.ack(e, p.failure(e, Failed, err), plugins.Ack{Offset: -1, Err: err}, false)
	}
	// Delivered: the partitioner stored the timestamp and partition in
	// r for the callback and OnAck (topicPartitioner.Partition), unless
	// KgoOptions replaced it.
	if !e.stored && (e.cb != nil || e.seen != 0) {
		r.Timestamp, r.Partition, r.HasPartition = kr.Timestamp, kr.Partition, true
	}
	res := Result{Outcome: Delivered, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp, ChainVersion: e.ch.version}
	if p.acks0 {
		res.Offset = -1
	}
	return p.ack(e, res, plugins.Ack{Offset: res.Offset}, promise)
}

// explain wraps a client error with what it means for the record.
func (p *Producer) explain(e *envelope, err error) error {
	switch {
	case errors.Is(err, kerr.MessageTooLarge):
		size := len(e.kr.Key) + len(e.kr.Value)
		for _, h := range e.kr.Headers {
			size += len(h.Key) + len(h.Value)
		}
		return fmt.Errorf("%w: key, value and headers take %d bytes, the limit is %d (BatchMaxBytes) or the broker's max.message.bytes: %w", ErrRecordTooLarge, size, p.maxRec, err)
	case errors.Is(err, kgo.ErrClientClosed):
		p.closeFailed.Add(1)
		return fmt.Errorf("%w before the record was delivered: %w", ErrClosed, err)
	}
	return err
}

// failure is the Result of a record that ends with o (Failed or Filtered)
// and err.
func (p *Producer) failure(e *envelope, o Outcome, err error) Result {
	res := Result{Outcome: o, Topic: e.rec.Topic, Partition: -1, Offset: -1, Timestamp: e.kr.Timestamp, Err: err}
	if e.ch != nil {
		res.ChainVersion = e.ch.version
	}
	return res
}

// complete ends a record that did not reach the client, with a failure or
// filter outcome.
func (p *Producer) complete(e *envelope, o Outcome, err error) {
	p.ack(e, p.failure(e, o, err), plugins.Ack{Offset: -1, Err: err}, false)
}

// done reports res to the callback, counts the outcome and settles the
// record on its chain.
func (p *Producer) done(e *envelope, res Result) {
	if e.cb != nil {
		e.cb(e.rec, res)
	}
	// Counted after the callback: Close waits until every record is
	// counted.
	switch res.Outcome {
	case Delivered:
		p.delivered.Add(1)
	case Filtered:
		p.filtered.Add(1)
	default:
		p.failed.Add(1)
	}
	if e.ch != nil {
		p.leave(e.ch)
	}
	if p.closed.Load() && p.inFlight() == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// ackQueue is the only place acknowledgements are batched. A record that an
// interceptor taking batches of acknowledgements (plugins.AckBatcher) saw
// waits here, with its result, until the queue is delivered: then each
// interceptor of the record's chain gets the acknowledgements of the
// records it saw, an AckBatcher in one OnAckBatch call, any other in one
// OnAck call per record, and then each record's callback runs. A delivery
// happens when the queue holds the stage batch size or every record in
// flight (on the goroutine that queued the last one, unless a delivery is
// running), when its first record has waited the stage linger (on a
// timer's goroutine), and on Flush, SendSync and Close.
//
// The rule of every record in flight is for callers that wait for their
// outcomes before they send more (a gateway client's request, a producer
// sending one record at a time): no acknowledgement can join the queue
// until more records are sent, so the linger would only delay theirs.
type ackQueue struct {
	mu     sync.Mutex
	queued []ackEntry // guarded by mu
	armed  bool       // the timer is armed; guarded by mu
	timer  *time.Timer
	// check is the queue length at which ack next compares it with the
	// records in flight; guarded by mu. Reading that count reads the
	// Send side's admission word, whose cache line Send writes, so ack
	// reads it when the queue starts (check 0) and again only when the
	// queue has grown to the count it read then, not for every record.
	check int

	// delivering is held by the one delivery in progress, so that
	// interceptors see acknowledgements in queue order; what follows
	// belongs to its holder.
	delivering sync.Mutex
	taken      []ackEntry
	recs       []*plugins.Record
	acks       []plugins.Ack
	errs       []error
}

// ackEntry is a record waiting in the queue: its envelope, result and
// acknowledgement, and the copy of the record an AckBatcher is given. They
// are kept here rather than in the envelope, which every record pays for.
type ackEntry struct {
	e    *envelope
	res  Result
	ack  plugins.Ack
	view plugins.Record
}

// ack gives e, whose outcome res and acknowledgement ack are known, to the
// interceptors of its chain that saw it, and reports it to its callback:
// now, or, if an AckBatcher saw it, once the queue is delivered. It reports
// whether e is done (false: the queue holds it, and its callback has not
// run yet). view says that e.kr holds the record as produced (it was
// delivered), from which an AckBatcher's copy is made.
func (p *Producer) ack(e *envelope, res Result, ack plugins.Ack, view bool) bool {
	if e.ch == nil || e.seen&e.ch.ackBatchers == 0 {
		if e.seen != 0 {
			p.ackNow(e, ack)
		}
		p.done(e, res)
		return true
	}
	q := &p.acks
	q.mu.Lock()
	q.queued = append(q.queued, ackEntry{e: e, res: res, ack: ack})
	en := &q.queued[len(q.queued)-1]
	if view {
		// The client has just used kr on this core; the caller's
		// record was last written on the Send goroutine's core, and
		// reading it here was a cache miss per record (about 60ns per
		// record in BenchmarkProduce/wasm).
		kr := &e.kr
		en.view = recordOf(kr)
		en.view.Partition, en.view.HasPartition = kr.Partition, true
	} else {
		en.view = *e.rec
	}
	n := len(q.queued)
	now := n >= p.stage.max
	if !now && n >= q.check {
		if f := p.inFlight(); int64(n) >= f {
			now = true // every record in flight is here
		} else {
			q.check = int(min(f, int64(p.stage.max)))
		}
	}
	if !q.armed {
		q.armed = true
		q.timer.Reset(p.stage.linger)
	}
	q.mu.Unlock()
	if now && q.delivering.TryLock() {
		p.deliverQueued()
		q.delivering.Unlock()
	}
	return false
}

// ackNow calls OnAck of every interceptor that saw e, for a record that
// no AckBatcher saw.
func (p *Producer) ackNow(e *envelope, ack plugins.Ack) {
	for seen := e.seen; seen != 0; seen &= seen - 1 {
		p.onAck(e.ch.ics[bits.TrailingZeros64(seen)], e.rec, ack)
	}
}

// onAck calls OnAck of interceptor s through its gate.
func (p *Producer) onAck(s *interceptorSlot, r *plugins.Record, ack plugins.Ack) {
	g := &s.ack
	if !g.allow(1) {
		return
	}
	err := g.call(1, func() error { return s.ic.OnAck(context.Background(), r, ack) })
	if err != nil {
		g.failed(err)
	} else {
		g.ok()
	}
}

// flushAcks delivers the acknowledgement queue now.
func (p *Producer) flushAcks() {
	if p.stage == nil {
		return
	}
	q := &p.acks
	q.delivering.Lock()
	p.deliverQueued()
	q.delivering.Unlock()
}

// deliverQueued delivers the queue until it is empty. The caller holds
// delivering.
func (p *Producer) deliverQueued() {
	q := &p.acks
	for {
		q.mu.Lock()
		es := q.queued
		q.queued, q.taken = q.taken[:0], nil
		q.check = 0
		if len(es) == 0 {
			q.armed = false
			q.timer.Stop()
		}
		q.mu.Unlock()
		if len(es) == 0 {
			q.taken = es
			return
		}
		for a := 0; a < len(es); {
			b := a + 1
			for b < len(es) && es[b].e.ch == es[a].e.ch {
				b++
			}
			p.deliver(es[a].e.ch, es[a:b])
			a = b
		}
		for i := range es {
			p.done(es[i].e, es[i].res)
			es[i] = ackEntry{}
		}
		q.taken = es[:0]
	}
}

// deliver gives the acknowledgements of the queued records es, of chain
// ch, to the interceptors that saw them, in chain order: AckBatchers in one
// OnAckBatch call for the records they saw, other interceptors one OnAck
// per record. The caller holds delivering.
func (p *Producer) deliver(ch *chain, es []ackEntry) {
	var seen uint64
	for i := range es {
		seen |= es[i].e.seen
	}
	for ; seen != 0; seen &= seen - 1 {
		i := bits.TrailingZeros64(seen)
		s := ch.ics[i]
		if s.ackB != nil {
			p.ackBatch(s, uint64(1)<<i, es)
			continue
		}
		for j := range es {
			if es[j].e.seen&(1<<i) != 0 {
				p.onAck(s, es[j].e.rec, es[j].ack)
			}
		}
	}
}

// ackBatch gives AckBatcher s the acknowledgements of the records of es it
// saw (bit), in one call. The caller holds delivering.
func (p *Producer) ackBatch(s *interceptorSlot, bit uint64, es []ackEntry) {
	q := &p.acks
	q.recs, q.acks = q.recs[:0], q.acks[:0]
	for j := range es {
		if es[j].e.seen&bit != 0 {
			q.recs = append(q.recs, &es[j].view)
			q.acks = append(q.acks, es[j].ack)
		}
	}
	m := len(q.recs)
	if m == 0 {
		return
	}
	g := &s.ack
	if g.allow(m) {
		if cap(q.errs) < m {
			q.errs = make([]error, m)
		}
		errs := q.errs[:m]
		err := g.call(m, func() error { return s.ackB.OnAckBatch(p.life, q.recs, q.acks, errs) })
		for j := range m {
			if ferr := err; ferr != nil || errs[j] != nil {
				if ferr == nil {
					ferr = errs[j]
				}
				g.failed(ferr)
			} else {
				g.ok()
			}
		}
		clear(errs)
	}
	clear(q.recs)
	clear(q.acks)
}
