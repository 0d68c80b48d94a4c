package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/pipeline"

	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/testbroker"
)

// recrc sets the record count of an uncompressed batch made by rawBatch to
// n and computes its CRC again, so that only the count is wrong.
func recount(raw []byte, n int32) []byte {
	b := append([]byte(nil), raw...)
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TestHostileBatches: record batches that are wrong in one way each, with
// a valid CRC where the fault is elsewhere, are answered CORRUPT_MESSAGE
// with a log line, nothing of them is produced, and the connection and the
// gateway go on serving. A count of 2^31-1 records in a batch of one
// record used to make the gateway allocate for that many and die.
func TestHostileBatches(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	one := rawBatch(-1, -1, -1, 1, "h")
	badCRC := append([]byte(nil), one...)
	badCRC[len(badCRC)-1] ^= 1
	for _, tc := range []struct {
		name  string
		batch []byte
		log   string
	}{
		{"count 2^31-1", recount(one, 1<<31-1), "records claimed in"},
		{"count beyond the bytes", recount(rawBatch(-1, -1, -1, 3, "h"), 200), "records claimed in"},
		{"count above the records", recount(rawBatch(-1, -1, -1, 3, "h"), 4), "bad length"},
		{"count below the records", recount(rawBatch(-1, -1, -1, 3, "h"), 2), "after the last record"},
		{"negative count", recount(one, -1), "-1 records"},
		{"corrupt CRC", badCRC, "crc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := partitionResp(t, c.do(produceReq(topic, -1, tc.batch)))
			if pr.ErrorCode != 2 { // CORRUPT_MESSAGE
				t.Fatalf("error code %d, want 2 (CORRUPT_MESSAGE)", pr.ErrorCode)
			}
			if !strings.Contains(strings.ToLower(logs.String()), tc.log) {
				t.Fatalf("no log line with %q:\n%s", tc.log, logs.String())
			}
		})
	}
	// The same connection still serves, and only this batch is upstream.
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 2, "ok")))); pr.ErrorCode != 0 {
		t.Fatalf("a valid batch after the hostile ones: code %d", pr.ErrorCode)
	}
	waitTotal(t, f.brokers, topic, 2)
}

// gzipBatch is a gzip-compressed magic 2 record batch of one record with
// value v.
func gzipBatch(t testing.TB, v []byte) []byte {
	t.Helper()
	r := kmsg.Record{Key: []byte("bomb"), Value: v}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	return gzipRecords(t, r.AppendTo(nil))
}

// gzipRecords is a gzip-compressed magic 2 record batch whose records
// section is recs, one record.
func gzipRecords(t testing.TB, recs []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if _, err := zw.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return sealBatch(kmsg.RecordBatch{Attributes: 1, NumRecords: 1, Records: z.Bytes()})
}

// sealBatch returns the bytes of b, a non-idempotent magic 2 batch stamped
// now, with its length and CRC filled in.
func sealBatch(b kmsg.RecordBatch) []byte {
	now := time.Now().UnixMilli()
	b.PartitionLeaderEpoch, b.Magic, b.FirstTimestamp, b.MaxTimestamp = -1, 2, now, now
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// TestDecompressionBomb: a produce request of a few hundred kilobytes
// whose batches each decompress to 64MiB, against a gateway with an 8MiB
// memory limit, gets MESSAGE_TOO_LARGE for each batch with a log line, and
// the gateway allocates a bounded multiple of its limit for it, not what
// the batches expand to (each batch used to be decompressed up to four
// times the largest request, 400MiB, whatever the limit).
func TestDecompressionBomb(t *testing.T) {
	const limit = 8 << 20
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(limit), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 4)
	c := dial(t, f.addr)
	bomb := gzipBatch(t, make([]byte, 64<<20))
	req := produceReq(topic, -1, bomb)
	for p := int32(1); p < 4; p++ {
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Partition, tp.Records = p, bomb
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, tp)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp := c.do(req).(*kmsg.ProduceResponse)
	runtime.ReadMemStats(&after)
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 10 { // MESSAGE_TOO_LARGE
			t.Errorf("partition %d: error code %d, want 10 (MESSAGE_TOO_LARGE)", p.Partition, p.ErrorCode)
		}
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16*limit {
		t.Errorf("allocated %d MiB for a request of %d KiB under a %d MiB limit", got>>20, len(bomb)*4>>10, limit>>20)
	}
	if !strings.Contains(logs.String(), "decompresses to more than the") {
		t.Errorf("no log line for the bomb:\n%s", logs.String())
	}
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 2, "ok")))); pr.ErrorCode != 0 {
		t.Fatalf("a valid batch after the bomb: code %d", pr.ErrorCode)
	}
}

