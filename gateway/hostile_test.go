package gateway_test

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

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
	f := start(t, []gateway.Option{gateway.Logger(hclog.New(&hclog.LoggerOptions{Output: &logs}))})
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
