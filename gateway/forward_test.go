package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

var forwarding = []gateway.Option{gateway.ForwardBatches(true)}

// forwardedRecords is how many records of topic were forwarded as batches.
func forwardedRecords(gw *gateway.Gateway, topic string) (forwarded, received uint64) {
	for _, ts := range gw.Stats().Topics {
		if ts.Topic == topic {
			return ts.Forwarded, ts.Records
		}
	}
	return 0, 0
}

// TestForwardRecords: with forwarding on and nothing in the pipeline, every
// client batch goes upstream as it is, in every codec, idempotent or not:
// each record is there once, on the client's partition, with its key,
// value, headers and timestamp, at the offset the client was told.
func TestForwardRecords(t *testing.T) {
	f := start(t, forwarding)
	sendEveryCodec(t, f, func(t *testing.T, topic string, got []*kgo.Record, at map[string]told) {
		for _, r := range got {
			k := string(r.Key)
			if r.ProducerID < 0 {
				t.Fatalf("record %s upstream without a producer id: acks=all forwards idempotently", k)
			}
			if w := at[k]; w.partition != r.Partition || w.offset != r.Offset {
				t.Fatalf("record %s: the client was told partition %d offset %d; upstream it is at %d/%d", k, w.partition, w.offset, r.Partition, r.Offset)
			}
		}
		if fw, recv := forwardedRecords(f.gw, topic); fw != uint64(len(got)) || recv != uint64(len(got)) {
			t.Fatalf("%d records forwarded of %d received, want %d of %d", fw, recv, len(got), len(got))
		}
	})
}

// TestForwardRule: a pipeline with an interceptor, or a gateway that does
// not keep the client's partition, takes the record path.
func TestForwardRule(t *testing.T) {
	for _, c := range []struct {
		name   string
		gwOpts []gateway.Option
		opts   []pipeline.Option
	}{
		{"interceptor", forwarding, []pipeline.Option{pipeline.Interceptor("pass", passIC{})}},
		{"pipeline partitions", append([]gateway.Option{gateway.KeepPartition(false)}, forwarding...), nil},
		{"compression other than the client's", forwarding, []pipeline.Option{pipeline.Compression(pipeline.Zstd)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, c.gwOpts, c.opts...)
			topic := testbroker.CreateTopic(t, f.brokers, 1)
			cl := f.client(t, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
			ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
			defer cancel()
			for i := range 10 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			if fw, recv := forwardedRecords(f.gw, topic); fw != 0 || recv != 10 {
				t.Fatalf("%d records forwarded of %d received, want none of 10", fw, recv)
			}
			waitTotal(t, f.brokers, topic, 10)
		})
	}
}

// passIC is an interceptor that changes nothing.
type passIC struct{}

func (passIC) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}
func (passIC) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }

// TestForwardDuplicate: a batch an idempotent client sends again, on a new
// connection while the first attempt is on its way upstream and after it
// was answered, is answered with the first attempt's offset and forwarded
// once.
func TestForwardDuplicate(t *testing.T) {
	brokers := slowUpstream(t, 200*time.Millisecond)
	f := startOn(t, brokers, forwarding)
	topic := testbroker.CreateTopic(t, brokers, 1)
	c1, c2 := dial(t, f.addr), dial(t, f.addr)
	pid, epoch := initProducerID(t, c1)
	batch := rawBatch(pid, epoch, 0, 10, "d")
	first := c1.send(produceReq(topic, -1, batch))
	again := c2.send(produceReq(topic, -1, batch))
	for _, a := range []struct {
		c    *rawConn
		corr int32
	}{{c1, first}, {c2, again}} {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		a.c.recv(a.corr, resp)
		if p := partitionResp(t, resp); p.ErrorCode != 0 || p.BaseOffset != 0 {
			t.Fatalf("answer: code %d, offset %d, want 0 and 0", p.ErrorCode, p.BaseOffset)
		}
	}
	if p := partitionResp(t, c2.do(produceReq(topic, -1, batch))); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("answer to a retry after the answer: code %d, offset %d, want 0 and 0", p.ErrorCode, p.BaseOffset)
	}
	// The next batch follows at offset 10: nothing was written twice.
	if p := partitionResp(t, c1.do(produceReq(topic, -1, rawBatch(pid, epoch, 10, 5, "e")))); p.ErrorCode != 0 || p.BaseOffset != 10 {
		t.Fatalf("next batch: code %d, offset %d, want 0 and 10", p.ErrorCode, p.BaseOffset)
	}
	waitTotal(t, brokers, topic, 15)
	st := f.gw.Stats().Topics[0]
	if st.Forwarded != 15 || st.Duplicates != 2 || st.Delivered != 15 {
		t.Fatalf("stats %+v: want 15 forwarded and delivered, 2 duplicates", st)
	}
}