// exhaustedListener fails its first Accept calls as a process out of file
// descriptors does, then accepts.
type exhaustedListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *exhaustedListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfFiles: when accepting fails for lack of file descriptors
// (a client opening more connections than the process may have), the
// gateway logs it, waits and accepts again once descriptors are back,
// instead of returning from Serve, which made kpipe gateway exit.
func TestAcceptOutOfFiles(t *testing.T) {
	brokers := testbroker.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	prod, err := pipeline.New(ctx, pipeline.Brokers(brokers...), pipeline.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	up, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	var logs lockedBuffer
	gw, err := gateway.New(prod, up, logTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &exhaustedListener{Listener: tl}
	l.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()

	topic := testbroker.CreateTopic(t, brokers, 1)
	c := dial(t, tl.Addr().String())
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "fd")))); pr.ErrorCode != 0 {
		t.Fatalf("produce after the accept failures: code %d", pr.ErrorCode)
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("no log line for the accept failures:\n%s", logs.String())
	}
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, gateway.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStalledRequest: a client that sends the size of a large request and
// then nothing holds that much of the memory limit; other clients' requests
// wait for it. The gateway closes its connection after the body timeout,
// with a log line, and the other clients' requests go through. Before, the
// stalled client held every other one back for as long as it liked.
func TestStalledRequest(t *testing.T) {
	defer gateway.SetBodyTimeout(500 * time.Millisecond)()
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(1 << 20), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	stalled := dial(t, f.addr)
	if _, err := stalled.nc.Write([]byte{0, 0x20, 0, 0, 0, 0}); err != nil { // a 2MiB request, 2 bytes of it
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the gateway reads the size
	c := dial(t, f.addr)
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "next")))); pr.ErrorCode != 0 {
		t.Fatalf("produce beside a stalled request: code %d", pr.ErrorCode)
	}
	_ = stalled.nc.SetReadDeadline(time.Now().Add(testbroker.Timeout()))
	if n, err := stalled.nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the stalled connection: %d bytes, %v; want it closed", n, err)
	}
	if !strings.Contains(logs.String(), "the request did not arrive in time") {
		t.Errorf("no log line for the stalled request:\n%s", logs.String())
	}
}

// TestInvalidTopicNames: a produce to a name Kafka does not accept as a
// topic is answered INVALID_TOPIC_EXCEPTION, with the name quoted in the
// log, and leaves no per-topic statistics behind (which any bytes as names
// let a client grow without bound, and which the stop summary prints).
func TestInvalidTopicNames(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	c := dial(t, f.addr)
	for _, name := range []string{"", "..", "a\x1b[2Jb", "a b", strings.Repeat("x", 250)} {
		pr := partitionResp(t, c.do(produceReq(name, -1, rawBatch(-1, -1, -1, 1, "bad"))))
		if pr.ErrorCode != 17 { // INVALID_TOPIC_EXCEPTION
			t.Errorf("topic %q: code %d, want 17 (INVALID_TOPIC_EXCEPTION)", name, pr.ErrorCode)
		}
	}
	if st := f.gw.Stats(); len(st.Topics) != 0 {
		t.Errorf("statistics for invalid topics: %+v", st.Topics)
	}
	if strings.Contains(logs.String(), "\x1b") {
		t.Errorf("a control character reached the log:\n%q", logs.String())
	}
	// A valid name still works.
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 {
		t.Fatalf("valid topic %q: code %d", topic, pr.ErrorCode)
	}
}

