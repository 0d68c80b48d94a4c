package abi

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// readKey parses the key encoding of KPIPE_FEATURE_PARTITION_KEY as a
// guest would, independently of PutKey.
func readKey(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("key encoding of %d bytes is shorter than its length", len(b))
	}
	n := int32(binary.LittleEndian.Uint32(b))
	if n == -1 {
		if len(b) != 4 {
			t.Fatalf("null key followed by %d bytes", len(b)-4)
		}
		return nil
	}
	if n < 0 || int(n) != len(b)-4 {
		t.Fatalf("key length %d, %d bytes follow", n, len(b)-4)
	}
	return b[4:]
}

// leanAck is a lean acknowledgement as a guest reads it.
type leanAck struct {
	offset    int64
	errText   string
	partition int32
	ts        int64
}

// readLeanAck parses the lean acknowledgement encoding as a guest would.
func readLeanAck(t *testing.T, b []byte) leanAck {
	t.Helper()
	if len(b) < 12 {
		t.Fatalf("lean ack of %d bytes", len(b))
	}
	var a leanAck
	a.offset = int64(binary.LittleEndian.Uint64(b))
	n := int(binary.LittleEndian.Uint32(b[8:]))
	if len(b) != 12+n+12 {
		t.Fatalf("lean ack of %d bytes with %d bytes of error text, want %d bytes", len(b), n, 12+n+12)
	}
	a.errText = string(b[12 : 12+n])
	a.partition = int32(binary.LittleEndian.Uint32(b[12+n:]))
	a.ts = int64(binary.LittleEndian.Uint64(b[16+n:]))
	return a
}

func TestPutKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		want []byte
	}{
		{"null", nil, []byte{0xff, 0xff, 0xff, 0xff}},
		{"empty", []byte{}, []byte{0, 0, 0, 0}},
		{"bytes", []byte("k1"), []byte{2, 0, 0, 0, 'k', '1'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, KeySize(tc.key))
			if n := PutKey(b, tc.key); n != len(b) {
				t.Fatalf("PutKey wrote %d bytes, KeySize says %d", n, len(b))
			}
			if !bytes.Equal(b, tc.want) {
				t.Fatalf("encoding = %x, want %x", b, tc.want)
			}
			if got := readKey(t, b); !bytes.Equal(got, tc.key) || (got == nil) != (tc.key == nil) {
				t.Fatalf("read back %q (nil %v), want %q (nil %v)", got, got == nil, tc.key, tc.key == nil)
			}
		})
	}
}

func TestPutLeanAck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offset  int64
		errText string
		r       plugins.Record
		want    leanAck
	}{
		{"delivered", 42, "", plugins.Record{Topic: "t", Value: []byte("v"), Partition: 3, HasPartition: true, Timestamp: time.UnixMilli(1_700_000_000_123)},
			leanAck{42, "", 3, 1_700_000_000_123}},
		{"failed unpartitioned", -1, "boom", plugins.Record{Topic: "t"}, leanAck{-1, "boom", NoPartition, NoTimestamp}},
		{"partition zero", 0, "", plugins.Record{HasPartition: true, Timestamp: time.UnixMilli(0)}, leanAck{0, "", 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, LeanAckSize(tc.errText))
			if n := PutLeanAck(b, tc.offset, tc.errText, &tc.r); n != len(b) {
				t.Fatalf("PutLeanAck wrote %d bytes, LeanAckSize says %d", n, len(b))
			}
			if got := readLeanAck(t, b); got != tc.want {
				t.Fatalf("read back %+v, want %+v", got, tc.want)
			}
			// The prefix is the one of the full acknowledgement (4.2).
			full := make([]byte, AckSize(tc.errText, &tc.r))
			PutAck(full, tc.offset, tc.errText, &tc.r)
			if p := ackFixed + len(tc.errText); !bytes.Equal(b[:p], full[:p]) {
				t.Fatalf("prefix %x differs from the full acknowledgement's %x", b[:p], full[:p])
			}
		})
	}
}

func TestLeanEncodeDoesNotAllocate(t *testing.T) {
	r := plugins.Record{Key: []byte("key"), HasPartition: true, Timestamp: time.Now()}
	b := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		PutKey(b, r.Key)
		PutLeanAck(b, 1, "err", &r)
	}); n != 0 {
		t.Fatalf("lean encoders allocate %v times", n)
	}
}

func TestFeatureNames(t *testing.T) {
	for f, want := range map[uint64]string{
		0:                         "none",
		FeaturePartitionKey:       "PARTITION_KEY",
		KnownFeatures:             "PARTITION_KEY|ACK_NO_RECORD|EDITS",
		FeatureAckNoRecord | 1<<5: "ACK_NO_RECORD|0x20",
	} {
		if got := FeatureNames(f); got != want {
			t.Errorf("FeatureNames(%#x) = %q, want %q", f, got, want)
		}
	}
}

// FuzzLeanEncodings checks that the key and lean acknowledgement encodings
// have the size their Size functions promise and read back, as a guest
// reads them, to what was encoded.
func FuzzLeanEncodings(f *testing.F) {
	f.Add([]byte("key"), false, int64(7), "", int32(2), true, int64(1_700_000_000_000))
	f.Add([]byte{}, true, int64(-1), "error text", int32(0), false, int64(0))
	f.Fuzz(func(t *testing.T, key []byte, nullKey bool, offset int64, errText string, partition int32, hasPartition bool, ms int64) {
		if nullKey {
			key = nil
		}
		kb := make([]byte, KeySize(key))
		if n := PutKey(kb, key); n != len(kb) {
			t.Fatalf("PutKey wrote %d bytes, KeySize says %d", n, len(kb))
		}
		if got := readKey(t, kb); !bytes.Equal(got, key) || (got == nil) != (key == nil) {
			t.Fatalf("key read back %x, want %x", got, key)
		}
		// Partitions are never negative; timestamps in range of time.
		partition &= 0x7fffffff
		ms %= 1 << 50
		r := plugins.Record{Key: key, Partition: partition, HasPartition: hasPartition, Timestamp: time.UnixMilli(ms)}
		want := leanAck{offset, errText, NoPartition, ms}
		if hasPartition {
			want.partition = partition
		}
		ab := make([]byte, LeanAckSize(errText))
		if n := PutLeanAck(ab, offset, errText, &r); n != len(ab) {
			t.Fatalf("PutLeanAck wrote %d bytes, LeanAckSize says %d", n, len(ab))
		}
		if got := readLeanAck(t, ab); got != want {
			t.Fatalf("lean ack read back %+v, want %+v", got, want)
		}
	})
}
