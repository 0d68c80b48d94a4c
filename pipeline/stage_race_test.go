package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// Close while four goroutines send batched records (some filtered, acks
// queued in an AckBatcher): every callback runs exactly once, nothing is
// left in flight, and every queued acknowledgement was delivered.
func TestStageBatchCloseRace(t *testing.T) {
	for round := range 3 {
		e := setup(t, 2)
		ic := &batchIC{}
		ab := &ackBatcher{}
		p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.Interceptor("acks", ab),
			pipeline.Partitioner("bp", &batchPart{}), pipeline.StageBatch(8, time.Millisecond))
		ctx := ctxT(t)
		var sent, called atomic.Int64
		var twice atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					v := fmt.Sprintf("p%d-%d-%d", i%2, g, i)
					if i%5 == 4 {
						v = "drop" + v
					}
					var once atomic.Bool
					sent.Add(1)
					p.Send(ctx, &plugins.Record{Value: []byte(v)}, func(*plugins.Record, pipeline.Result) {
						if once.Swap(true) {
							twice.Add(1)
						}
						called.Add(1)
					})
				}
			}()
		}
		time.Sleep(time.Duration(5+round*7) * time.Millisecond)
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.Close(cctx)
		cancel()
		close(stop)
		wg.Wait()
		s := p.Stats()
		if called.Load() != sent.Load() || twice.Load() != 0 || s.InFlight != 0 {
			t.Errorf("round %d: sent %d, called %d, twice %d, stats %+v", round, sent.Load(), called.Load(), twice.Load(), s)
		}
		if err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		if ab.queueCalls.Load() != ab.delivered.Load() {
			t.Errorf("round %d: acks queued %d delivered %d", round, ab.queueCalls.Load(), ab.delivered.Load())
		}
	}
}

// One goroutine's records keep their order through everything that makes
// the stages run or not: SetPartitioner swaps between a partitioner that
// takes batches and one that does not, SendSync, Flush and the timer, while
// another goroutine sends too.
func TestStageBatchOrderOneSender(t *testing.T) {
	e := setup(t, 1)
	p := e.producer(t, pipeline.Partitioner("bp", &batchPart{}), pipeline.StageBatch(8, 500*time.Microsecond))
	ctx := ctxT(t)
	const n = 3000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	// The other sender stops after n records at most: the client's Flush
	// waits for records sent while it runs too, so an endless stream
	// that outpaces the broker (as it can under the race detector on one
	// CPU) would keep the Flush calls below from ever returning.
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Send(ctx, &plugins.Record{Value: []byte("p0-noise")}, nil)
			if i%100 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for i := range n {
		v := fmt.Sprintf("p0-main-%05d", i)
		switch {
		case i%37 == 0:
			if (i/37)%2 == 0 {
				p.SetPartitioner("plain", fixed(0))
			} else {
				p.SetPartitioner("bp", &batchPart{})
			}
		}
		switch {
		case i%50 == 0:
			if res := p.SendSync(ctx, &plugins.Record{Value: []byte(v)}); res.Outcome != pipeline.Delivered {
				t.Fatalf("%s: %+v", v, res)
			}
		default:
			p.Send(ctx, &plugins.Record{Value: []byte(v)}, nil)
		}
		if i%91 == 0 {
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 0 {
			time.Sleep(time.Duration(i%3) * 300 * time.Microsecond)
		}
	}
	close(stop)
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := p.Stats().Delivered
	got := e.read(t, int(total))
	next := 0
	for _, r := range got {
		if r.value == "p0-noise" {
			continue
		}
		if want := fmt.Sprintf("p0-main-%05d", next); r.value != want {
			t.Fatalf("read %s, want %s", r.value, want)
		}
		next++
	}
	if next != n {
		t.Errorf("read %d main records, want %d", next, n)
	}
}
