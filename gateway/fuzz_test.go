package gateway_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
)

// fuzzTopic is the upstream topic the fuzz seeds produce to.
const fuzzTopic = "fuzz"

// FuzzRequest's bounds on its waits for the gateway: for an answer or the
// connection closing, then for the memory and the connection to be
// released. Together they stay under the 10 seconds the fuzzing engine
// gives an input. The slowest inputs, forwarded batches to a topic that
// does not exist, take some 3.3 seconds of retries upstream; an input that
// needs more has made the gateway hang.
const (
	answerWait  = 5 * time.Second
	releaseWait = 3 * time.Second
)

// FuzzRequest sends a request frame of any API key and version, with or
// without the flexible header's tagged fields, and any body, to a gateway
// (started once per fuzz process, in front of a kfake cluster), followed by
// an ApiVersions request on the same connection. The gateway must answer
// the request with a response of its correlation id that decodes at the
// request's version (or say nothing, for a produce request: acks=0), then
// answer the ApiVersions one; or close the connection. It must not panic.
// Once the connection is closed, the memory it held and the connection
// itself must be released, and a new connection is served.
//
// Batches of three records or more are forwarded; the pipeline fails a
// record to a topic that does not exist at once, rather than after the
// retries of franz-go's default, which take up to 15 seconds.
func FuzzRequest(f *testing.F) {
	_, brokers := testbroker.Fake(f, kfake.SeedTopics(2, fuzzTopic))
	fx := startOn(f, brokers, []gateway.Option{
		gateway.MemoryLimit(8 << 20),
		gateway.ForwardBatches(true),
		gateway.ForwardMinRecords(3),
	}, pipeline.KgoOptions(kgo.UnknownTopicRetries(0)))
	for _, req := range fuzzSeeds(f) {
		body := req.AppendTo(nil)
		f.Add(req.Key(), req.GetVersion(), req.IsFlexible(), body)
	}
	f.Add(int16(1), int16(4), false, []byte{})             // Fetch: answered with an error
	f.Add(int16(2), int16(9), true, []byte{0, 0, 0, 0, 1}) // ListOffsets, not served
	f.Add(int16(999), int16(0), false, []byte{})           // no such API
	f.Add(int16(-1), int16(0), false, []byte{})
	f.Add(int16(18), int16(-1), false, []byte{})
	f.Add(int16(3), int16(200), true, []byte{0, 0})
	f.Fuzz(func(t *testing.T, key, version int16, flexible bool, body []byte) {
		checkRequest(t, fx, key, version, flexible, body)
	})
}

