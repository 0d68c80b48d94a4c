package crossclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// TestKpipeCommittedRecordsSeenByOtherClients produces the scenario through
// kpipe's pipeline (transactional, default partitioner) and requires kcat and
// kafka-python, reading read_committed, to see exactly the committed records
// with the same keys, values, headers, partitions and offsets.
func TestKpipeCommittedRecordsSeenByOtherClients(t *testing.T) {
	tl := requireTools(t)
	brokers := testBrokers(t)
	topic := createTopic(t, brokers, 3)

	p := newPipeline(t, brokers, topic, pipeline.TransactionalID("crossclient-"+topic))
	committed, aborted := runScenario(t, &kpipeProducer{p: p})
	checkReaders(t, tl, brokers, topic, committed, aborted)
}

// TestKpipeDefaultPartitionerMatchesLibrdkafkaMurmur2 requires keyed records
// that kcat produces with librdkafka's murmur2_random partitioner and records
// with the same keys that kpipe produces with its default partitioner to land
// on the same partitions.
func TestKpipeDefaultPartitionerMatchesLibrdkafkaMurmur2(t *testing.T) {
	tl := requireTools(t)
	brokers := testBrokers(t)
	const partitions = 7
	topic := createTopic(t, brokers, partitions)

	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	keys = append(keys, "", "ключ", "a,b=c", "0")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// kcat: one "key\tkcat" line per record, keys split on the tab.
	var in bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&in, "%s\tkcat\n", k)
	}
	if err := runStdin(ctx, &in, tl.kcat, "-P", "-b", brokers, "-t", topic, "-K", "\t",
		"-X", "topic.partitioner=murmur2_random"); err != nil {
		t.Fatal(err)
	}

	p := newPipeline(t, brokers, topic)
	for _, k := range keys {
		res := p.SendSync(ctx, &plugins.Record{Key: []byte(k), Value: []byte("kpipe")})
		if res.Outcome != pipeline.Delivered {
			t.Fatalf("kpipe: key %q: %v: %v", k, res.Outcome, res.Err)
		}
	}

	got, err := ReadKcat(ctx, tl.kcat, brokers, topic, ReadCommitted)
	if err != nil {
		t.Fatal(err)
	}
	byProducer := map[string]map[string]int32{"kcat": {}, "kpipe": {}}
	used := map[int32]bool{}
	for _, r := range got {
		m, ok := byProducer[string(r.Value)]
		if !ok {
			t.Fatalf("unexpected record %s", r)
		}
		if _, dup := m[string(r.Key)]; dup {
			t.Fatalf("key %q produced twice by %s", r.Key, r.Value)
		}
		m[string(r.Key)] = r.Partition
		used[r.Partition] = true
	}
	for _, k := range keys {
		kp, ok1 := byProducer["kpipe"][k]
		kc, ok2 := byProducer["kcat"][k]
		switch {
		case !ok1 || !ok2:
			t.Errorf("key %q: read back from kpipe: %v, from kcat: %v", k, ok1, ok2)
		case kp != kc:
			t.Errorf("key %q: kpipe put it on partition %d, kcat (murmur2_random) on %d", k, kp, kc)
		}
	}
	// A partitioner that sends everything to one partition would agree
	// trivially; 64 keys over 7 partitions must use most of them.
	if len(used) < partitions-1 {
		t.Errorf("records landed on %d of %d partitions; the keys do not spread, so agreement proves little", len(used), partitions)
	}
}

// newPipeline returns a kpipe producer for topic, closed when the test ends.
func newPipeline(t *testing.T, brokers, topic string, opts ...pipeline.Option) *pipeline.Producer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts = append([]pipeline.Option{
		pipeline.Brokers(strings.Split(brokers, ",")...),
		pipeline.DefaultTopic(topic),
	}, opts...)
	p, err := pipeline.New(ctx, opts...)
	if err != nil {
		t.Fatalf("pipeline.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// kpipeProducer plays the scenario on a transactional pipeline.Producer.
type kpipeProducer struct{ p *pipeline.Producer }

func (k *kpipeProducer) Begin(t *testing.T) {
	if err := k.p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
}

func (k *kpipeProducer) Send(t *testing.T, r *plugins.Record, landed func(int32, int64, error)) {
	k.p.Send(context.Background(), r, func(_ *plugins.Record, res pipeline.Result) {
		err := res.Err
		if err == nil && res.Outcome != pipeline.Delivered {
			err = fmt.Errorf("outcome %v without an error", res.Outcome)
		}
		landed(res.Partition, res.Offset, err)
	})
}

func (k *kpipeProducer) Commit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
}

// Abort flushes first: AbortTransaction fails what is still buffered, and
// the scenario wants the aborted records written to the log.
func (k *kpipeProducer) Abort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
}
