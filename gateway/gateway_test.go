package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
)

// fixture is a gateway in front of the test's broker.
type fixture struct {
	brokers []string // upstream
	addr    string   // the gateway
	gw      *gateway.Gateway
	prod    *pipeline.Producer
}

func start(t *testing.T, gwOpts []gateway.Option, opts ...pipeline.Option) *fixture {
	t.Helper()
	return startOn(t, testbroker.Brokers(t), gwOpts, opts...)
}

// startOn starts a gateway in front of brokers.
func startOn(t testing.TB, brokers []string, gwOpts []gateway.Option, opts ...pipeline.Option) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	prod, err := pipeline.New(ctx, append([]pipeline.Option{pipeline.Brokers(brokers...), pipeline.Linger(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	up, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(prod, up, gwOpts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, gateway.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
		if _, err := prod.Close(sctx); err != nil {
			t.Errorf("close: %v", err)
		}
		up.Close()
	})
	return &fixture{brokers: brokers, addr: l.Addr().String(), gw: gw, prod: prod}
}

// client is a franz-go producer pointed at the gateway.
func (f *fixture) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// endOffsets returns the end offsets of topic's partitions upstream: the
// number of records written to each.
func endOffsets(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	return testbroker.EndOffsets(t, brokers, topic)
}

// waitTotal waits until topic holds n records upstream.
func waitTotal(t *testing.T, brokers []string, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(testbroker.Timeout())
	for {
		got := total(endOffsets(t, brokers, topic))
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("%d records upstream in %s, want %d", got, topic, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func total(m map[int32]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// told is where a client was told its record was written.
type told struct {
	partition int32
	offset    int64
}

// sendEveryCodec runs a subtest for every codec, idempotent and not: a
// client sends 2,000 keyed records with two headers (one empty) and set
// timestamps through f's gateway, record i to partition i%3 of a new
// topic, and reads them back upstream, where each must be once, with its
// key, value, headers, timestamp and the client's partition. check then
// checks what the test adds, given the records read and where the client
// was told each one is (by key).
func sendEveryCodec(t *testing.T, f *fixture, check func(t *testing.T, topic string, got []*kgo.Record, told map[string]told)) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		for _, idem := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/idempotent=%v", c.name, idem), func(t *testing.T) {
				topic := testbroker.CreateTopic(t, f.brokers, 3)
				opts := []kgo.Opt{kgo.ProducerBatchCompression(c.codec), kgo.RecordPartitioner(kgo.ManualPartitioner())}
				if !idem {
					opts = append(opts, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
				}
				cl := f.client(t, opts...)
				const n = 2000
				ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
				defer cancel()
				ts := time.UnixMilli(1767323045000)
				var mu sync.Mutex
				at := map[string]told{}
				for i := range n {
					r := &kgo.Record{
						Topic: topic, Partition: int32(i % 3),
						Key:       []byte("key-" + strconv.Itoa(i)),
						Value:     []byte(fmt.Sprintf("value-%d-%0100d", i, i)),
						Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "empty"}},
						Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
					}
					cl.Produce(ctx, r, func(r *kgo.Record, err error) {
						if err != nil {
							t.Errorf("record %s: %v", r.Key, err)
							return
						}
						mu.Lock()
						at[string(r.Key)] = told{r.Partition, r.Offset}
						mu.Unlock()
					})
				}
				if err := cl.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				got := testbroker.ReadAll(t, f.brokers, topic, n, false)
				seen := map[string]bool{}
				for _, r := range got {
					k := string(r.Key)
					if seen[k] {
						t.Fatalf("record %s twice upstream", k)
					}
					seen[k] = true
					i, err := strconv.Atoi(strings.TrimPrefix(k, "key-"))
					if !strings.HasPrefix(k, "key-") || err != nil {
						t.Fatalf("unexpected key %q", k)
					}
					if want := fmt.Sprintf("value-%d-%0100d", i, i); string(r.Value) != want {
						t.Fatalf("record %s: value %q", k, r.Value)
					}
					if r.Partition != int32(i%3) {
						t.Fatalf("record %s on partition %d, want the client's %d", k, r.Partition, i%3)
					}
					if len(r.Headers) != 2 || r.Headers[0].Key != "i" || string(r.Headers[0].Value) != strconv.Itoa(i) || r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 {
						t.Fatalf("record %s: headers %+v", k, r.Headers)
					}
					if want := ts.Add(time.Duration(i) * time.Millisecond); !r.Timestamp.Equal(want) {
						t.Fatalf("record %s: timestamp %v, want %v", k, r.Timestamp, want)
					}
				}
				if len(seen) != n {
					t.Fatalf("%d distinct records upstream, want %d", len(seen), n)
				}
				if got := total(endOffsets(t, f.brokers, topic)); got != n {
					t.Fatalf("%d records upstream, want %d", got, n)
				}
				check(t, topic, got, at)
			})
		}
	}
}

// TestProduceCodecs sends keyed records with headers through the gateway
// with every codec, idempotent and not, and reads them back upstream: each
// is there once, on the partition the client chose, with key, value,
// headers and timestamp intact.
func TestProduceCodecs(t *testing.T) {
	sendEveryCodec(t, start(t, nil), func(*testing.T, string, []*kgo.Record, map[string]told) {})
}

// TestTransactionalRefused: a transactional client gets the documented
// error, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and nothing is written.
func TestTransactionalRefused(t *testing.T) {
	f := start(t, nil)
	cl := f.client(t, kgo.TransactionalID("tx"), kgo.RecordRetries(2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	// franz-go asks for its producer id when the transaction begins, or
	// at the first record.
	err := cl.BeginTransaction()
	if err == nil {
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("transactional producer: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
	if n := total(endOffsets(t, f.brokers, topic)); n != 0 {
		t.Fatalf("%d records written", n)
	}
}
