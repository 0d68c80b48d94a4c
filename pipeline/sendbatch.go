package pipeline

import (
	"context"
	"sync"

	"github.com/kpipe/kpipe/plugins"
)

// SendBatch sends the records of rs, in order, as Send sends each of them
// with ctx and cb (one outcome per record, cb called once per record with
// it), and runs them through the stages together: with stage batching on
// (StageBatch), interceptors and a partitioner that take batches are called
// once per up to StageBatch's maxRecords records of rs instead of once per
// record, and the records go to the client at once, without waiting for
// the stage linger or for records of other Sends. Without stage batching,
// or when the current chain has no stage that takes batches, each record
// goes through the stages alone, as with Send. Either way SendBatch calls
// of several goroutines run in parallel.
//
// It is for callers that receive records already batched (kpipe gateway:
// the record batches of a client's produce request). Records queued by
// Send before go to the client first. The producer owns each record until
// its callback, as with Send; the slice rs itself is not kept and may be
// reused once SendBatch returns. Single-record plugin calls get ctx; batch
// calls get the producer's context, as with Send.
//
// SendBatch blocks while the client's buffer is full, as Send does; once
// one of its records waited MaxBlock for room in vain, the following ones
// that find no room fail at once with ErrBufferFull instead of waiting
// MaxBlock each.
func (p *Producer) SendBatch(ctx context.Context, rs []*plugins.Record, cb func(*plugins.Record, Result)) {
	if len(rs) == 0 {
		return
	}
	b := p.stage
	var es []*envelope
	batching := false
	// The batch's envelopes come in one allocation rather than one each
	// (BenchmarkRun); the memory goes back once the last of them is
	// complete, as the records of a batch are at about the same time.
	slab := make([]envelope, len(rs))
	for i, r := range rs {
		e := p.admit(ctx, r, cb, &slab[i])
		if e == nil {
			continue
		}
		if es == nil {
			es = make([]*envelope, 0, len(rs))
		}
		es = append(es, e)
		batching = batching || (b != nil && e.ch.batching)
	}
	if len(es) == 0 {
		return
	}
	if b != nil && b.busy.Load() {
		// Records queued by Send before go first.
		p.runPending(false)
	}
	if !batching {
		gaveUp := false
		for w := es; len(w) > 0; {
			c := sameChain(w, len(w))
			gaveUp = p.produce(gaveUp, p.run(w[0].ch, w[:c], nil)...)
			w = w[c:]
		}
		return
	}
	// The batch runs on scratch space of its own rather than the
	// stager's, which would take procMu: SendBatch calls of several
	// goroutines (the gateway's connections) run their stages in
	// parallel, as Sends without stage batching do. Their order among
	// themselves is the callers' to keep.
	s := getScratch(b.max)
	p.runChunks(s, es)
	if done := s.done; len(done) > 0 {
		s.done = nil
		// A Flush that starts while they complete waits for them, as
		// for a runner's.
		b.completing.Add(1)
		p.completeRun(b, done)
		s.spare = done[:0]
	}
	scratchPool.Put(s)
}

// scratchPool holds stagers used only for the scratch space of a stage
// batch run by SendBatch (recs, verdicts, errs, penvs, nums, parts, done):
// no timer, no pending records, never locked by procMu.
var scratchPool sync.Pool

// getScratch returns a scratch stager for batches of up to max records.
func getScratch(max int) *stager {
	if s, _ := scratchPool.Get().(*stager); s != nil && s.max == max {
		return s
	}
	s := &stager{max: max}
	s.makeScratch()
	return s
}

// sameChain returns how many records at the start of es, at most max, entered
// the chain of the first.
func sameChain(es []*envelope, max int) int {
	c, ch := 1, es[0].ch
	for c < len(es) && c < max && es[c].ch == ch {
		c++
	}
	return c
}

// runChunks runs the records of es through the stages in batches of at most
// b.max records of one chain each, and hands those that go on to the
// client. The caller holds b.procMu, or b is its own scratch stager.
func (p *Producer) runChunks(b *stager, es []*envelope) {
	gaveUp := false // MaxBlock bounds the whole of es (see produce)
	for len(es) > 0 {
		c := sameChain(es, b.max)
		gaveUp = p.produce(gaveUp, p.run(es[0].ch, es[:c], b)...)
		es = es[c:]
	}
}

// releaseProc releases b.procMu, which the caller holds after a run of the
// stages, and then completes the records the run failed or filtered
// (completion).
func (p *Producer) releaseProc(b *stager) {
	done := b.done
	if len(done) > 0 {
		b.done = nil
		b.completing.Add(1)
	}
	b.procMu.Unlock()

	if len(done) == 0 {
		return
	}
	p.completeRun(b, done)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = done[:0]
	}
	b.mu.Unlock()
}

// completeRun completes the records a run of the stages failed or filtered
// (done), which the caller counted in b.completing before it let a Flush
// see the run end, and stops counting them.
func (p *Producer) completeRun(b *stager, done []completion) {
	for i := range done {
		p.complete(done[i].e, done[i].o, done[i].err)
		done[i] = completion{}
	}
	b.completing.Add(-1)
}
