package crossclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testenv"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// TestKpipeCommittedRecordsSeenByOtherClients produces the scenario through
// kpipe's pipeline (transactional, default partitioner) and requires kcat and
// kafka-python, reading read_committed, to see exactly the committed records
// with the same keys, values, headers, partitions and offsets.
func TestKpipeCommittedRecordsSeenByOtherClients(t *testing.T) {
	t.Parallel()
	tl := requireTools(t)
	brokers := testBrokers(t)
	topic := createTopic(t, brokers, 3)

	p := newPipeline(t, brokers, topic, pipeline.TransactionalID("crossclient-"+topic))
	committed, aborted := runScenario(t, &kpipeProducer{p: p})
	checkReaders(t, tl, brokers, topic, committed, aborted)
}

// TestKpipeDefaultPartitionerMatchesOtherClients requires keyed records that
// kpipe produces with its default partitioner to land on the same partitions
// as records with the same keys that kcat produces with librdkafka's
// murmur2_random partitioner and that kafka-python produces with its default
// (murmur2) partitioner.
func TestKpipeDefaultPartitionerMatchesOtherClients(t *testing.T) {
	t.Parallel()
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

	// kafka-python: its default partitioner hashes keys with murmur2.
	in.Reset()
	for _, k := range keys {
		fmt.Fprintf(&in, "{\"key\":%q,\"value\":%q}\n", hex.EncodeToString([]byte(k)), hex.EncodeToString([]byte("kafka-python")))
	}
	if err := runStdin(ctx, &in, tl.python, tl.produceScript, "--bootstrap", brokers, "--topic", topic); err != nil {
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
	byProducer := map[string]map[string]int32{"kcat": {}, "kafka-python": {}, "kpipe": {}}
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
		kp, ok := byProducer["kpipe"][k]
		if !ok {
			t.Errorf("key %q: the record kpipe produced was not read back", k)
			continue
		}
		for _, other := range []string{"kcat", "kafka-python"} {
			switch op, ok := byProducer[other][k]; {
			case !ok:
				t.Errorf("key %q: the record %s produced was not read back", k, other)
			case op != kp:
				t.Errorf("key %q: kpipe put it on partition %d, %s on %d", k, kp, other, op)
			}
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

// TestKpipeCompressionReadByOtherClients produces batches of several records
// with each compression codec through kpipe, checks on the wire that the
// batches carry that codec, and requires kcat and kafka-python to read the
// records back unchanged.
func TestKpipeCompressionReadByOtherClients(t *testing.T) {
	t.Parallel()
	tl := requireTools(t)
	requirePythonCodecs(t, tl)
	brokers := testBrokers(t)

	for _, tc := range []struct {
		codec pipeline.Codec
		attr  int16 // the codec's value in a record batch's attributes
	}{
		{pipeline.NoCompression, 0},
		{pipeline.Gzip, 1},
		{pipeline.Snappy, 2},
		{pipeline.LZ4, 3},
		{pipeline.Zstd, 4},
	} {
		t.Run(tc.codec.String(), func(t *testing.T) {
			t.Parallel()
			topic := createTopic(t, brokers, 1)
			p := newPipeline(t, brokers, topic, pipeline.Compression(tc.codec), pipeline.Linger(100*time.Millisecond))

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			const n = 40
			want := make([]Record, n)
			errs := make(chan error, n)
			for i := range n {
				r := &plugins.Record{
					Key: []byte(fmt.Sprintf("key-%d", i)),
					// Repetitive, so that every codec shrinks it and
					// the client keeps the compressed form.
					Value:   []byte(strings.Repeat(fmt.Sprintf("record %d of a compressed batch; ", i), 8)),
					Headers: []plugins.Header{{Key: "codec", Value: []byte(tc.codec.String())}},
				}
				want[i] = Record{Key: r.Key, Value: r.Value, Headers: r.Headers}
				p.Send(ctx, r, func(_ *plugins.Record, res pipeline.Result) {
					if res.Outcome != pipeline.Delivered {
						errs <- fmt.Errorf("record %d: %v: %v", i, res.Outcome, res.Err)
						return
					}
					want[i].Partition, want[i].Offset = res.Partition, res.Offset
					errs <- nil
				})
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			sortRecords(want)

			batches := fetchBatches(t, brokers, topic)
			multi := false
			for _, b := range batches {
				if b.codec != tc.attr {
					t.Errorf("batch at offset %d: codec %d in its attributes, want %d (%v)", b.firstOffset, b.codec, tc.attr, tc.codec)
				}
				multi = multi || b.records > 1
			}
			if !multi {
				t.Errorf("no batch holds more than one record (%d batches); the check needs real batches", len(batches))
			}

			tl.expectCommitted(ctx, t, brokers, topic, want, "what kpipe produced")
		})
	}
}

// requirePythonCodecs requires kafka-python to decompress every codec; it
// needs the lz4, python-snappy and zstandard packages for that
// (pip install 'kafka-python[lz4,snappy,zstd]').
func requirePythonCodecs(t *testing.T, tl tools) {
	t.Helper()
	const check = "import sys, kafka.codec as c; sys.exit(not (c.has_gzip() and c.has_snappy() and c.has_lz4() and c.has_zstd()))"
	if out, err := exec.Command(tl.python, "-c", check).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "kafka-python lacks a compression codec (pip install 'kafka-python[lz4,snappy,zstd]'): %v: %s", err, out)
	}
}
