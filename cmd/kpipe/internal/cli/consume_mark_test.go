package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// TestMarkOutcomes: only records with an outcome are marked for commit, and
// in each partition none from the first interrupted record on.
func TestMarkOutcomes(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumeTopics("t"),
		kgo.ConsumerGroup("g"), kgo.AutoCommitMarks())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := func(p int32, o int64) *kgo.Record { return &kgo.Record{Topic: "t", Partition: p, Offset: o} }
	interrupted := pipeline.Rejected{Record: rec(0, 3), Err: interruptedErr(t)}
	got := pipeline.Consumed{
		Delivered: []*kgo.Record{rec(0, 0), rec(0, 4), rec(1, 7)},
		Filtered:  []pipeline.Rejected{{Record: rec(0, 1)}, {Record: rec(1, 8)}},
		Failed: []pipeline.Rejected{
			{Record: rec(0, 2), Err: errors.New("plugin failed")},
			interrupted,
			{Record: rec(1, 9), Err: errors.New("plugin failed")},
		},
	}
	markOutcomes(cl, got)
	marked := cl.MarkedOffsets()["t"]
	// Partition 0: offsets 0-2 have outcomes, 3 was interrupted, so 4
	// (delivered after it in the fetch) must not be committed: next is 3.
	// Partition 1: every record has an outcome: next is 10.
	want := map[int32]int64{0: 3, 1: 10}
	for p, o := range want {
		if m, ok := marked[p]; !ok || m.Offset != o {
			t.Errorf("partition %d: marked %+v (found %v), want next offset %d", p, m, ok, o)
		}
	}
}

// interruptedErr returns the error of a record that Process did not run
// through its plugins because its context had ended.
func interruptedErr(t *testing.T) error {
	t.Helper()
	pc, err := pipeline.NewConsumer(nil, pipeline.ConsumeInterceptor("noop", noopConsume{}))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := pc.Process(ctx, []*kgo.Record{{Topic: "t"}})
	if len(got.Failed) != 1 || !pipeline.IsInterrupted(got.Failed[0].Err) {
		t.Fatalf("Process with an ended context: %+v", got)
	}
	return got.Failed[0].Err
}

type noopConsume struct{}

func (noopConsume) OnConsume(context.Context, *kgo.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}
