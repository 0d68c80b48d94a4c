package crossclient

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/internal/testenv"
	"github.com/kpipe/kpipe/plugins"
)

// tools are the external clients the checks run.
type tools struct {
	kcat, python string
	// readScript and produceScript are scripts/kafka_read.py and
	// scripts/kafka_produce.py.
	readScript, produceScript string
}

// requireTools finds kcat, python3 with kafka-python, and the kafka-python
// scripts.
func requireTools(t *testing.T) tools {
	t.Helper()
	tl := tools{
		kcat:   testenv.RequireTool(t, "kcat"),
		python: testenv.RequireTool(t, "python3"),
	}
	if out, err := exec.Command(tl.python, "-c", "import kafka").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "python3 cannot import kafka-python (pip install 'kafka-python[lz4,snappy,zstd]'): %v: %s", err, out)
	}
	for _, s := range []struct {
		path *string
		name string
	}{{&tl.readScript, "kafka_read.py"}, {&tl.produceScript, "kafka_produce.py"}} {
		p, err := filepath.Abs(filepath.Join("..", "..", "scripts", s.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("script: %v", err)
		}
		*s.path = p
	}
	return tl
}

// testBrokers returns the test's brokers (testbroker.Brokers: the real
// cluster in KPIPE_TEST_BROKERS, or a fresh kfake) as one comma-separated
// bootstrap string, the form kcat and kafka-python take.
func testBrokers(t *testing.T) string {
	t.Helper()
	return strings.Join(testbroker.Brokers(t), ",")
}

// createTopic creates a topic with a unique name and returns the name.
func createTopic(t *testing.T, brokers string, partitions int32) string {
	t.Helper()
	return testbroker.CreateTopic(t, strings.Split(brokers, ","), partitions)
}

// step is one thing a scenario asks a producer to do.
type step struct {
	begin, commit, abort bool
	rec                  *plugins.Record
}

// txProducer is what the scenario needs from a producer under test.
type txProducer interface {
	Begin(t *testing.T)
	// Send produces r, honouring r.HasPartition. It may return before the
	// broker answered; landed must have been called when the Commit or
	// Abort that follows returns.
	Send(t *testing.T, r *plugins.Record, landed func(partition int32, offset int64, err error))
	// Commit and Abort flush what was sent, so that every record reaches
	// the log, then end the transaction.
	Commit(t *testing.T)
	Abort(t *testing.T)
}

func rec(key, value []byte, headers ...plugins.Header) *plugins.Record {
	return &plugins.Record{Key: key, Value: value, Headers: headers}
}

func hdr(k string, v []byte) plugins.Header { return plugins.Header{Key: k, Value: v} }

func at(r *plugins.Record, p int32) *plugins.Record {
	r.SetPartition(p)
	return r
}

// scenario is the record set every client must agree on: a committed
// transaction with keys, binary and empty and null keys and values,
// tombstones, repeated, empty and null headers and explicit partitions; an
// aborted transaction whose records reach the log; another committed one.
func scenario() []step {
	return []step{
		{begin: true},
		{rec: rec([]byte("k1"), []byte("v1"), hdr("h", []byte("1")))},
		{rec: rec([]byte("\x00\xffbin"), []byte{1, 2, 0, 0xfe},
			hdr("trace-id", []byte("abc")), hdr("trace-id", []byte("second")), hdr("empty", []byte{}))},
		{rec: rec([]byte("tombstone"), nil)},
		{rec: at(rec(nil, []byte("no key, partition 2")), 2)},
		{rec: at(rec([]byte("explicit"), []byte("partition 1"), hdr("null", nil)), 1)},
		{rec: rec([]byte{}, []byte{})},
		{rec: rec([]byte("ключ"), []byte("line 1\nline 2\t\"quoted\""), hdr("ключ", []byte("значение, с запятой=и равно")))},
		{commit: true},
		{begin: true},
		{rec: rec([]byte("aborted-1"), []byte("must not be seen"))},
		{rec: at(rec([]byte("aborted-2"), nil), 0)},
		{abort: true},
		{begin: true},
		{rec: rec([]byte("after-abort"), []byte("seen"))},
		{commit: true},
	}
}

