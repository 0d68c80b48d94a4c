package gateway_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// slowUpstream is a kfake cluster that holds every produce request for d.
func slowUpstream(t *testing.T, d time.Duration) []string {
	t.Helper()
	c, brokers := testbroker.Fake(t)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		time.Sleep(d)
		return nil, nil, false
	})
	return brokers
}

// TestBackpressure: a client faster than the upstream is held back: the
// gateway never holds much more than its memory limit, tells the client to
// slow down, and every record still arrives once.
func TestBackpressure(t *testing.T) {
	// The limit holds one to three of the client's requests (8KiB batches,
	// two partitions; a request counts as the buffer it is read into,
	// rounded up to a power of two), and the client keeps up to five in
	// flight: with the
	// upstream slowed down, requests must wait for memory. (At 64KiB, on a
	// quiet machine, the gateway answered fast enough that none did.)
	const limit = 48 << 10
	brokers := slowUpstream(t, 2*time.Millisecond)
	f := startOn(t, brokers, []gateway.Option{gateway.MemoryLimit(limit)})
	topic := testbroker.CreateTopic(t, f.brokers, 2)
	cl := f.client(t, kgo.ProducerBatchMaxBytes(8<<10), kgo.ProducerLinger(0))

	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if m := f.gw.Stats().MemoryInUse; m > peak.Load() {
				peak.Store(m)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	const n = 5000
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	value := make([]byte, 512)
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: value}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("record %s: %v", r.Key, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	st := f.gw.Stats()
	// A request is admitted while use is under the limit, so use can
	// pass it by at most one request per connection (8KiB batches, two
	// partitions, uncompressed).
	if p := peak.Load(); p > limit+64<<10 {
		t.Fatalf("peak memory %d bytes, limit %d", p, limit)
	}
	if st.Throttled == 0 {
		t.Fatalf("no request waited for memory (peak %d bytes)", peak.Load())
	}
	// The writer gives a request's bytes back just after its answer is
	// written, so the client may see the last answer first.
	for deadline := time.Now().Add(5 * time.Second); f.gw.Stats().MemoryInUse != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after every answer", f.gw.Stats().MemoryInUse)
		}
		time.Sleep(time.Millisecond)
	}
	waitTotal(t, f.brokers, topic, n)
	t.Logf("peak %d bytes of %d, %d requests throttled", peak.Load(), limit, st.Throttled)
}

// TestShutdownAnswers: Shutdown answers a request it read before it
// stopped, once its records are upstream, and then refuses connections.
func TestShutdownAnswers(t *testing.T) {
	brokers := slowUpstream(t, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	prod, err := pipeline.New(ctx, pipeline.Brokers(brokers...), pipeline.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	up, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	gw, err := gateway.New(prod, up)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()
	topic := testbroker.CreateTopic(t, brokers, 1)

	c := dial(t, l.Addr().String())
	corr := c.send(produceReq(topic, -1, rawBatch(-1, -1, -1, 100, "s")))
	for gw.Stats().Topics == nil || gw.Stats().Topics[0].Records == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(corr, resp)
	if p := partitionResp(t, resp); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("answer after shutdown: code %d, offset %d", p.ErrorCode, p.BaseOffset)
	}
	if err := <-served; !errors.Is(err, gateway.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if nc, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		nc.Close()
		t.Fatal("a connection was accepted after Shutdown")
	}
}

// TestPipelinePartitions: with KeepPartition(false) the pipeline's
// partitioner decides, and the client is told offset -1.
func TestPipelinePartitions(t *testing.T) {
	m2, err := plugins.NewPartitioner("murmur2", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, []gateway.Option{gateway.KeepPartition(false)}, pipeline.Partitioner("murmur2", m2))
	topic := testbroker.CreateTopic(t, f.brokers, 4)
	c := dial(t, f.addr)
	p := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 400, "p"))))
	if p.ErrorCode != 0 || p.BaseOffset != -1 {
		t.Fatalf("code %d, base offset %d; want 0, -1", p.ErrorCode, p.BaseOffset)
	}
	parts := map[int32]int{}
	for _, r := range testbroker.ReadAll(t, f.brokers, topic, 400, false) {
		if want := plugins.KeyPartition(r.Key, 4); r.Partition != want {
			t.Fatalf("record %s on partition %d, the partitioner's is %d", r.Key, r.Partition, want)
		}
		parts[r.Partition]++
	}
	if len(parts) < 2 {
		t.Fatalf("records on partitions %v: the client's partition 0 was kept", parts)
	}
}

// TestSideBySide: two gateways in front of one cluster each advertise
// themselves, with distinct node ids, and a client bootstrapped with both
// produces through them.
func TestSideBySide(t *testing.T) {
	brokers := testbroker.Brokers(t)
	a := startOn(t, brokers, nil)
	b := startOn(t, brokers, nil)
	topic := testbroker.CreateTopic(t, brokers, 2)
	ids := map[int32]string{}
	for _, addr := range []string{a.addr, b.addr} {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 9
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp := dial(t, addr).do(req).(*kmsg.MetadataResponse)
		if len(resp.Brokers) != 1 || net.JoinHostPort(resp.Brokers[0].Host, strconv.Itoa(int(resp.Brokers[0].Port))) != addr {
			t.Fatalf("gateway %s advertises %+v", addr, resp.Brokers)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 || resp.Topics[0].Partitions[1].Leader != resp.Brokers[0].NodeID {
			t.Fatalf("gateway %s: topics %+v", addr, resp.Topics)
		}
		ids[resp.Brokers[0].NodeID] = addr
	}
	if len(ids) != 2 {
		t.Fatalf("both gateways have node id %v", ids)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.addr, b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitTotal(t, brokers, topic, 100)
}

// rejectKeys is a value serializer that fails the records whose key is in
// it, and passes the others' values through.
type rejectKeys map[string]bool

func (s rejectKeys) Serialize(_ context.Context, _ plugins.Target, r *plugins.Record) ([]byte, error) {
	if s[string(r.Key)] {
		return nil, errors.New("key " + string(r.Key) + " is refused")
	}
	return r.Value, nil
}

// TestErrorRecords: records of a batch that fail in the pipeline are named,
// by their index in the batch, in the answer's error_records (Produce v8+),
// with the partition's error INVALID_RECORD; the other records are
// delivered.
func TestErrorRecords(t *testing.T) {
	f := start(t, nil, pipeline.ValueSerializer("reject", rejectKeys{"e-3": true, "e-7": true}))
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	p := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 10, "e"))))
	if p.ErrorCode != 87 || p.BaseOffset != -1 {
		t.Fatalf("code %d, base offset %d; want 87 (INVALID_RECORD), -1", p.ErrorCode, p.BaseOffset)
	}
	var got []int32
	for _, er := range p.ErrorRecords {
		got = append(got, er.RelativeOffset)
		if er.ErrorMessage == nil || !strings.Contains(*er.ErrorMessage, "is refused") {
			t.Errorf("error record %d: message %v, want the serializer's error", er.RelativeOffset, er.ErrorMessage)
		}
	}
	if !slices.Equal(got, []int32{3, 7}) {
		t.Fatalf("error_records name records %v, want [3 7]", got)
	}
	if n := len(testbroker.ReadAll(t, f.brokers, topic, 8, false)); n != 8 {
		t.Fatalf("%d records upstream, want the 8 not refused", n)
	}
}
