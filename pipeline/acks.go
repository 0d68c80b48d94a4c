package pipeline

import (
	"context"
	"math/bits"
	"sync"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// ackQueue is the only place acknowledgements are batched. A record that an
// interceptor taking batches of acknowledgements (plugins.AckBatcher) saw
// waits here, with its result, until the queue is delivered: then each
// interceptor of the record's chain gets the acknowledgements of the
// records it saw, an AckBatcher in one OnAckBatch call, any other in one
// OnAck call per record, and then each record's callback runs. A delivery
// happens when the queue holds the stage batch size (on the goroutine that
// filled it, unless a delivery is running), when its first record has
// waited the stage linger (on a timer's goroutine), and on Flush, SendSync
// and Close.
type ackQueue struct {
	mu     sync.Mutex
	queued []*envelope // guarded by mu
	armed  bool        // the timer is armed; guarded by mu
	timer  *time.Timer

	// delivering is held by the one delivery in progress, so that
	// interceptors see acknowledgements in queue order; what follows
	// belongs to its holder.
	delivering sync.Mutex
	taken      []*envelope
	recs       []*plugins.Record
	acks       []plugins.Ack
	errs       []error
	idx        []int
	// envs recycles the envelopes of delivered records (envPool needs
	// one goroutine at a time: the holder of delivering).
	envs envPool
}

// ack gives e, whose outcome res and acknowledgement ack are known, to the
// interceptors of its chain that saw it, and reports it to its callback:
// now, or, if an AckBatcher saw it, once the queue is delivered. It reports
// whether e is done (false: the queue holds it, and it must not be
// recycled). view says that e.kr holds the record as produced (it was
// delivered), from which an AckBatcher's copy is made.
func (p *Producer) ack(e *envelope, res Result, ack plugins.Ack, view bool) bool {
	if e.ch == nil || e.seen&e.ch.ackBatchers == 0 {
		if e.seen != 0 {
			p.deliver(e.ch, []*envelope{e}, ack)
		}
		p.done(e, res)
		return true
	}
	e.res, e.ack = res, ack
	if view {
		// The client has just used kr on this core; the caller's
		// record was last written on the Send goroutine's core, and
		// reading it here was a cache miss per record (about 60ns per
		// record in BenchmarkProduce/wasm).
		kr := &e.kr
		e.view = recordOf(kr)
		e.view.Partition, e.view.HasPartition = kr.Partition, true
	} else {
		e.view = *e.rec
	}
	q := &p.acks
	q.mu.Lock()
	q.queued = append(q.queued, e)
	full := len(q.queued) >= p.stage.max
	if !q.armed {
		q.armed = true
		q.timer.Reset(p.stage.linger)
	}
	q.mu.Unlock()
	if full && q.delivering.TryLock() {
		p.deliverQueued()
		q.delivering.Unlock()
	}
	return false
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
			for b < len(es) && es[b].ch == es[a].ch {
				b++
			}
			p.deliver(es[a].ch, es[a:b], plugins.Ack{})
			a = b
		}
		for i, e := range es {
			p.done(e, e.res)
			q.envs.put(e)
			es[i] = nil
		}
		q.taken = es[:0]
	}
}

// deliver gives the acknowledgements of es, records of chain ch, to the
// interceptors that saw them, in chain order. A record run alone (one
// envelope, not queued) has its acknowledgement in ack; queued ones carry
// theirs. AckBatchers get one OnAckBatch call for the records they saw;
// other interceptors one OnAck per record.
func (p *Producer) deliver(ch *chain, es []*envelope, ack plugins.Ack) {
	queued := len(es) > 1 || es[0].seen&ch.ackBatchers != 0
	var seen uint64
	for _, e := range es {
		seen |= e.seen
	}
	for ; seen != 0; seen &= seen - 1 {
		i := bits.TrailingZeros64(seen)
		s := ch.ics[i]
		if s.ackB != nil && queued {
			p.ackBatch(s, uint64(1)<<i, es)
			continue
		}
		for _, e := range es {
			if e.seen&(1<<i) == 0 {
				continue
			}
			r, a := e.rec, ack
			if queued {
				a = e.ack
			}
			g := &s.ack
			if !g.allow(1) {
				continue
			}
			err := g.call(1, func() error { return s.ic.OnAck(context.Background(), r, a) })
			if err != nil {
				g.failed(err)
			} else {
				g.ok()
			}
		}
	}
}

// ackBatch gives AckBatcher s the acknowledgements of the records of es it
// saw (bit), in one call. The caller holds delivering.
func (p *Producer) ackBatch(s *interceptorSlot, bit uint64, es []*envelope) {
	q := &p.acks
	q.recs, q.acks, q.idx = q.recs[:0], q.acks[:0], q.idx[:0]
	for _, e := range es {
		if e.seen&bit != 0 {
			q.recs = append(q.recs, &e.view)
			q.acks = append(q.acks, e.ack)
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