// tinyBatch is an uncompressed batch of n records of 7 bytes each (null
// key and value, no headers), the fewest bytes a record takes.
func tinyBatch(n int) []byte {
	recs := bytes.Repeat([]byte{6 << 1, 0, 0, 0, 1, 1, 0}, n) // length 6, attributes, deltas 0, key and value -1, 0 headers
	return sealBatch(kmsg.RecordBatch{LastOffsetDelta: int32(n - 1), NumRecords: int32(n), Records: recs})
}

// TestTinyRecords: the gateway holds a record struct of about 120 bytes
// for each record of a batch, so a batch of records of 7 bytes takes some
// 17 times its size. A batch whose records would take more than the
// memory limit is answered MESSAGE_TOO_LARGE before they are made (a
// request of 10MB used to take 500MB under a 16MiB limit), and a smaller
// one goes through.
func TestTinyRecords(t *testing.T) {
	const limit = 4 << 20
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(limit), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	big := tinyBatch(100_000) // 700KB of request, 12MB of records
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pr := partitionResp(t, c.do(produceReq(topic, -1, big)))
	runtime.ReadMemStats(&after)
	if pr.ErrorCode != 10 { // MESSAGE_TOO_LARGE
		t.Errorf("%d tiny records under a %d MiB limit: code %d, want 10 (MESSAGE_TOO_LARGE)", 100_000, limit>>20, pr.ErrorCode)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("allocated %d MiB for a refused request of %d KiB under a %d MiB limit", got>>20, len(big)>>10, limit>>20)
	}
	if !strings.Contains(logs.String(), "records take") {
		t.Errorf("no log line for the refused batch:\n%s", logs.String())
	}
	if pr := partitionResp(t, c.do(produceReq(topic, -1, tinyBatch(1000)))); pr.ErrorCode != 0 {
		t.Fatalf("1000 tiny records: code %d", pr.ErrorCode)
	}
	waitTotal(t, f.brokers, topic, 1000)
}

// TestIdleConnection: a connection that sends nothing for the idle timeout
// is closed, with a log line; one that sends requests more often stays
// open. Before, connections opened and left held their file descriptors
// for as long as the client liked.
func TestIdleConnection(t *testing.T) {
	defer gateway.SetIdleTimeout(400 * time.Millisecond)()
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	idle := dial(t, f.addr)
	busy := dial(t, f.addr)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "raw-test", "1"
	for range 8 {
		busy.do(av)
		time.Sleep(100 * time.Millisecond)
	}
	_ = idle.nc.SetReadDeadline(time.Now().Add(testbroker.Timeout()))
	if n, err := idle.nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the idle connection: %d bytes, %v; want it closed", n, err)
	}
	busy.do(av) // still open
	if !strings.Contains(logs.String(), "closing an idle client connection") {
		t.Errorf("no log line for the idle connection:\n%s", logs.String())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestOldProduceVersions: a Produce request of version 0 to 2 (message
// sets of magic 0 and 1, before Kafka 0.11) is answered with
// UNSUPPORTED_VERSION for each of its partitions. The answer used to list
// no partition, so the client (kafka-python with api_version=(0, 10, 1))
// waited for its records' results until its own timeout.
func TestOldProduceVersions(t *testing.T) {
	f := start(t, nil)
	c := dial(t, f.addr)
	for _, v := range []int16{0, 1, 2} {
		req := produceReq("old", -1, []byte("a message set"))
		req.Version = v
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: 3, Records: []byte("another")})
		corr := c.send(req)
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = v
		c.recv(corr, resp)
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != "old" || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: answer %+v, want topic old with partitions 0 and 3", v, resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 35 { // UNSUPPORTED_VERSION
				t.Errorf("v%d partition %d: code %d, want 35 (UNSUPPORTED_VERSION)", v, p.Partition, p.ErrorCode)
			}
		}
	}
	// Produce v13 names topics by id, which the gateway does not serve:
	// the answer echoes the id.
	req13 := produceReq("", -1, rawBatch(-1, -1, -1, 1, "v13"))
	req13.Version = 13
	req13.Topics[0].TopicID = [16]byte{1, 2, 3}
	corr := c.send(req13)
	resp13 := kmsg.NewPtrProduceResponse()
	resp13.Version = 13
	c.recv(corr, resp13)
	if len(resp13.Topics) != 1 || resp13.Topics[0].TopicID != req13.Topics[0].TopicID ||
		len(resp13.Topics[0].Partitions) != 1 || resp13.Topics[0].Partitions[0].ErrorCode != 35 {
		t.Fatalf("v13: answer %+v, want the topic id with UNSUPPORTED_VERSION", resp13.Topics)
	}
	// acks=0: no answer; the next response is the ApiVersions one.
	req := produceReq("old", 0, []byte("x"))
	req.Version = 2
	c.send(req)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "raw-test", "1"
	if resp := c.do(av).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions after an acks=0 Produce v2: code %d", resp.ErrorCode)
	}
}

