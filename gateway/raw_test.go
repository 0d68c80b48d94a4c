package gateway_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/testbroker"
)

// rawConn speaks the Kafka protocol to the gateway with kmsg, so that a
// test controls exactly what is written and when the connection breaks.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	corr int32
	fmt  *kmsg.RequestFormatter
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test"))}
}

// send writes req and returns its correlation id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	if _, err := c.nc.Write(c.fmt.AppendRequest(nil, req, c.corr)); err != nil {
		c.t.Fatal(err)
	}
	return c.corr
}

// recv reads the next response, which must be for correlation id corr,
// into resp.
func (c *rawConn) recv(corr int32, resp kmsg.Response) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(testbroker.Timeout()))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		c.t.Fatalf("response for correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:] // an empty tagged-field section
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decoding %s response: %v", kmsg.NameForKey(resp.Key()), err)
	}
}

func (c *rawConn) do(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	resp := req.ResponseKind()
	c.recv(corr, resp)
	return resp
}

// lockedBuffer is a log output tests read while the gateway writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rawBatch is an uncompressed magic 2 record batch of n records with keys
// prefix-0 .. prefix-(n-1).
func rawBatch(pid int64, epoch int16, seq int32, n int, prefix string) []byte {
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte("v")}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(n - 1),
		FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func produceReq(topic string, acks int16, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = 10000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Records = batch
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func partitionResp(t *testing.T, resp kmsg.Response) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	pr := resp.(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response: %+v", pr)
	}
	return pr.Topics[0].Partitions[0]
}

func initProducerID(t *testing.T, c *rawConn) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp := c.do(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Fatalf("InitProducerId: code %d, id %d", resp.ErrorCode, resp.ProducerID)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// TestInitProducerIDNamingAnother: a client that names a producer id and
// epoch in InitProducerId (v3+, as to bump its own epoch) gets a new id
// with epoch 0, as from Kafka without a transactional id: naming another
// client's id does not fence that client, whose next batch still goes in.
func TestInitProducerIDNamingAnother(t *testing.T) {
	f := start(t, nil)
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c1 := dial(t, f.addr)
	pid, epoch := initProducerID(t, c1)
	if p := partitionResp(t, c1.do(produceReq(topic, -1, rawBatch(pid, epoch, 0, 10, "a")))); p.ErrorCode != 0 {
		t.Fatalf("first batch: code %d", p.ErrorCode)
	}

	c2 := dial(t, f.addr)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.ProducerID, req.ProducerEpoch = pid, epoch
	resp := c2.do(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID == pid || resp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId naming id %d epoch %d: code %d, id %d, epoch %d; want a new id with epoch 0", pid, epoch, resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch)
	}
	if p := partitionResp(t, c1.do(produceReq(topic, -1, rawBatch(pid, epoch, 10, 10, "b")))); p.ErrorCode != 0 || p.BaseOffset != 10 {
		t.Fatalf("the first client's next batch: code %d, base offset %d; want 0, 10", p.ErrorCode, p.BaseOffset)
	}
}

// TestRetryAfterCutConnection: an idempotent client writes a produce
// request and loses the connection before the answer; it retries the same
// batch on a new connection. The records are upstream once, and the retry
// is answered with the first attempt's offset. A batch sent again after
// its answer arrived is answered the same way; a batch out of sequence is
// refused.
func TestRetryAfterCutConnection(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow_upstream=%v", slow), func(t *testing.T) { testRetryAfterCut(t, slow) })
	}
}

