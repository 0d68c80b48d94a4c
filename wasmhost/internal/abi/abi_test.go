package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// sampleRecords are records whose encodings cover every field shape.
func sampleRecords() map[string]plugins.Record {
	return map[string]plugins.Record{
		"zero": {},
		"full": {
			Topic:        "orders",
			Key:          []byte("k1"),
			Value:        []byte(`{"id":1}`),
			Headers:      []plugins.Header{{Key: "trace", Value: []byte("abc")}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}},
			Timestamp:    time.UnixMilli(1_700_000_000_123),
			Partition:    7,
			HasPartition: true,
		},
		"empty not null": {Key: []byte{}, Value: []byte{}},
		"tombstone":      {Topic: "t", Key: []byte("gone")},
		"negative time":  {Timestamp: time.UnixMilli(-5)},
		"partition zero": {HasPartition: true},
		"repeated names": {Headers: []plugins.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}},
		"utf8":           {Topic: "thé", Key: []byte("ключ")},
	}
}

func encode(r *plugins.Record) []byte {
	b := make([]byte, RecordSize(r))
	if n := PutRecord(b, r); n != len(b) {
		panic("PutRecord wrote a different size than RecordSize")
	}
	return b
}

// equalRecords compares records the way the ABI defines them: times by
// instant, nil and empty slices as different values.
func equalRecords(t *testing.T, got, want plugins.Record) {
	t.Helper()
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("Timestamp = %v, want %v", got.Timestamp, want.Timestamp)
	}
	got.Timestamp, want.Timestamp = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record = %#v\nwant     %#v", got, want)
	}
	for _, p := range [][2][]byte{{got.Key, want.Key}, {got.Value, want.Value}} {
		if (p[0] == nil) != (p[1] == nil) {
			t.Errorf("null-ness differs: got %v, want %v", p[0] == nil, p[1] == nil)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for name, rec := range sampleRecords() {
		t.Run(name, func(t *testing.T) {
			b := encode(&rec)
			var got plugins.Record
			if err := DecodeRecord(b, &got); err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			equalRecords(t, got, rec)
			if again := encode(&got); !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
		})
	}
}

func TestDecodedRecordSharesNothing(t *testing.T) {
	rec := sampleRecords()["full"]
	b := encode(&rec)
	var got plugins.Record
	if err := DecodeRecord(b, &got); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	equalRecords(t, got, rec)
	// Appending to the key must not overwrite the value that follows it in
	// the shared backing array.
	_ = append(got.Key, "XXXXXXXXXXXXXXXX"...)
	if string(got.Value) != `{"id":1}` {
		t.Fatalf("appending to Key changed Value to %q", got.Value)
	}
}

func TestPutAck(t *testing.T) {
	rec := sampleRecords()["full"]
	b := make([]byte, AckSize("boom", &rec))
	if n := PutAck(b, 42, "boom", &rec); n != len(b) {
		t.Fatalf("PutAck wrote %d bytes, AckSize said %d", n, len(b))
	}
	if off := int64(binary.LittleEndian.Uint64(b)); off != 42 {
		t.Errorf("offset = %d, want 42", off)
	}
	if n := binary.LittleEndian.Uint32(b[8:]); n != 4 || string(b[12:16]) != "boom" {
		t.Errorf("error text = %q (length %d), want boom", b[12:16], n)
	}
	var got plugins.Record
	if err := DecodeRecord(b[16:], &got); err != nil {
		t.Fatalf("record in ack: %v", err)
	}
	equalRecords(t, got, rec)
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	rec := sampleRecords()["full"]
	b := make([]byte, AckSize("", &rec))
	allocs := testing.AllocsPerRun(100, func() {
		PutRecord(b, &rec)
		PutAck(b, 1, "", &rec)
	})
	if allocs != 0 {
		t.Fatalf("encoding allocates %v times per run", allocs)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	valid := encode(&plugins.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"),
		Headers: []plugins.Header{{Key: "h", Value: []byte("x")}}})
	// Offsets in valid: topic length 16, topic 20, key length 21, key 25,
	// value length 26, value 30, header count 31, name length 35, name 39,
	// header value length 40, header value 44, end 45.
	with := func(off int, v uint32) []byte {
		b := bytes.Clone(valid)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "fixed header runs past"},
		{"short fixed part", valid[:19], "fixed header runs past"},
		{"reserved flag", with(0, 4), "reserved flag bits set (0x4)"},
		{"high reserved flag", with(0, 1<<31|1), "reserved flag bits set (0x80000000)"},
		{"topic too long", with(16, 1000), "topic runs past"},
		{"topic length max", with(16, 0xffffffff), "topic runs past"},
		{"key too long", with(21, 1000), "key runs past"},
		{"key length -2", with(21, 0xfffffffe), "key length -2 is negative"},
		{"value too long", with(26, 100), "value runs past"},
		{"header count too big", with(31, 2), "header count 2 does not fit"},
		{"header count huge", with(31, 0xffffffff), "does not fit"},
		{"header name too long", with(35, 9), "header name runs past"},
		{"header value negative", with(40, 0x80000000), "header value length -2147483648 is negative"},
		{"header value too long", with(40, 2), "header value runs past"},
		{"trailing byte", append(bytes.Clone(valid), 0), "1 trailing bytes"},
		{"trailing bytes after null", append(encode(&plugins.Record{}), 1, 2, 3), "3 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sentinel := plugins.Record{Topic: "unchanged", Key: []byte("k")}
			r := sentinel
			err := DecodeRecord(tt.in, &r)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeRecord error = %v, want a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if ValidateRecord(tt.in) == nil {
				t.Errorf("ValidateRecord accepted what DecodeRecord rejected")
			}
			if !reflect.DeepEqual(r, sentinel) {
				t.Errorf("a failed decode changed the record to %#v", r)
			}
		})
	}
}