// rawRequest frames body as a request of key and version with correlation
// id 1 and no client id, adding the empty tagged-field section of a
// flexible request header.
func rawRequest(key, version int16, flexible bool, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, 0xff, 0xff) // null client id
	if flexible {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// TestHostileRequests: requests whose counts claim more elements than their
// bytes hold, or a tag count of 2^32-1, close their connection with a log
// line naming the client and the field, after allocating a bounded
// multiple of the memory limit; another client is served meanwhile, and a
// request with a sound unknown tag is answered. kmsg makes an array's
// elements before it reads them: a produce request of 4MiB of zeros
// claiming 4M topics made the gateway allocate 264MiB under an 8MiB limit
// (6GiB for a request of the largest size, 100MiB), and a tag count of
// 2^32-1 kept a connection's reader looping.
func TestHostileRequests(t *testing.T) {
	const limit = 8 << 20
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(limit), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	const n = 4 << 20
	zeros := make([]byte, n)
	produceHead := []byte{0, 0xff, 0xff, 0, 0, 0x27, 0x10} // null transactional id (compact), acks -1, timeout 10s
	for _, tc := range []struct {
		name  string
		frame []byte
		log   string
	}{
		{"produce v9, 4M topics in 4MiB", rawRequest(0, 9, true, append(binary.AppendUvarint(append([]byte(nil), produceHead...), n+1), zeros...)), "topics[1398101] of 4194304: partitions: bad length"},
		{"produce v3, 2^31-1 topics", rawRequest(0, 3, false, append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0x27, 0x10, 0x7f, 0xff, 0xff, 0xff}, zeros...)), "topics: 2147483647 elements claimed in 4194304 bytes"},
		{"produce v9, 4M partitions", rawRequest(0, 9, true, append(binary.AppendUvarint(append(append([]byte(nil), produceHead...), 2, 2, 'x'), n+2), zeros...)), "topics[0] of 1: partitions: 4194305 elements claimed in 4194304 bytes"},
		{"produce v13, 4M topics", rawRequest(0, 13, true, append(binary.AppendUvarint(append([]byte(nil), produceHead...), n+2), zeros...)), "topics: 4194305 elements claimed"},
		{"metadata v9, 4M topics", rawRequest(3, 9, true, append(binary.AppendUvarint(nil, n+2), zeros...)), "topics: 4194305 elements claimed"},
		{"metadata v9, 2^32-1 tags", rawRequest(3, 9, true, binary.AppendUvarint([]byte{0, 1, 0, 0}, 1<<32-1)), "request tagged fields: bad count"},
		{"find coordinator v4, 4M keys", rawRequest(10, 4, true, append(binary.AppendUvarint([]byte{0}, n+2), zeros...)), "coordinator_keys: 4194305 elements claimed"},
		{"metadata v9 of 1MiB, sound", rawRequest(3, 9, true, append(append(binary.AppendUvarint(nil, n/8+1), bytes.Repeat([]byte{1, 0}, n/8)...), 1, 0, 0, 0)), "may take"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, f.addr)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := c.nc.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(testbroker.Timeout()))
			if n, err := c.nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Fatalf("%d bytes, %v; want the connection closed", n, err)
			}
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 4*limit {
				t.Errorf("allocated %d MiB for a request of %d KiB under a %d MiB limit", got>>20, len(tc.frame)>>10, limit>>20)
			}
			if !strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), "remote="+c.nc.LocalAddr().String()) {
				t.Fatalf("no log line naming %s with %q:\n%s", c.nc.LocalAddr(), tc.log, logs.String())
			}
			other := dial(t, f.addr)
			if pr := partitionResp(t, other.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 {
				t.Fatalf("a produce beside it: code %d", pr.ErrorCode)
			}
		})
	}
	// A sound request with an unknown tagged field is answered.
	c := dial(t, f.addr)
	if _, err := c.nc.Write(rawRequest(3, 9, true, []byte{0, 1, 0, 0, 1, 7, 2, 'h', 'i'})); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = 9
	c.recv(1, resp)
	if len(resp.Brokers) != 1 {
		t.Fatalf("metadata with an unknown tag: %+v", resp)
	}
}