// runScenario plays the scenario on p and returns the records of committed
// and of aborted transactions, as produced (with where they landed).
func runScenario(t *testing.T, p txProducer) (committed, aborted []Record) {
	t.Helper()
	type sent struct {
		want     Record
		explicit bool
		landed   chan error
	}
	var pending []*sent
	// settle collects the outcome of every pending record: the producer
	// must have reported them all by the time Commit or Abort returned.
	settle := func() []Record {
		var out []Record
		for _, s := range pending {
			select {
			case err := <-s.landed:
				if err != nil {
					t.Fatalf("record %s failed: %v", s.want, err)
				}
			default:
				t.Fatalf("record %s has no outcome after its transaction ended", s.want)
			}
			out = append(out, s.want)
		}
		pending = nil
		return out
	}
	for _, st := range scenario() {
		switch {
		case st.begin:
			p.Begin(t)
		case st.commit:
			p.Commit(t)
			committed = append(committed, settle()...)
		case st.abort:
			p.Abort(t)
			aborted = append(aborted, settle()...)
		default:
			s := &sent{
				want:     Record{Key: st.rec.Key, Value: st.rec.Value, Headers: slices.Clone(st.rec.Headers)},
				explicit: st.rec.HasPartition,
				landed:   make(chan error, 1),
			}
			asked := st.rec.Partition
			pending = append(pending, s)
			p.Send(t, st.rec, func(partition int32, offset int64, err error) {
				if err == nil && s.explicit && partition != asked {
					err = fmt.Errorf("asked for partition %d, landed on %d", asked, partition)
				}
				s.want.Partition, s.want.Offset = partition, offset
				s.landed <- err
			})
		}
	}
	sortRecords(committed)
	sortRecords(aborted)
	return committed, aborted
}

// checkReaders reads topic with kcat and kafka-python, read_committed, and
// requires both to see exactly the committed records; it also reads
// read_uncommitted with kafka-python and requires the aborted records there,
// which proves they reached the log and were filtered by the readers.
func checkReaders(t *testing.T, tl tools, brokers, topic string, committed, aborted []Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if len(committed) == 0 || len(aborted) == 0 {
		t.Fatalf("scenario produced %d committed and %d aborted records; want some of both", len(committed), len(aborted))
	}
	tl.expectCommitted(ctx, t, brokers, topic, committed, "what was committed")

	all, err := ReadPython(ctx, tl.python, tl.readScript, brokers, topic, ReadUncommitted)
	if err != nil {
		t.Fatalf("kafka-python read_uncommitted: %v", err)
	}
	for _, a := range aborted {
		if !slices.ContainsFunc(all, a.Equal) {
			t.Errorf("aborted record %s is not in the log (read_uncommitted), so read_committed proved nothing", a)
		}
	}
}

// TestReadersSeeCommittedFranzGo runs the scenario through a bare franz-go
// client, the reference the kpipe test is compared against: if this test
// fails, the readers or the broker are at fault, not kpipe.
func TestReadersSeeCommittedFranzGo(t *testing.T) {
	t.Parallel()
	tl := requireTools(t)
	brokers := testBrokers(t)
	topic := createTopic(t, brokers, 3)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("crossclient-"+topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	committed, aborted := runScenario(t, &kgoProducer{cl: cl})
	checkReaders(t, tl, brokers, topic, committed, aborted)
}

// kgoProducer plays the scenario on a transactional franz-go client. Records
// without an explicit partition go to partition 0 (ManualPartitioner).
type kgoProducer struct{ cl *kgo.Client }

func (p *kgoProducer) Begin(t *testing.T) {
	if err := p.cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
}

func (p *kgoProducer) Send(t *testing.T, r *plugins.Record, landed func(int32, int64, error)) {
	kr := &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Partition: r.Partition}
	p.cl.Produce(context.Background(), kr, func(kr *kgo.Record, err error) {
		landed(kr.Partition, kr.Offset, err)
	})
}