// notLeader is an answer to produce request req that refuses every
// partition with NOT_LEADER_OR_FOLLOWER.
func notLeader(req kmsg.Request) kmsg.Response {
	pr := req.(*kmsg.ProduceRequest)
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range pr.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, 6, -1 // NOT_LEADER_OR_FOLLOWER
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// TestForwardRetries: an upstream that answers NOT_LEADER_OR_FOLLOWER, or
// does not answer in time, has the batch sent again; the client sees
// neither, and the records are upstream once.
func TestForwardRetries(t *testing.T) {
	c, brokers := testbroker.Fake(t)
	var calls atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if calls.Add(1) > 2 {
			return nil, nil, false
		}
		return notLeader(req), nil, true
	})
	f := startOn(t, brokers, forwarding)
	topic := testbroker.CreateTopic(t, brokers, 1)
	cl := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	r := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")})
	if err := r.FirstErr(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d produce requests upstream, want 3 (two refused, one written)", calls.Load())
	}
	if rec, _ := r.First(); rec.Offset != 0 {
		t.Fatalf("offset %d, want 0", rec.Offset)
	}
	waitTotal(t, brokers, topic, 1)
	if fw, _ := forwardedRecords(f.gw, topic); fw != 1 {
		t.Fatalf("%d forwarded, want 1", fw)
	}
}

// TestForwardAcks0: a client with acks=0 gets no answer; its batch is
// forwarded all the same.
func TestForwardAcks0(t *testing.T) {
	f := start(t, forwarding)
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	c.send(produceReq(topic, 0, rawBatch(-1, -1, -1, 7, "z")))
	// The next answer on the connection is the metadata request's.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	if _, ok := c.do(md).(*kmsg.MetadataResponse); !ok {
		t.Fatal("no metadata answer")
	}
	waitTotal(t, f.brokers, topic, 7)
	if fw, _ := forwardedRecords(f.gw, topic); fw != 7 {
		t.Fatalf("%d forwarded, want 7", fw)
	}
}