// TestInvalidAcks: a produce request with acks other than -1, 0 and 1, or
// with a transactional id, is answered with INVALID_REQUIRED_ACKS (or
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for each of its partitions, as a
// broker answers it, with a log line naming the client; none of its
// records is produced. Before, acks 2 or -2 were taken for "answer me" and
// the records went upstream, and the transactional refusal left no trace
// in the log.
func TestInvalidAcks(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 2)
	c := dial(t, f.addr)
	txn := "txn-1"
	for _, tc := range []struct {
		name string
		acks int16
		txn  *string
		code int16
		log  string
	}{
		{"acks 2", 2, nil, 21, "acks=2"},
		{"acks -2", -2, nil, 21, "acks=-2"},
		{"acks 32767", 32767, nil, 21, "acks=32767"},
		{"transactional", -1, &txn, 53, "transactional_id=txn-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := produceReq(topic, tc.acks, rawBatch(-1, -1, -1, 3, "acks"))
			req.TransactionID = tc.txn
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: 1, Records: rawBatch(-1, -1, -1, 2, "acks")})
			resp := c.do(req).(*kmsg.ProduceResponse)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
				t.Fatalf("answer %+v, want both partitions", resp.Topics)
			}
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != tc.code {
					t.Errorf("partition %d: code %d, want %d", p.Partition, p.ErrorCode, tc.code)
				}
			}
			if !strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), "remote="+c.nc.LocalAddr().String()) {
				t.Errorf("no log line naming the client with %q:\n%s", tc.log, logs.String())
			}
		})
	}
	// Nothing of them went upstream: the next records are the first.
	if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 || pr.BaseOffset != 0 {
		t.Fatalf("a valid produce after them: code %d, base offset %d; want 0 and 0", pr.ErrorCode, pr.BaseOffset)
	}
	if n := total(endOffsets(t, f.brokers, topic)); n != 1 {
		t.Fatalf("%d records upstream, want 1", n)
	}
}

