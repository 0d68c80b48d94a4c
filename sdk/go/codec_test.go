package kpipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// goldenRecord is a record and its encoding, written out field by field from
// ABI section 4.1 rather than produced by the encoder under test.
var goldenRecord = Record{
	Topic:        "t1",
	Key:          []byte("k"),
	Value:        nil,
	Headers:      []Header{{Key: "h", Value: []byte("v")}, {Key: "n", Value: nil}},
	Partition:    7,
	HasPartition: true,
	Timestamp:    0x0102030405060708,
	HasTimestamp: true,
}

var goldenBytes = []byte{
	3, 0, 0, 0, // flags: partition and timestamp
	7, 0, 0, 0, // partition
	8, 7, 6, 5, 4, 3, 2, 1, // timestamp
	2, 0, 0, 0, 't', '1', // topic
	1, 0, 0, 0, 'k', // key
	0xff, 0xff, 0xff, 0xff, // null value
	2, 0, 0, 0, // header count
	1, 0, 0, 0, 'h', 1, 0, 0, 0, 'v',
	1, 0, 0, 0, 'n', 0xff, 0xff, 0xff, 0xff,
}

func TestEncodeGolden(t *testing.T) {
	got, err := appendRecord(nil, &goldenRecord)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, goldenBytes) {
		t.Fatalf("appendRecord:\n got % x\nwant % x", got, goldenBytes)
	}
}

func TestDecodeGolden(t *testing.T) {
	var d decoder
	var r Record
	if err := d.decodeRecord(goldenBytes, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, goldenRecord) {
		t.Fatalf("decodeRecord:\n got %+v\nwant %+v", r, goldenRecord)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"zero", Record{}},
		{"empty not null", Record{Key: []byte{}, Value: []byte{}, Headers: []Header{{Key: "", Value: []byte{}}}}},
		{"topic only", Record{Topic: "orders"}},
		{"negative partition kept", Record{Partition: -5, HasPartition: true}},
		{"negative timestamp", Record{Timestamp: -1, HasTimestamp: true}},
		{"binary", Record{Key: []byte{0, 0xff, 1}, Value: bytes.Repeat([]byte{0xab}, 1000)}},
		{"repeated headers", Record{Headers: []Header{{"a", []byte("1")}, {"a", []byte("2")}, {"b", nil}}}},
		{"long names", Record{Topic: strings.Repeat("t", 300), Headers: []Header{{strings.Repeat("h", 300), []byte("x")}}}},
	}
	var d decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := appendRecord(nil, &tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			var got Record
			if err := d.decodeRecord(enc, &got); err != nil {
				t.Fatal(err)
			}
			want := tt.rec
			if len(want.Headers) == 0 {
				want.Headers = nil
			}
			if len(got.Headers) == 0 {
				got.Headers = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
			}
			// Null and empty must stay distinct.
			if (got.Key == nil) != (tt.rec.Key == nil) || (got.Value == nil) != (tt.rec.Value == nil) {
				t.Fatalf("null/empty mixed up: key %v value %v", got.Key == nil, got.Value == nil)
			}
		})
	}
}

// TestEncodeIgnoresUnsetFields checks that a partition or timestamp without
// its flag is written as zero, as the ABI asks.
func TestEncodeIgnoresUnsetFields(t *testing.T) {
	enc, err := appendRecord(nil, &Record{Partition: 9, Timestamp: 9})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc[:16], make([]byte, 16)) {
		t.Fatalf("flags, partition and timestamp = % x, want zeros", enc[:16])
	}
}

func TestDecodeMalformed(t *testing.T) {
	le := binary.LittleEndian
	withFlags := bytes.Clone(goldenBytes)
	le.PutUint32(withFlags, 4)
	negKey := bytes.Clone(goldenBytes)
	le.PutUint32(negKey[22:], uint32(0xfffffffe)) // key length -2
	hugeTopic := bytes.Clone(goldenBytes)
	le.PutUint32(hugeTopic[16:], 0xfffffff0)
	hugeCount := bytes.Clone(goldenBytes)
	le.PutUint32(hugeCount[31:], 1<<30)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "record of 0 bytes is shorter"},
		{"reserved flag", withFlags, "reserved record flag bits 0x4"},
		{"negative key length", negKey, "key length -2 is negative"},
		{"huge topic", hugeTopic, "topic at offset 20 needs 4294967280 bytes"},
		{"huge header count", hugeCount, "header count 1073741824 does not fit"},
		{"trailing byte", append(bytes.Clone(goldenBytes), 0), "1 trailing bytes"},
	}
	var d decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			err := d.decodeRecord(tt.in, &r)
			if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeRecord error = %v, want errMalformed containing %q", err, tt.want)
			}
		})
	}
}

// TestDecodeTruncated decodes every proper prefix of a valid record: each must
// fail cleanly.
func TestDecodeTruncated(t *testing.T) {
	var d decoder
	for n := 0; n < len(goldenBytes); n++ {
		var r Record
		if err := d.decodeRecord(goldenBytes[:n], &r); !errors.Is(err, errMalformed) {
			t.Fatalf("decodeRecord(%d of %d bytes) error = %v, want errMalformed", n, len(goldenBytes), err)
		}
	}
}