// TestForwardShutdown: Shutdown answers a request whose batch is on its way
// upstream once it is written, within its timeout.
func TestForwardShutdown(t *testing.T) {
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
	gw, err := gateway.New(prod, up, forwarding...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(l) }()
	topic := testbroker.CreateTopic(t, brokers, 2)
	c := dial(t, l.Addr().String())
	req := produceReq(topic, -1, rawBatch(-1, -1, -1, 100, "s"))
	p1 := kmsg.NewProduceRequestTopicPartition()
	p1.Partition, p1.Records = 1, rawBatch(-1, -1, -1, 50, "t")
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, p1)
	corr := c.send(req)
	for gw.Stats().Topics == nil || gw.Stats().Topics[0].Records < 150 {
		time.Sleep(time.Millisecond)
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(corr, resp)
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.BaseOffset != 0 {
			t.Fatalf("partition %d: answer after shutdown: code %d, offset %d", p.Partition, p.ErrorCode, p.BaseOffset)
		}
	}
	waitTotal(t, brokers, topic, 150)
	if st := gw.Stats().Topics[0]; st.Delivered != 150 || st.Forwarded != 150 {
		t.Fatalf("stats %+v: want 150 forwarded and delivered", st)
	}

	// Given up on: a stop whose time ends first closes the connection,
	// and the batch on its way ends at once.
	brokers = slowUpstream(t, 5*time.Second)
	f := startOn(t, brokers, forwarding)
	topic = testbroker.CreateTopic(t, brokers, 1)
	c = dial(t, f.addr)
	c.send(produceReq(topic, -1, rawBatch(-1, -1, -1, 3, "u")))
	for f.gw.Stats().Topics == nil || f.gw.Stats().Topics[0].Records < 3 {
		time.Sleep(time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	t0 := time.Now()
	if err := f.gw.Shutdown(sctx); err == nil {
		t.Fatal("Shutdown: no error, want its deadline")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Shutdown took %v after its deadline of 100ms", d)
	}
	if st := f.gw.Stats().Topics[0]; st.Failed != 3 {
		t.Fatalf("stats %+v: want the 3 records failed", st)
	}
}

// TestForwardReloadKeepsOrder: a pipeline whose chain is swapped back and
// forth between one that passes records as they are and one with an
// interceptor, while an idempotent client produces to one partition: the
// batches take both paths, and upstream the records are in the client's
// order, each once.
func TestForwardReloadKeepsOrder(t *testing.T) {
	f := start(t, forwarding)
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	cl := f.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var opts []pipeline.Option
			if i%2 == 0 {
				opts = append(opts, pipeline.Interceptor("pass", passIC{}))
			}
			if _, err := f.prod.Swap(ctx, opts...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const n = 5000
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("record %s: %v", r.Value, err)
			}
		})
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // many batches, across many swaps
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-swapped
	got := testbroker.ReadAll(t, f.brokers, topic, n, false)
	if len(got) != n {
		t.Fatalf("%d records upstream, want %d", len(got), n)
	}
	for i, r := range got {
		if !bytes.Equal(r.Value, []byte(strconv.Itoa(i))) {
			t.Fatalf("record %d upstream is %q: out of order", i, r.Value)
		}
	}
	fw, recv := forwardedRecords(f.gw, topic)
	if recv != n || fw == 0 || fw == n {
		t.Fatalf("%d of %d records forwarded, want some but not all", fw, recv)
	}
}

// TestForwardRefused: a batch the upstream refuses with an error that is
// not retriable is not sent again; the client gets the upstream's code,
// message and error_records, and its records count as failed. The next
// batch takes its sequences, under the same upstream producer id.
func TestForwardRefused(t *testing.T) {
	c, brokers := testbroker.Fake(t)
	var calls, inits atomic.Int32
	c.ControlKey(int16(kmsg.InitProducerID), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		inits.Add(1)
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if calls.Add(1) > 1 {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = pr.Topics[0].Topic, pr.Topics[0].TopicID
		sp := kmsg.NewProduceResponseTopicPartition()
		sp.Partition, sp.ErrorCode, sp.BaseOffset = pr.Topics[0].Partitions[0].Partition, 87, -1 // INVALID_RECORD
		sp.ErrorMessage = kmsg.StringPtr("record 1 is not valid")
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset, er.ErrorMessage = 1, kmsg.StringPtr("bad record")
		sp.ErrorRecords = append(sp.ErrorRecords, er)
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
	f := startOn(t, brokers, forwarding)
	topic := testbroker.CreateTopic(t, brokers, 1)
	p := partitionResp(t, dial(t, f.addr).do(produceReq(topic, -1, rawBatch(-1, -1, -1, 3, "r"))))
	if p.ErrorCode != 87 || p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "record 1 is not valid") {
		t.Fatalf("answer: code %d, message %v; want 87 and the upstream's message", p.ErrorCode, p.ErrorMessage)
	}
	if len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 1 || !strings.Contains(*p.ErrorRecords[0].ErrorMessage, "bad record") {
		t.Fatalf("error_records %+v, want record 1's", p.ErrorRecords)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d produce requests upstream, want 1", calls.Load())
	}
	if st := f.gw.Stats().Topics[0]; st.Failed != 3 || st.Delivered != 0 {
		t.Fatalf("stats %+v: want 3 failed", st)
	}
	if p := partitionResp(t, dial(t, f.addr).do(produceReq(topic, -1, rawBatch(-1, -1, -1, 2, "s")))); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("next batch: code %d, offset %d; want 0 and 0", p.ErrorCode, p.BaseOffset)
	}
	if inits.Load() != 1 {
		t.Fatalf("%d upstream producer ids asked for, want 1", inits.Load())
	}
}