// TestManyIdleConnections: connections opened and left, silent or with part
// of a request size sent, give their read buffers back after a quiet
// while, so that what each one holds is a few KiB, not the 64KiB buffer
// it kept for its whole life (2,000 of them took 130MiB outside the memory
// limit); a connection that then sends the rest of its request is
// answered.
func TestManyIdleConnections(t *testing.T) {
	// Restored after the gateway stops (cleanups run last first), which
	// reads it until then.
	t.Cleanup(gateway.SetBufferIdle(100 * time.Millisecond))
	f := start(t, nil)
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	frame := rawRequest(18, 0, false, nil) // ApiVersions v0
	late := dial(t, f.addr)
	if _, err := late.nc.Write(frame[:2]); err != nil {
		t.Fatal(err)
	}
	const conns = 1000
	var base runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&base)
	for i := range conns {
		c := dial(t, f.addr)
		if i%2 == 0 {
			if _, err := c.nc.Write([]byte{0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait for the gateway to have served every connection and given
	// the buffers back.
	var per int64
	for deadline := time.Now().Add(testbroker.Timeout()); ; {
		if st := f.gw.Stats(); len(st.Connections) >= conns+1 {
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if per = (int64(ms.HeapAlloc) - int64(base.HeapAlloc)) / conns; per < 16<<10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections hold %d KiB each; want under 16", conns, per>>10)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := late.nc.Write(frame[2:]); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	late.recv(1, resp)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions sent in two parts: %+v", resp)
	}
	if pr := partitionResp(t, dial(t, f.addr).do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 {
		t.Fatalf("a produce beside the idle connections: code %d", pr.ErrorCode)
	}
}

// TestManyTopicNames: a client producing to ever new valid topic names
// that exist nowhere grows the per-topic statistics only up to 10,000
// names; the topics beyond are counted together, with one log line. Each
// name used to keep its counters for the life of the process (in Stats,
// the metrics and the stop summary).
func TestManyTopicNames(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	c := dial(t, f.addr)
	const names = 10_050
	req := produceReq("", -1, nil)
	req.Topics = req.Topics[:0]
	for i := range names {
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = fmt.Sprintf("nowhere-%d", i)
		req.Topics = append(req.Topics, tp) // no partitions: nothing to send
	}
	if resp := c.do(req).(*kmsg.ProduceResponse); len(resp.Topics) != names {
		t.Fatalf("answer for %d topics, want %d", len(resp.Topics), names)
	}
	st := f.gw.Stats()
	if len(st.Topics) > 10_001 {
		t.Fatalf("statistics for %d topics after %d names, want at most 10,001", len(st.Topics), names)
	}
	if !slices.ContainsFunc(st.Topics, func(ts gateway.TopicStats) bool { return ts.Topic == gateway.OtherTopics }) {
		t.Errorf("no %q among the topics counted", gateway.OtherTopics)
	}
	if n := strings.Count(logs.String(), "more topics than the gateway counts"); n != 1 {
		t.Errorf("%d log lines for the topics beyond, want 1:\n%s", n, logs.String())
	}
}

// TestClientNotReading: a client that sends requests and never reads their
// responses, until the responses fill the socket buffers, holds the memory
// of the requests queued behind the blocked write; its connection is closed
// once the write makes no progress for the stall time while another
// client's request (of 900KB, which does not fit beside them) waits for
// that memory, with a log line, and that request is answered. Before, the other client waited for the write timeout, 30
// seconds, and the hostile client could start again.
func TestClientNotReading(t *testing.T) {
	const limit = 4 << 20
	t.Cleanup(gateway.SetWriteStall(200 * time.Millisecond))
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(limit), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	hostile := dial(t, f.addr)
	// A request of 2,000 empty partitions is answered at once with some
	// 70KB; 1,000 of them fill the socket buffers, and the requests
	// queued behind the blocked write hold what decoding them may take.
	wide := produceReq(topic, -1, nil)
	for p := int32(1); p < 2_000; p++ {
		wide.Topics[0].Partitions = append(wide.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: p})
	}
	var frames []byte
	for i := range 1000 {
		frames = append(frames, hostile.fmt.AppendRequest(nil, wide, int32(i+1))...)
	}
	go func() { _, _ = hostile.nc.Write(frames) }() // blocks once the gateway stops reading
	// Wait for the gateway to stop reading the hostile client (it holds
	// the memory then), or to close it (its own reader waited for
	// memory).
	read := uint64(0)
	for deadline := time.Now().Add(testbroker.Timeout()); ; {
		time.Sleep(300 * time.Millisecond)
		st := f.gw.Stats()
		if len(st.Connections) == 0 || st.Connections[0].Requests == read && st.MemoryInUse >= limit {
			break
		}
		read = st.Connections[0].Requests
		if time.Now().After(deadline) {
			t.Fatalf("the gateway still reads the hostile client (%d requests), which holds %d bytes", read, st.MemoryInUse)
		}
	}
	big := produceReq(topic, -1, sealBatch(kmsg.RecordBatch{NumRecords: 1, Records: func() []byte {
		r := kmsg.Record{Value: make([]byte, 900<<10)}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		return r.AppendTo(nil)
	}()}))
	c := dial(t, f.addr)
	t0 := time.Now()
	if pr := partitionResp(t, c.do(big)); pr.ErrorCode != 0 {
		t.Fatalf("a produce beside a client not reading: code %d", pr.ErrorCode)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("a produce beside a client not reading took %v", d)
	}
	if !strings.Contains(logs.String(), "does not read its responses") || !strings.Contains(logs.String(), "remote="+hostile.nc.LocalAddr().String()) {
		t.Fatalf("no log line naming the client that does not read:\n%s", logs.String())
	}
}

// TestCompressionBombs: for every codec, a produce request of four batches
// that each decompress to 64MiB, against a gateway with an 8MiB memory
// limit, gets MESSAGE_TOO_LARGE for each batch with a log line, while the
// gateway allocates a bounded multiple of its limit; a batch whose codec
// bits name no codec gets CORRUPT_MESSAGE. (TestDecompressionBomb covers
// gzip alone.)
func TestCompressionBombs(t *testing.T) {
	const limit = 8 << 20
	var logs lockedBuffer
	f := start(t, []gateway.Option{gateway.MemoryLimit(limit), logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 4)
	r := kmsg.Record{Key: []byte("bomb"), Value: make([]byte, 64<<20)}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	recs := r.AppendTo(nil)
	zstdStreamed := func() []byte {
		var b bytes.Buffer
		zw, _ := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		_, _ = zw.Write(recs)
		_ = zw.Close()
		return b.Bytes()
	}
	lz4ed := func() []byte {
		var b bytes.Buffer
		zw := lz4.NewWriter(&b)
		_, _ = zw.Write(recs)
		_ = zw.Close()
		return b.Bytes()
	}
	zenc, _ := zstd.NewWriter(nil)
	for _, tc := range []struct {
		name  string
		codec int16
		data  []byte
		code  int16
		log   string
	}{
		{"zstd", 4, zenc.EncodeAll(recs, nil), 10, "decompresses to more than the"},
		{"zstd without its size", 4, zstdStreamed(), 10, "decompresses to more than the"},
		{"zstd, a frame with its size then one without", 4, append(zenc.EncodeAll([]byte("small"), nil), zstdStreamed()...), 10, "decompresses to more than the"},
		{"lz4", 3, lz4ed(), 10, "decompresses to more than the"},
		{"snappy", 2, snappy.Encode(nil, recs[:min(len(recs), 4<<30)]), 10, "decompresses to more than the"},
		{"codec 5", 5, []byte("whatever"), 2, "unknown compression codec 5"},
		{"codec 7", 7, []byte("whatever"), 2, "unknown compression codec 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bomb := sealBatch(kmsg.RecordBatch{Attributes: tc.codec, NumRecords: 1, Records: tc.data})
			req := produceReq(topic, -1, bomb)
			for p := int32(1); p < 4; p++ {
				req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: bomb})
			}
			c := dial(t, f.addr)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			resp := c.do(req).(*kmsg.ProduceResponse)
			runtime.ReadMemStats(&after)
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != tc.code {
					t.Errorf("partition %d: error code %d, want %d", p.Partition, p.ErrorCode, tc.code)
				}
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 16*limit {
				t.Errorf("allocated %d MiB for a request of %d KiB under a %d MiB limit", got>>20, len(bomb)*4>>10, limit>>20)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("no log line with %q:\n%s", tc.log, logs.String())
			}
			if pr := partitionResp(t, c.do(produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "ok")))); pr.ErrorCode != 0 {
				t.Fatalf("a valid batch after the bomb: code %d", pr.ErrorCode)
			}
		})
	}
}