// fuzzSeeds are valid requests of every API the gateway serves, at
// versions across their ranges.
func fuzzSeeds(tb testing.TB) []kmsg.Request {
	var reqs []kmsg.Request
	for _, v := range []int16{0, 3} {
		r := kmsg.NewPtrApiVersionsRequest()
		r.Version = v
		r.ClientSoftwareName, r.ClientSoftwareVersion = "fuzz", "1"
		reqs = append(reqs, r)
	}
	for _, v := range []int16{0, 4, 9, 12} {
		r := kmsg.NewPtrMetadataRequest()
		r.Version = v
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(fuzzTopic)
		r.Topics = append(r.Topics, t)
		reqs = append(reqs, r)
	}
	for _, v := range []int16{0, 4} {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.Version = v
		r.ProducerID, r.ProducerEpoch = -1, -1
		reqs = append(reqs, r)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 4
	fc.CoordinatorKeys = []string{"group"}
	reqs = append(reqs, fc)
	for _, tc := range []struct {
		version int16
		acks    int16
		batch   []byte
	}{
		{3, -1, rawBatch(-1, -1, -1, 1, "a")},
		{9, 1, rawBatch(-1, -1, -1, 3, "forwarded")},
		{12, -1, rawBatch(5, 0, 0, 2, "idempotent")},
		{9, 0, rawBatch(-1, -1, -1, 1, "acks0")},
		{9, -1, gzipBatch(tb, []byte("gzipped"))},
	} {
		r := produceReq(fuzzTopic, tc.acks, tc.batch)
		r.Version = tc.version
		reqs = append(reqs, r)
	}
	return reqs
}

// checkRequest sends one request frame to fx's gateway and checks what
// FuzzRequest says.
func checkRequest(t *testing.T, fx *fixture, key, version int16, flexible bool, body []byte) {
	nc, err := net.DialTimeout("tcp", fx.addr, answerWait)
	if err != nil {
		t.Fatal(err)
	}
	const corr, nextCorr = 1, 2
	frame := rawRequest(key, version, flexible, body)
	frame = append(frame, kmsg.NewRequestFormatter().AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), nextCorr)...)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the gateway may stop reading the frame halfway
		defer wg.Done()
		_ = nc.SetWriteDeadline(time.Now().Add(answerWait))
		_, _ = nc.Write(frame)
	}()
	_ = nc.SetReadDeadline(time.Now().Add(answerWait))
	got, err := readFrame(nc)
	if err == nil && got.corr == corr {
		checkResponse(t, key, version, got.body)
		if got, err = readFrame(nc); err != nil {
			t.Errorf("the ApiVersions request after an answered %s v%d: %v", kmsg.NameForKey(key), version, err)
		}
	} else if err == nil && key != 0 {
		t.Errorf("%s v%d was not answered: the next response is for correlation id %d", kmsg.NameForKey(key), version, got.corr)
	}
	switch {
	case err == nil && got.corr != nextCorr:
		t.Errorf("a response for correlation id %d, want %d", got.corr, nextCorr)
	case err != nil && isTimeout(err):
		t.Errorf("no answer and the connection still open after %v", answerWait)
	case errors.Is(err, errFrameSize):
		t.Errorf("a malformed response: %v", err)
	}
	nc.Close()
	wg.Wait()

	// Everything the connection held comes back.
	for deadline := time.Now().Add(releaseWait); ; {
		st := fx.gw.Stats()
		if st.MemoryInUse == 0 && len(st.Connections) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the connection closed: %d bytes of memory in use, %d connections open", releaseWait, st.MemoryInUse, len(st.Connections))
		}
		time.Sleep(time.Millisecond)
	}
	// A new connection is served.
	c := dial(t, fx.addr)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	if resp := c.do(av).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions on a new connection: code %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	c.nc.Close()
}

// responseFrame is a response as read off the connection.
type responseFrame struct {
	corr int32
	body []byte // after the correlation id
}

// errFrameSize is a response whose size is too small to hold its
// correlation id, or larger than any response the gateway makes.
var errFrameSize = errors.New("response size out of range")

// readFrame reads one response.
func readFrame(nc net.Conn) (responseFrame, error) {
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		return responseFrame{}, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return responseFrame{}, fmt.Errorf("%w: %d bytes", errFrameSize, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		return responseFrame{}, err
	}
	return responseFrame{corr: int32(binary.BigEndian.Uint32(b)), body: b[4:]}, nil
}

// checkResponse checks that body, the response to a request of key and
// version, decodes as one at that version (version 0 for an ApiVersions
// request of a version the gateway does not serve).
func checkResponse(t *testing.T, key, version int16, body []byte) {
	req := kmsg.RequestForKey(key)
	if req == nil {
		t.Errorf("an answer to API key %d, which kmsg does not know", key)
		return
	}
	resp := req.ResponseKind()
	if key == 18 && (version < 0 || version > 3) {
		version = 0
	}
	resp.SetVersion(version)
	if resp.IsFlexible() && key != 18 {
		if len(body) == 0 || body[0] != 0 {
			t.Errorf("%s v%d response: no empty tagged-field section in its header", kmsg.NameForKey(key), version)
			return
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Errorf("%s v%d response does not decode: %v", kmsg.NameForKey(key), version, err)
	}
}