// TestForwardMixedPaths: two clients produce to one partition at once, one
// whose batches are forwarded (lz4, the upstream producer's compression)
// and one whose batches take the record path (zstd). Neither path keeps
// the other out until its requests time out, and each client's records
// are upstream once, in its order.
func TestForwardMixedPaths(t *testing.T) {
	f := start(t, forwarding, pipeline.Compression(pipeline.LZ4))
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	const n = 3000
	var wg sync.WaitGroup
	for _, c := range []struct {
		prefix string
		codec  kgo.CompressionCodec
	}{{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		cl := f.client(t, kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(0),
			kgo.ProduceRequestTimeout(5*time.Second), kgo.RecordRetries(1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(c.prefix), Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
					if err != nil {
						t.Errorf("%s record %s: %v", c.prefix, r.Value, err)
					}
				})
				if i%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if err := cl.Flush(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	next := map[string]int{}
	for _, r := range testbroker.ReadAll(t, f.brokers, topic, 2*n, false) {
		if want := strconv.Itoa(next[string(r.Key)]); string(r.Value) != want {
			t.Fatalf("%s record %s upstream where %s was next", r.Key, r.Value, want)
		}
		next[string(r.Key)]++
	}
	// franz-go sends a batch uncompressed when compressing does not make
	// it smaller, and such a batch of the lz4 client is not forwarded.
	if fw, recv := forwardedRecords(f.gw, topic); fw == 0 || fw > n || recv != 2*n {
		t.Fatalf("%d of %d records forwarded, want at most the %d lz4 ones, and some", fw, recv, n)
	}
}

// TestForwardSwitchWaits: after a swap to a chain that reads records, a
// batch for a partition whose forwarded batch is still on its way waits for
// it; one whose request times out first fails with REQUEST_TIMED_OUT and
// is not sent, and the partition takes batches again once the forwarded
// one is written.
func TestForwardSwitchWaits(t *testing.T) {
	brokers := slowUpstream(t, 500*time.Millisecond)
	f := startOn(t, brokers, forwarding)
	topic := testbroker.CreateTopic(t, brokers, 1)
	c1, c2 := dial(t, f.addr), dial(t, f.addr)
	first := c1.send(produceReq(topic, -1, rawBatch(-1, -1, -1, 4, "a")))
	for fw, _ := forwardedRecords(f.gw, topic); fw == 0; fw, _ = forwardedRecords(f.gw, topic) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	if _, err := f.prod.Swap(ctx, pipeline.Interceptor("pass", passIC{})); err != nil {
		t.Fatal(err)
	}
	short := produceReq(topic, -1, rawBatch(-1, -1, -1, 2, "b"))
	short.TimeoutMillis = 100
	if p := partitionResp(t, c2.do(short)); p.ErrorCode != 7 || len(p.ErrorRecords) != 2 {
		t.Fatalf("batch behind a forwarded one past its timeout: code %d, %d error_records; want 7 (REQUEST_TIMED_OUT) for both records", p.ErrorCode, len(p.ErrorRecords))
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c1.recv(first, resp)
	if p := partitionResp(t, resp); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("forwarded batch: code %d, offset %d", p.ErrorCode, p.BaseOffset)
	}
	if p := partitionResp(t, c2.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 3, "c")))); p.ErrorCode != 0 {
		t.Fatalf("batch after the forwarded one: code %d", p.ErrorCode)
	}
	waitTotal(t, brokers, topic, 7)
	got := testbroker.ReadAll(t, brokers, topic, 7, false)
	for i, want := range []string{"a-0", "a-1", "a-2", "a-3", "c-0", "c-1", "c-2"} {
		if string(got[i].Key) != want {
			t.Fatalf("record %d upstream is %s, want %s", i, got[i].Key, want)
		}
	}
	if fw, recv := forwardedRecords(f.gw, topic); fw != 4 || recv != 9 {
		t.Fatalf("%d of %d records forwarded, want 4 of 9", fw, recv)
	}
}