func TestDecodeAck(t *testing.T) {
	le := binary.LittleEndian
	build := func(offset int64, msg string, rec []byte) []byte {
		b := le.AppendUint64(nil, uint64(offset))
		b = le.AppendUint32(b, uint32(len(msg)))
		b = append(b, msg...)
		return append(b, rec...)
	}
	tests := []struct {
		name    string
		in      []byte
		want    Ack
		wantErr string
	}{
		{"delivered", build(42, "", goldenBytes), Ack{Offset: 42}, ""},
		{"failed", build(-1, "boom", goldenBytes), Ack{Offset: -1, Error: "boom"}, ""},
		{"short error", build(-1, "boom", nil)[:14], Ack{}, "error at offset 12 needs 4 bytes, 2 left"},
		{"trailing", build(1, "", append(bytes.Clone(goldenBytes), 9)), Ack{}, "trailing"},
	}
	var d decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ack Ack
			var r Record
			err := d.decodeAck(tt.in, &ack, &r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeAck error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ack != tt.want {
				t.Fatalf("ack = %+v, want %+v", ack, tt.want)
			}
			if !reflect.DeepEqual(r, goldenRecord) {
				t.Fatalf("record = %+v, want %+v", r, goldenRecord)
			}
			if ack.Delivered() != (tt.want.Error == "") {
				t.Fatalf("Delivered() = %v", ack.Delivered())
			}
		})
	}
}

// TestDecodedSlicesAreClipped checks that appending to a decoded key cannot
// overwrite the bytes that follow it in the input.
func TestDecodedSlicesAreClipped(t *testing.T) {
	in := bytes.Clone(goldenBytes)
	var d decoder
	var r Record
	if err := d.decodeRecord(in, &r); err != nil {
		t.Fatal(err)
	}
	_ = append(r.Key, 'X', 'X', 'X', 'X')
	if !bytes.Equal(in, goldenBytes) {
		t.Fatal("appending to the decoded key changed the input")
	}
}

func TestNameCache(t *testing.T) {
	var d decoder
	for i := 0; i < 3*nameCacheSize; i++ {
		name := strings.Repeat("n", i+1)
		if got := d.name([]byte(name)); got != name {
			t.Fatalf("name(%q) = %q", name, got)
		}
	}
	// A cached name is returned without allocating.
	d.name([]byte("topic"))
	b := []byte("topic")
	if allocs := testing.AllocsPerRun(10, func() { d.name(b) }); allocs != 0 {
		t.Fatalf("cached name allocates %v times", allocs)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(goldenBytes)
	f.Add([]byte{})
	other, _ := appendRecord(nil, &Record{Topic: "t2", Headers: []Header{{"n", nil}, {"h", []byte("x")}, {"hh", nil}}})
	f.Add(other)
	// shared decodes every input after the previous ones, as an instance
	// does, so that the reuse of earlier names and slices is exercised.
	var shared decoder
	f.Fuzz(func(t *testing.T, in []byte) {
		var d decoder
		var r Record
		err := d.decodeRecord(in, &r)
		var rs Record
		if errShared := shared.decodeRecord(in, &rs); (errShared == nil) != (err == nil) {
			t.Fatalf("a fresh decoder says %v, a reused one %v", err, errShared)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(normalize(rs), normalize(r)) {
			t.Fatalf("a reused decoder decodes differently:\n got %#v\nwant %#v", rs, r)
		}
		// Whatever decodes must encode to bytes that decode to the same
		// record (not to the same bytes: an unset partition or timestamp
		// may hold anything in the input, and is encoded as zero).
		out, err := appendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		var d2 decoder // a second decoder: d's header slice backs r
		var again Record
		if err := d2.decodeRecord(out, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(r)) {
			t.Fatalf("round trip changed the record:\n got %#v\nwant %#v", again, r)
		}
	})
}

// normalize makes an empty header list nil, for comparisons.
func normalize(r Record) Record {
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	return r
}

// TestDecoderReuse decodes a sequence of records whose topics and header
// names change, with one decoder, as an instance does.
func TestDecoderReuse(t *testing.T) {
	records := []Record{
		goldenRecord,
		{Topic: "t1", Headers: []Header{{"h", []byte("1")}, {"x", nil}}},
		{Topic: "t2", Headers: []Header{{"x", nil}, {"h", nil}, {"h2", []byte("y")}}},
		{Topic: "t2"},
		{Topic: "t1", Headers: []Header{{"a", nil}, {"b", nil}, {"c", nil}, {"d", nil}, {"e", nil}, {"f", nil}, {"g", nil}, {"h", nil}, {"i", nil}, {"j", nil}}},
		goldenRecord,
	}
	var d decoder
	for i, want := range records {
		enc, err := appendRecord(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		var got Record
		if err := d.decodeRecord(enc, &got); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("record %d:\n got %#v\nwant %#v", i, got, want)
		}
	}
}

// TestDecodeSetsEveryField decodes into a Record whose every field is set,
// and checks that nothing of it is left: the decoder sets the fields one by
// one, so a field added to Record must be added there too.
func TestDecodeSetsEveryField(t *testing.T) {
	var dirty Record
	v := reflect.ValueOf(&dirty).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString("dirty")
		case []byte:
			f.SetBytes([]byte("dirty"))
		case []Header:
			f.Set(reflect.ValueOf([]Header{{Key: "dirty"}}))
		case int32, int64:
			f.SetInt(99)
		case bool:
			f.SetBool(true)
		default:
			t.Fatalf("Record.%s has type %s, which this test does not know: set it in decoder.record and here", v.Type().Field(i).Name, f.Type())
		}
	}
	for _, want := range []Record{{}, goldenRecord} {
		enc, err := appendRecord(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		got := dirty
		var d decoder
		if err := d.decodeRecord(enc, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Headers) == 0 {
			got.Headers = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoding into a used Record:\n got %+v\nwant %+v", got, want)
		}
	}
}