func (p *kgoProducer) end(t *testing.T, commit kgo.TransactionEndTry) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := p.cl.EndTransaction(ctx, commit); err != nil {
		t.Fatalf("end transaction: %v", err)
	}
}

func (p *kgoProducer) Commit(t *testing.T) { p.end(t, kgo.TryCommit) }
func (p *kgoProducer) Abort(t *testing.T)  { p.end(t, kgo.TryAbort) }

// runStdin runs a command with stdin and fails with its output if it fails.
func runStdin(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// batch is what fetchBatches reports of one record batch.
type batch struct {
	firstOffset int64
	codec       int16 // attributes & 7
	records     int32
}

// fetchBatches fetches partition 0 of topic with a raw Fetch request and
// returns its data batches (control batches left out), as they are on the
// wire: consumers decompress transparently, so only this shows the codec.
func fetchBatches(t *testing.T, brokers, topic string) []batch {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %+v", topic, mresp.Topics)
	}

	var out []batch
	for offset := int64(0); ; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxBytes = 16 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		ft.TopicID = mresp.Topics[0].TopicID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = 0
		fp.FetchOffset = offset
		fp.PartitionMaxBytes = 16 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch %s: error %d, %d topics", topic, resp.ErrorCode, len(resp.Topics))
		}
		part := resp.Topics[0].Partitions[0]
		if part.ErrorCode != 0 {
			t.Fatalf("fetch %s/0: %v", topic, kerr.ErrorForCode(part.ErrorCode))
		}
		raw := part.RecordBatches
		if len(raw) == 0 {
			return out
		}
		before := offset
		// Batch header: FirstOffset int64, Length int32, then at byte 21
		// Attributes int16 and at byte 57 the record count int32.
		for len(raw) >= 61 {
			size := 12 + int(binary.BigEndian.Uint32(raw[8:12]))
			if size > len(raw) {
				break // a partial batch at the end of the response
			}
			first := int64(binary.BigEndian.Uint64(raw[0:8]))
			attrs := int16(binary.BigEndian.Uint16(raw[21:23]))
			count := int32(binary.BigEndian.Uint32(raw[57:61]))
			lastDelta := int32(binary.BigEndian.Uint32(raw[23:27]))
			if attrs&0x20 == 0 { // not a control batch
				out = append(out, batch{firstOffset: first, codec: attrs & 7, records: count})
			}
			offset = first + int64(lastDelta) + 1
			raw = raw[size:]
		}
		if offset >= part.HighWatermark {
			return out
		}
		if offset == before {
			t.Fatalf("fetch %s/0 at offset %d: no complete batch in %d bytes", topic, offset, len(part.RecordBatches))
		}
	}
}

// expectCommitted reads topic with kcat and with kafka-python, both
// read_committed, and reports every difference from want, which is what was
// written (described by what).
func (tl tools) expectCommitted(ctx context.Context, t *testing.T, brokers, topic string, want []Record, what string) {
	t.Helper()
	for _, r := range []struct {
		name string
		read func() ([]Record, error)
	}{
		{"kcat", func() ([]Record, error) { return ReadKcat(ctx, tl.kcat, brokers, topic, ReadCommitted) }},
		{"kafka-python", func() ([]Record, error) {
			return ReadPython(ctx, tl.python, tl.readScript, brokers, topic, ReadCommitted)
		}},
	} {
		got, err := r.read()
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if d := Diff(want, got); d != nil {
			t.Errorf("%s (read_committed) differs from %s:\n%s", r.name, what, strings.Join(d, "\n"))
		}
	}
}