// TestMetadataInvalidTopics: a Metadata request naming topics Kafka does
// not accept gets INVALID_TOPIC_EXCEPTION for each of them without the
// upstream being asked to create them, one log line naming the client, and
// the valid names beside them are answered from upstream (one that exists
// nowhere: UNKNOWN_TOPIC_OR_PARTITION).
func TestMetadataInvalidTopics(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 3)
	c := dial(t, f.addr)
	names := []string{"bad name!", "", "..", strings.Repeat("x", 250), topic, "nowhere-metadata"}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp := c.do(req).(*kmsg.MetadataResponse)
	got := map[string]kmsg.MetadataResponseTopic{}
	for _, rt := range resp.Topics {
		got[*rt.Topic] = rt
	}
	for _, n := range names[:4] {
		if rt, ok := got[n]; !ok || rt.ErrorCode != 17 {
			t.Errorf("topic %q: %+v, want INVALID_TOPIC_EXCEPTION (17)", n, rt)
		}
	}
	if rt := got[topic]; rt.ErrorCode != 0 || len(rt.Partitions) != 3 {
		t.Errorf("topic %q: code %d, %d partitions; want 0 and 3", topic, rt.ErrorCode, len(rt.Partitions))
	}
	if rt := got["nowhere-metadata"]; rt.ErrorCode != 3 {
		t.Errorf("a topic that exists nowhere: code %d, want 3 (UNKNOWN_TOPIC_OR_PARTITION)", rt.ErrorCode)
	}
	if n := strings.Count(logs.String(), "invalid topic name"); n != 1 || !strings.Contains(logs.String(), "remote="+c.nc.LocalAddr().String()) {
		t.Errorf("%d log lines for the invalid names, want 1 naming the client:\n%s", n, logs.String())
	}
	// Only invalid names: answered without upstream.
	req.Topics = req.Topics[:1]
	if resp := c.do(req).(*kmsg.MetadataResponse); len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 17 || len(resp.Brokers) != 1 {
		t.Fatalf("metadata for one invalid name: %+v", resp)
	}
}