func testRetryAfterCut(t *testing.T, slow bool) {
	var f *fixture
	if slow {
		// The upstream broker holds the first produce request, so that
		// the retry arrives while the first attempt is still pending.
		c, brokers := testbroker.Fake(t)
		var once sync.Once
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			once.Do(func() { time.Sleep(300 * time.Millisecond) })
			return nil, nil, false
		})
		f = startOn(t, brokers, nil)
	} else {
		f = start(t, nil)
	}
	topic := testbroker.CreateTopic(t, f.brokers, 1)

	c1 := dial(t, f.addr)
	pid, epoch := initProducerID(t, c1)
	first := rawBatch(pid, epoch, 0, 500, "a")
	c1.send(produceReq(topic, -1, first))
	c1.nc.Close() // cut before the answer is read

	c2 := dial(t, f.addr)
	p := partitionResp(t, c2.do(produceReq(topic, -1, first)))
	if p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("retry: code %d, base offset %d; want 0, 0", p.ErrorCode, p.BaseOffset)
	}
	p = partitionResp(t, c2.do(produceReq(topic, -1, rawBatch(pid, epoch, 500, 500, "b"))))
	if p.ErrorCode != 0 || p.BaseOffset != 500 {
		t.Fatalf("next batch: code %d, base offset %d; want 0, 500", p.ErrorCode, p.BaseOffset)
	}
	// The first batch again, its answer long received: the same answer.
	p = partitionResp(t, c2.do(produceReq(topic, -1, first)))
	if p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("old batch again: code %d, base offset %d; want 0, 0", p.ErrorCode, p.BaseOffset)
	}
	// A gap in the sequence.
	p = partitionResp(t, c2.do(produceReq(topic, -1, rawBatch(pid, epoch, 2000, 1, "c"))))
	if p.ErrorCode != 45 {
		t.Fatalf("batch out of sequence: code %d, want 45 (OUT_OF_ORDER_SEQUENCE_NUMBER)", p.ErrorCode)
	}

	got := testbroker.ReadAll(t, f.brokers, topic, 1000, false)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[string(r.Key)] {
			t.Fatalf("record %s twice", r.Key)
		}
		seen[string(r.Key)] = true
	}
	if n := total(endOffsets(t, f.brokers, topic)); n != 1000 {
		t.Fatalf("%d records upstream, want 1000", n)
	}
	var dups uint64
	for _, ts := range f.gw.Stats().Topics {
		if ts.Topic == topic {
			dups = ts.Duplicates
		}
	}
	if dups != 2 {
		t.Fatalf("Stats: %d duplicates, want 2", dups)
	}
}

// TestOtherRequests: a request the gateway does not serve gets a well-formed
// error response and the connection stays usable; acks=0 gets no response;
// a consumer's FindCoordinator gets GROUP_AUTHORIZATION_FAILED.
func TestOtherRequests(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 4
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{kmsg.NewListOffsetsRequestTopicPartition()}
	lo.Topics = append(lo.Topics, lt)
	for range 2 {
		resp, ok := c.do(lo).(*kmsg.ListOffsetsResponse)
		if !ok || len(resp.Topics) != 0 {
			t.Fatalf("ListOffsets: %+v", resp)
		}
	}
	if n := strings.Count(logs.String(), "request=ListOffsets"); n != 1 {
		t.Fatalf("%d log lines for two ListOffsets requests on one connection, want 1:\n%s", n, logs.String())
	}

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 3
	fc.CoordinatorKey = "group"
	if resp := c.do(fc).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != 30 {
		t.Fatalf("FindCoordinator for a group: code %d, want 30", resp.ErrorCode)
	}

	// acks=0: no answer; the next response is the ApiVersions one.
	c.send(produceReq(topic, 0, rawBatch(-1, -1, -1, 10, "z")))
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "raw-test", "1"
	resp := c.do(av).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions: %+v", resp)
	}
	// An ApiVersions version above the served ones: answered at v0 with
	// UNSUPPORTED_VERSION and the list.
	av4 := kmsg.NewPtrApiVersionsRequest()
	av4.Version = 4
	corr := c.send(av4)
	r0 := kmsg.NewPtrApiVersionsResponse()
	r0.Version = 0
	c.recv(corr, r0)
	if r0.ErrorCode != 35 || len(r0.ApiKeys) == 0 {
		t.Fatalf("ApiVersions v4: code %d, %d keys", r0.ErrorCode, len(r0.ApiKeys))
	}
	waitTotal(t, f.brokers, topic, 10)
	st := f.gw.Stats()
	if st.Unsupported != 2 {
		t.Fatalf("Stats.Unsupported %d, want 2", st.Unsupported)
	}
}

// logTo is the option of a gateway that logs to logs.
func logTo(logs *lockedBuffer) gateway.Option {
	return gateway.Logger(hclog.New(&hclog.LoggerOptions{Output: logs}))
}
