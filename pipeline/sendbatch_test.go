package pipeline_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// SendBatch runs its records through the stages together: with stage
// batching on, a batch interceptor and a batch partitioner get them in
// calls of at most StageBatch's maxRecords, and the records go to the
// client without waiting for the stage linger (an hour here); without it,
// each record is run alone. Either way every record has exactly one
// outcome, the same as Send would give it, and the records keep their
// order.
func TestSendBatch(t *testing.T) {
	values := []string{"keep-0", "change-1", "drop-2", "err-3", "keep-4", "drop-5", "change-6", "err-7",
		"keep-8", "change-9", "keep-10", "drop-11", "p0-12", "keep-13", "change-14", "keep-15", "keep-16", "change-17"}
	for _, tc := range []struct {
		name string
		opt  pipeline.Option
		// batches: the sizes of the OnSendBatch calls; singles: OnSend calls.
		batches []int
		singles int64
	}{
		{"batched", pipeline.StageBatch(8, time.Hour), []int{8, 8, 2}, 0},
		{"unbatched", pipeline.StageBatch(1, 0), nil, int64(len(values))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, 1)
			ic := &batchIC{sizes: make(chan int, 10)}
			bp := &batchPart{}
			p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.Partitioner("part", bp), tc.opt, pipeline.CircuitBreaker(0, 0))
			// The producer learns the topic's partitions first: a
			// batch partitioner is given only records of topics whose
			// partitions are known.
			if r := p.SendSync(ctxT(t), rec("", "keep-warm")); r.Outcome != pipeline.Delivered {
				t.Fatalf("warm-up: %+v", r)
			}
			sends0, parts0 := ic.sends.Load(), bp.single.Load()
			rs := make([]*plugins.Record, 0, len(values)+1)
			ids := map[*plugins.Record]string{}
			for _, v := range values {
				r := rec("", v)
				ids[r] = v
				rs = append(rs, r)
			}
			rs = append(rs, nil) // fails alone
			var mu sync.Mutex
			var wg sync.WaitGroup
			wg.Add(len(rs))
			res := map[string]pipeline.Result{}
			p.SendBatch(ctxT(t), rs, func(r *plugins.Record, rr pipeline.Result) {
				mu.Lock()
				defer mu.Unlock()
				id := "nil"
				if r != nil {
					id = ids[r]
				}
				if _, dup := res[id]; dup {
					t.Errorf("%s: two outcomes", id)
				}
				res[id] = rr
				wg.Done()
			})
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done: // no Flush: SendBatch does not wait for the linger
			case <-time.After(testbroker.Timeout()):
				t.Fatalf("%d of %d outcomes", len(res), len(rs))
			}
			var sizes []int
			for len(ic.sizes) > 0 {
				sizes = append(sizes, <-ic.sizes)
			}
			if len(sizes) != len(tc.batches) || (len(sizes) > 0 && (sizes[0] != tc.batches[0] || sizes[len(sizes)-1] != tc.batches[len(tc.batches)-1])) {
				t.Errorf("OnSendBatch calls of %v records, want %v", sizes, tc.batches)
			}
			if got := ic.sends.Load() - sends0; got != tc.singles {
				t.Errorf("%d OnSend calls, want %d", got, tc.singles)
			}
			// The partitioner sees the records the interceptor kept:
			// in one call per OnSendBatch call, or one by one.
			if got, want := bp.batches.Load(), int64(len(tc.batches)); got != want {
				t.Errorf("%d PartitionBatch calls, want %d", got, want)
			}
			if tc.singles > 0 && bp.single.Load() == parts0 {
				t.Errorf("no Partition calls unbatched")
			}
			if r := res["nil"]; r.Outcome != pipeline.Failed {
				t.Errorf("nil record: %+v, want failed", r)
			}
			delivered := []string{"keep-warm"}
			for _, v := range values {
				r := res[v]
				want := pipeline.Delivered
				if strings.HasPrefix(v, "drop") {
					want = pipeline.Filtered
				}
				if r.Outcome != want {
					t.Errorf("%s: %+v, want %v", v, r, want)
				}
				if want == pipeline.Delivered {
					if strings.HasPrefix(v, "change") {
						v += "+b"
					}
					delivered = append(delivered, v)
				}
			}
			for i, r := range e.read(t, len(delivered)) {
				if r.value != delivered[i] {
					t.Errorf("record %d read back is %q, want %q", i, r.value, delivered[i])
				}
			}
		})
	}
}

// SendBatch calls of several goroutines run their stage batches in
// parallel, each on its own scratch space: every record has one outcome,
// and each goroutine's records keep their order.
func TestSendBatchConcurrent(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(8, time.Hour), pipeline.CircuitBreaker(0, 0))
	const senders, batches, size = 4, 20, 13
	var outcomes sync.WaitGroup
	outcomes.Add(senders * batches * size)
	var mu sync.Mutex
	res := map[string]pipeline.Result{}
	cb := func(r *plugins.Record, rr pipeline.Result) {
		mu.Lock()
		defer mu.Unlock()
		v := strings.TrimSuffix(string(r.Value), "+b")
		if _, dup := res[v]; dup {
			t.Errorf("%s: two outcomes", v)
		}
		res[v] = rr
		outcomes.Done()
	}
	var senderWG sync.WaitGroup
	for g := range senders {
		senderWG.Add(1)
		go func() {
			defer senderWG.Done()
			for i := range batches {
				rs := make([]*plugins.Record, size)
				for j := range rs {
					v := fmt.Sprintf("keep-%d-%03d", g, i*size+j)
					if j%5 == 0 {
						v = fmt.Sprintf("drop-%d-%03d", g, i*size+j)
					}
					rs[j] = rec("", v)
				}
				p.SendBatch(ctxT(t), rs, cb)
			}
		}()
	}
	senderWG.Wait()
	done := make(chan struct{})
	go func() { outcomes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testbroker.Timeout()):
		t.Fatalf("%d of %d outcomes", len(res), senders*batches*size)
	}
	kept := 0
	for v, r := range res {
		want := pipeline.Delivered
		if strings.HasPrefix(v, "drop") {
			want = pipeline.Filtered
		} else {
			kept++
		}
		if r.Outcome != want {
			t.Errorf("%s: %+v, want %v", v, r, want)
		}
	}
	if got := ic.batched.Load(); got != senders*batches*size || ic.sends.Load() != 0 {
		t.Errorf("%d records in batch calls, %d single calls; want %d and 0", got, ic.sends.Load(), senders*batches*size)
	}
	last := map[string]string{} // per sender, the last record read
	for _, r := range e.read(t, kept) {
		g := r.value[len("keep-"):strings.LastIndexByte(r.value, '-')]
		if r.value <= last[g] {
			t.Fatalf("sender %s: %s read after %s", g, r.value, last[g])
		}
		last[g] = r.value
	}
}