// TestUnknownPartitionLogged: a produce to a negative partition, or to one
// the topic does not have, is answered UNKNOWN_TOPIC_OR_PARTITION with a
// log line naming the client, the topic and the partition (there was
// none), once per topic partition and
// connection, and for at most a few of them, so that a client that cycles
// through partitions cannot flood the log.
func TestUnknownPartitionLogged(t *testing.T) {
	var logs lockedBuffer
	f := start(t, []gateway.Option{logTo(&logs)})
	topic := testbroker.CreateTopic(t, f.brokers, 1)
	c := dial(t, f.addr)
	produceTo := func(topic string, partition int32) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := produceReq(topic, -1, rawBatch(-1, -1, -1, 1, "u"))
		req.Topics[0].Partitions[0].Partition = partition
		return partitionResp(t, c.do(req))
	}
	for _, tp := range []struct {
		topic     string
		partition int32
	}{
		{topic, -1},
		{topic, -7},
		{topic, 1},
		{topic, 1 << 30},
	} {
		for range 3 {
			if pr := produceTo(tp.topic, tp.partition); pr.ErrorCode != 3 {
				t.Fatalf("%s partition %d: code %d, want 3 (UNKNOWN_TOPIC_OR_PARTITION)", tp.topic, tp.partition, pr.ErrorCode)
			}
		}
		line := fmt.Sprintf("client_id=raw-test topic=%s partition=%d", tp.topic, tp.partition)
		if n := strings.Count(logs.String(), line); n != 1 {
			t.Errorf("%d log lines with %q for three produces on one connection, want 1:\n%s", n, line, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("the log lines do not say what the client was answered:\n%s", logs.String())
	}
	// A client that produces to ever other partitions gets a few lines
	// and one that says the rest are not logged.
	for p := int32(-100); p < -8; p++ {
		if pr := produceTo(topic, p); pr.ErrorCode != 3 {
			t.Fatalf("partition %d: code %d, want 3", p, pr.ErrorCode)
		}
	}
	if n := strings.Count(logs.String(), "client_id=raw-test topic="); n != 8 {
		t.Errorf("%d log lines naming a topic for 96 unknown partitions, want 8:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "not logging them for this connection any more"); n != 1 {
		t.Errorf("%d lines saying the rest are not logged, want 1:\n%s", n, logs.String())
	}
	// The connection still serves.
	if pr := produceTo(topic, 0); pr.ErrorCode != 0 {
		t.Fatalf("partition 0 after the unknown ones: code %d", pr.ErrorCode)
	}
}