// TestForwardWindowRecovers: forwarded batches of one partition go several
// at a time (acks=all: idempotent upstream under the gateway's producer
// id); when the upstream refuses one of them, it and those after it are
// sent again in order, and every record is upstream once, in the client's
// order.
func TestForwardWindowRecovers(t *testing.T) {
	c, brokers := testbroker.Fake(t)
	var calls, refused atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if n := calls.Add(1); n%7 != 4 {
			return nil, nil, false
		}
		refused.Add(1)
		return notLeader(req), nil, true
	})
	f := startOn(t, brokers, forwarding)
	topic := testbroker.CreateTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	const n = 3000
	var wg sync.WaitGroup
	// Several clients, so that batches queue in the partition's lane.
	for _, prefix := range []string{"a", "b", "c"} {
		cl := f.client(t, kgo.ProducerLinger(0))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(prefix), Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
					if err != nil {
						t.Errorf("%s record %s: %v", prefix, r.Value, err)
					}
				})
				if i%30 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if err := cl.Flush(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitTotal(t, brokers, topic, 3*n)
	next := map[string]int{}
	for _, r := range testbroker.ReadAll(t, brokers, topic, 3*n, false) {
		if want := strconv.Itoa(next[string(r.Key)]); string(r.Value) != want {
			t.Fatalf("%s record %s upstream where %s was next", r.Key, r.Value, want)
		}
		next[string(r.Key)]++
	}
	if refused.Load() == 0 {
		t.Fatal("the upstream refused no batch")
	}
	if fw, recv := forwardedRecords(f.gw, topic); fw != 3*n || recv != 3*n {
		t.Fatalf("%d of %d records forwarded, want all %d", fw, recv, 3*n)
	}
}

// TestForwardAcks1: with the upstream producer's acks=1 the forwarded
// batches are written without idempotence, one at a time: every record is
// there once, in order.
func TestForwardAcks1(t *testing.T) {
	f := start(t, forwarding, pipeline.Acks(pipeline.AcksLeader))
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	cl := f.client(t, kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	const n = 1000
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("record %s: %v", r.Value, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitTotal(t, f.brokers, topic, n)
	for i, r := range testbroker.ReadAll(t, f.brokers, topic, n, false) {
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d upstream is %s", i, r.Value)
		}
		if r.ProducerID != -1 {
			t.Fatalf("record %d upstream has producer id %d, want none (-1)", i, r.ProducerID)
		}
	}
	if fw, _ := forwardedRecords(f.gw, topic); fw != n {
		t.Fatalf("%d forwarded, want %d", fw, n)
	}
}

// malformedRecords is the records section of one record whose key length
// is -5 (a broker refuses anything below -1, null), or, with badHeaders,
// whose header count is -3: bytes a CRC check alone lets through.
func malformedRecords(badHeaders bool) []byte {
	// length 8: attributes, timestamp delta, offset delta, key length,
	// key "k", value length, value "v", header count (zigzag varints).
	body := []byte{16, 0, 0, 0, 2, 'k', 2, 'v', 0}
	if badHeaders {
		body[8] = 5 // -3
	} else {
		body[4] = 9 // -5
	}
	return body
}

// TestForwardChecksRecords: with CheckForwardedRecords, a forwarded batch
// whose CRC is right but whose record is malformed (a key length below -1,
// a negative header count), compressed or not, is answered
// CORRUPT_MESSAGE as the record path answers it, and nothing of it goes
// upstream; valid batches are still forwarded. Without it the embedded
// broker (kfake), which checks only the batch's header and CRC, stores the
// malformed record (the reason kpipe gateway turns the check on in front
// of it), where Apache Kafka refuses it.
func TestForwardChecksRecords(t *testing.T) {
	// Apache Kafka (the integration run's upstream) checks records
	// itself: without the gateway's check it refuses them.
	stored := testbroker.IsFake()
	for _, check := range []bool{true, false} {
		t.Run(fmt.Sprintf("check=%v", check), func(t *testing.T) {
			f := start(t, []gateway.Option{gateway.ForwardBatches(true), gateway.CheckForwardedRecords(check)})
			topic := testbroker.CreateTopic(t, f.brokers, 1)
			c := dial(t, f.addr)
			bad := [][]byte{
				sealBatch(kmsg.RecordBatch{NumRecords: 1, Records: malformedRecords(false)}),
				gzipRecords(t, malformedRecords(true)),
			}
			for i, b := range bad {
				pr := partitionResp(t, c.do(produceReq(topic, -1, b)))
				switch {
				case check && pr.ErrorCode != 2: // CORRUPT_MESSAGE
					t.Fatalf("malformed batch %d: error code %d, want 2 (CORRUPT_MESSAGE)", i, pr.ErrorCode)
				case !check && stored && pr.ErrorCode != 0:
					t.Fatalf("malformed batch %d without the check: error code %d, want 0 (stored by kfake)", i, pr.ErrorCode)
				case !check && !stored && pr.ErrorCode == 0:
					t.Fatalf("malformed batch %d without the check: stored by the upstream broker, which should refuse it", i)
				}
			}
			if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 3, "ok")))); pr.ErrorCode != 0 {
				t.Fatalf("valid batch: error code %d", pr.ErrorCode)
			}
			want := int64(3)
			if !check && stored {
				want += int64(len(bad))
			}
			waitTotal(t, f.brokers, topic, want)
			if fw, _ := forwardedRecords(f.gw, topic); check && fw != 3 {
				t.Fatalf("%d records forwarded, want 3", fw)
			}
		})
	}
}

