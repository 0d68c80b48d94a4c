package abi

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/kpipe/kpipe/plugins"
)

// FuzzDecodeRecord checks that decoding guest output never panics, that it
// accepts exactly what ValidateRecord accepts, that a failed decode leaves
// the record alone, and that whatever decodes re-encodes to the same
// decoded record (and to the same bytes when the fields the flags disable
// are zero).
func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range sampleRecords() {
		b := encode(&rec)
		f.Add(b)
		f.Add(append(bytes.Clone(b), 0))
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))

	f.Fuzz(func(t *testing.T, in []byte) {
		sentinel := plugins.Record{Topic: "sentinel", Value: []byte("v")}
		r := sentinel
		err := DecodeRecord(in, &r)
		if (err == nil) != (ValidateRecord(in) == nil) {
			t.Fatalf("DecodeRecord error %v, ValidateRecord error %v", err, ValidateRecord(in))
		}
		if err != nil {
			if !reflect.DeepEqual(r, sentinel) {
				t.Fatalf("failed decode (%v) changed the record", err)
			}
			return
		}
		// Trailing data must always be rejected.
		if DecodeRecord(append(bytes.Clone(in), 0), &plugins.Record{}) == nil {
			t.Fatal("accepted a valid record followed by a trailing byte")
		}
		out := encode(&r)
		if len(out) != len(in) {
			t.Fatalf("re-encoded length %d, input %d", len(out), len(in))
		}
		var again plugins.Record
		if err := DecodeRecord(out, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !again.Timestamp.Equal(r.Timestamp) {
			t.Fatalf("timestamp changed: %v, then %v", r.Timestamp, again.Timestamp)
		}
		again.Timestamp, r.Timestamp = again.Timestamp.UTC(), r.Timestamp.UTC()
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record:\n%#v\n%#v", r, again)
		}
		// The canonical form zeroes the fields the flags disable. A
		// timestamp flag with the zero time's value (year 1) means "no
		// timestamp", like the zero time.Time it decodes to.
		want := bytes.Clone(in)
		if !r.HasPartition {
			clear(want[4:8])
		}
		if r.Timestamp.IsZero() {
			want[0] &^= byte(FlagTimestamp)
			clear(want[8:16])
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", out, want)
		}
	})
}
