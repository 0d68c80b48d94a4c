package gateway_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// countingBatchIC is a plugins.BatchInterceptor that counts its calls and
// drops records whose value starts with "drop".
type countingBatchIC struct {
	singles, batches, batched atomic.Int64
}

func (c *countingBatchIC) OnSend(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
	c.singles.Add(1)
	return verdict(r), nil
}

func (c *countingBatchIC) OnSendBatch(_ context.Context, rs []*plugins.Record, verdicts []plugins.Verdict, _ []error) error {
	c.batches.Add(1)
	c.batched.Add(int64(len(rs)))
	for i, r := range rs {
		verdicts[i] = verdict(r)
	}
	return nil
}

func verdict(r *plugins.Record) plugins.Verdict {
	if strings.HasPrefix(string(r.Value), "drop") {
		return plugins.Drop
	}
	return plugins.Continue
}

func (c *countingBatchIC) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }

// WantsAcks: no acknowledgements, so none waits for a batch of them.
func (c *countingBatchIC) WantsAcks() bool { return false }

// TestBatchPluginCalls: the records of a client's record batch go through
// the pipeline together, so that an interceptor that takes batches gets
// them in batch calls (of at most StageBatch's size), not one call per
// record, and without waiting for the stage linger (an hour here). Every
// record still has its own outcome: the dropped ones are filtered, the
// others delivered, and the client is told the batch succeeded.
func TestBatchPluginCalls(t *testing.T) {
	ic := &countingBatchIC{}
	f := start(t, nil, pipeline.Interceptor("count", ic), pipeline.StageBatch(64, time.Hour))
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	cl := f.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	const n = 1000
	var failed atomic.Int64
	for i := range n {
		v := "keep-" + strconv.Itoa(i)
		if i%10 == 0 {
			v = "drop-" + strconv.Itoa(i)
		}
		cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				t.Errorf("record %s: %v", r.Value, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := testbroker.ReadAll(t, f.brokers, topic, n-n/10, false)
	for j, r := range got {
		i := j + j/9 + 1 // the records kept, in order
		if want := "keep-" + strconv.Itoa(i); string(r.Value) != want {
			t.Fatalf("record %d read back is %q, want %q", j, r.Value, want)
		}
	}
	if c := ic.singles.Load(); c != 0 {
		t.Errorf("%d single OnSend calls, want none", c)
	}
	// At most 64 records a call: at least n/64 calls, and far fewer than
	// one per record.
	if b, r := ic.batches.Load(), ic.batched.Load(); r != n || b < n/64 || b > n/4 {
		t.Errorf("%d OnSendBatch calls for %d records, want %d records in %d to %d calls", b, r, n, n/64, n/4)
	}
}