// TestForwardUnknownPartition: a forwarded batch naming a partition its
// topic does not have upstream is answered UNKNOWN_TOPIC_OR_PARTITION at
// once, naming the partition, as the record path answers it, not after
// the retries a leader that moved gets (about 3.3 s of backoff); the
// partition count is asked of the upstream again first, in case
// partitions were added.
func TestForwardUnknownPartition(t *testing.T) {
	f := start(t, forwarding)
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	// Partition 0 first, so that the topic's partitions are known.
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 {
		t.Fatalf("partition 0: error code %d", pr.ErrorCode)
	}
	req := produceReq(topic, -1, rawBatch(-1, -1, -1, 2, "x"))
	req.Topics[0].Partitions[0].Partition = 7
	t0 := time.Now()
	pr := partitionResp(t, c.do(req))
	took := time.Since(t0)
	if pr.ErrorCode != 3 || pr.ErrorMessage == nil || !strings.Contains(*pr.ErrorMessage, "partition 7") {
		t.Fatalf("partition 7 of 1: code %d, message %v; want 3 (UNKNOWN_TOPIC_OR_PARTITION) naming it", pr.ErrorCode, pr.ErrorMessage)
	}
	if took > time.Second {
		t.Fatalf("answered after %v: the batch was retried", took)
	}
	var st gateway.TopicStats
	for _, s := range f.gw.Stats().Topics {
		if s.Topic == topic {
			st = s
		}
	}
	if st.Delivered != 1 || st.Failed != 2 {
		t.Fatalf("stats %+v: want 1 delivered, 2 failed", st)
	}
}

// TestForwardMinRecords: with ForwardMinRecords(4) a batch of 3 records
// takes the record path and one of 5 is forwarded; both are upstream once,
// in the order they were sent.
func TestForwardMinRecords(t *testing.T) {
	f := start(t, []gateway.Option{gateway.ForwardBatches(true), gateway.ForwardMinRecords(4)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	for _, n := range []int{3, 5} {
		if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, n, fmt.Sprint("b", n))))); pr.ErrorCode != 0 {
			t.Fatalf("batch of %d: error code %d", n, pr.ErrorCode)
		}
	}
	waitTotal(t, f.brokers, topic, 8)
	if fw, received := forwardedRecords(f.gw, topic); fw != 5 || received != 8 {
		t.Fatalf("%d of %d records forwarded, want 5 of 8", fw, received)
	}
	var keys []string
	for _, r := range testbroker.ReadAll(t, f.brokers, topic, 8, false) {
		keys = append(keys, string(r.Key))
	}
	if got, want := strings.Join(keys, " "), "b3-0 b3-1 b3-2 b5-0 b5-1 b5-2 b5-3 b5-4"; got != want {
		t.Fatalf("upstream order %q, want %q", got, want)
	}
}