func TestMarkerVersion(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"kpipe_abi_v1", 1, true},
		{"kpipe_abi_v12", 12, true},
		{"kpipe_abi_v", 0, false},
		{"kpipe_abi_v0", 0, false},
		{"kpipe_abi_v01", 0, false},
		{"kpipe_abi_v+1", 0, false},
		{"kpipe_abi_v-1", 0, false},
		{"kpipe_abi_vx", 0, false},
		{"kpipe_kinds", 0, false},
	}
	for _, tt := range tests {
		got, ok := MarkerVersion(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("MarkerVersion(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSplitSlice(t *testing.T) {
	tests := []struct {
		in       int64
		ptr, n   uint32
		ok       bool
		describe string
	}{
		{int64(Slice(65536, 100)), 65536, 100, true, "slice"},
		{0, 0, 0, true, "zero"},
		{int64(Slice(0x7fffffff, 0xffffffff)), 0x7fffffff, 0xffffffff, true, "largest"},
		{-1, 0, 0, false, "status"},
		{int64(-1 << 63), 0, 0, false, "pointer with the top bit"},
	}
	for _, tt := range tests {
		ptr, n, ok := SplitSlice(tt.in)
		if ptr != tt.ptr || n != tt.n || ok != tt.ok {
			t.Errorf("%s: SplitSlice(%#x) = %d, %d, %v; want %d, %d, %v", tt.describe, tt.in, ptr, n, ok, tt.ptr, tt.n, tt.ok)
		}
	}
}

func BenchmarkPutRecord(b *testing.B) {
	rec := plugins.Record{Topic: "bench", Key: make([]byte, 16), Value: make([]byte, 100)}
	buf := make([]byte, RecordSize(&rec))
	b.ReportAllocs()
	for b.Loop() {
		PutRecord(buf, &rec)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	rec := plugins.Record{Topic: "bench", Key: make([]byte, 16), Value: make([]byte, 100),
		Headers: []plugins.Header{{Key: "h", Value: []byte("v")}}}
	buf := encode(&rec)
	var out plugins.Record
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRecord(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBatchFraming checks the entry prefixes and result elements of the
// batch hooks (ABI 5.5) byte for byte.
func TestBatchFraming(t *testing.T) {
	b := make([]byte, PartitionEntryHeader)
	PutEntryHeader(b, 0x01020304)
	if want := []byte{4, 3, 2, 1}; !bytes.Equal(b[:EntryHeader], want) {
		t.Errorf("entry header % x, want % x", b[:EntryHeader], want)
	}
	PutPartitionEntryHeader(b, 12, 5)
	if want := []byte{12, 0, 0, 0, 5, 0, 0, 0}; !bytes.Equal(b, want) {
		t.Errorf("partition entry header % x, want % x", b, want)
	}
	results := []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0}
	if got := OnSendResult(results, 0); got != -2 {
		t.Errorf("OnSendResult 0 = %d, want -2", got)
	}
	if got := OnSendResult(results, 1); got != 7 {
		t.Errorf("OnSendResult 1 = %d, want 7", got)
	}
	if got := PartitionResult([]byte{3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 1); got != -1 {
		t.Errorf("PartitionResult 1 = %d, want -1", got)
	}
}
