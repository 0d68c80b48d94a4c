package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// The producer recycles its per-record state. Under -race this checks that
// nothing reads a record's state after it was recycled: many goroutines
// send to topics whose metadata is not loaded yet (franz-go then waits for
// it in a goroutine holding the first record's contexts), with contexts
// cancelled right after Send, explicit partitions, filtered records and
// SendSync mixed in, and every callback and OnAck checks that it sees its
// own record.
func TestRecordStateRecycling(t *testing.T) {
	e := setup(t, 4)
	topics := []string{e.topic, testbroker.CreateTopic(t, e.brokers, 4), testbroker.CreateTopic(t, e.brokers, 4)}
	var acks, badAcks atomic.Int64
	ic := interceptorFunc{
		send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
			if strings.HasSuffix(string(r.Value), "-drop") {
				return plugins.Drop, nil
			}
			return plugins.Continue, nil
		},
		ack: func(_ context.Context, r *plugins.Record, a plugins.Ack) error {
			acks.Add(1)
			if !strings.HasPrefix(string(r.Value), "v-") || a.Err == nil && (!r.HasPartition || a.Offset < 0) {
				badAcks.Add(1)
			}
			return nil
		},
	}
	p := e.producer(t, pipeline.Interceptor("check", ic))
	ctx := ctxT(t)

	const senders, perSender = 4, 1500
	var (
		wg                          sync.WaitGroup
		delivered, filtered, failed atomic.Int64
		drops, syncs                atomic.Int64
	)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				topic := topics[(g+i)%len(topics)]
				value := fmt.Sprintf("v-%d-%d", g, i)
				if i%10 == 9 {
					value += "-drop"
					drops.Add(1)
				}
				r := &plugins.Record{Topic: topic, Key: []byte(value), Value: []byte(value)}
				explicit := i%7 == 0
				if explicit {
					r.SetPartition(int32(i % 4))
				}
				check := func(got *plugins.Record, res pipeline.Result) {
					switch {
					case got != r || string(got.Value) != value || res.Topic != topic:
						t.Errorf("%s: callback got record %p %q (want %p), result %+v", value, got, got.Value, r, res)
					case res.Outcome == pipeline.Delivered:
						if explicit && res.Partition != int32(i%4) || res.Offset < 0 || got.Partition != res.Partition {
							t.Errorf("%s: delivered %+v, record partition %d", value, res, got.Partition)
						}
						delivered.Add(1)
					case res.Outcome == pipeline.Filtered:
						if !strings.HasSuffix(value, "-drop") || !errors.Is(res.Err, pipeline.ErrFiltered) {
							t.Errorf("%s: %+v", value, res)
						}
						filtered.Add(1)
					default:
						// A failed record keeps the partition it
						// was sent with, even if the partitioner
						// had chosen one.
						if !errors.Is(res.Err, context.Canceled) || got.HasPartition != explicit || explicit && got.Partition != int32(i%4) {
							t.Errorf("%s: %+v, record partition %d (set: %v)", value, res, got.Partition, got.HasPartition)
						}
						failed.Add(1)
					}
				}
				switch {
				case i%100 == 50:
					syncs.Add(1)
					check(r, p.SendSync(ctx, r))
				case i%5 == 0:
					c, cancel := context.WithCancel(ctx)
					var once atomic.Bool
					p.Send(c, r, func(got *plugins.Record, res pipeline.Result) {
						if !once.CompareAndSwap(false, true) {
							t.Errorf("%s: callback called twice", value)
						}
						check(got, res)
					})
					cancel()
				default:
					p.Send(ctx, r, check)
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := int64(senders * perSender)
	t.Logf("%d delivered, %d filtered, %d failed (cancelled), %d with SendSync", delivered.Load(), filtered.Load(), failed.Load(), syncs.Load())
	if got := delivered.Load() + filtered.Load() + failed.Load(); got != total {
		t.Fatalf("%d outcomes for %d records", got, total)
	}
	s := p.Stats()
	if s.Delivered != uint64(delivered.Load()) || s.Filtered != uint64(filtered.Load()) || s.Failed != uint64(failed.Load()) || s.InFlight != 0 {
		t.Errorf("stats %+v, callbacks saw %d delivered, %d filtered, %d failed", s, delivered.Load(), filtered.Load(), failed.Load())
	}
	if filtered.Load() != drops.Load() {
		t.Errorf("%d filtered, want %d", filtered.Load(), drops.Load())
	}
	if acks.Load() != total-drops.Load() || badAcks.Load() != 0 {
		t.Errorf("%d OnAck calls (%d wrong), want %d", acks.Load(), badAcks.Load(), total-drops.Load())
	}
	if delivered.Load() < total-drops.Load()-total/5 {
		t.Errorf("only %d delivered", delivered.Load())
	}
}

// A partitioner given with KgoOptions replaces the pipeline's; the callback
// and OnAck still get the record as produced.
func TestKgoPartitionerRecordFields(t *testing.T) {
	e := setup(t, 3)
	var acked atomic.Int32
	ic := interceptorFunc{ack: func(_ context.Context, r *plugins.Record, a plugins.Ack) error {
		if a.Err == nil && r.HasPartition && r.Partition == 2 && !r.Timestamp.IsZero() {
			acked.Add(1)
		}
		return nil
	}}
	p := e.producer(t, pipeline.Interceptor("check", ic),
		pipeline.KgoOptions(kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
			return func(*kgo.Record, int) int { return 2 }
		}))))
	ctx := ctxT(t)
	c := newCollector()
	recs := map[string]*plugins.Record{}
	for _, v := range values(5, "v-") {
		recs[v] = rec("", v)
		p.Send(ctx, recs[v], c.cb(t, v))
	}
	for v, res := range c.wait(t) {
		r := recs[v]
		if res.Outcome != pipeline.Delivered || res.Partition != 2 || !r.HasPartition || r.Partition != 2 || !r.Timestamp.Equal(res.Timestamp) {
			t.Errorf("%s: %+v, record partition %d (set: %v), timestamp %v", v, res, r.Partition, r.HasPartition, r.Timestamp)
		}
	}
	if n := acked.Load(); n != 5 {
		t.Errorf("%d OnAck calls saw the record as produced, want 5", n)
	}
}
