package abi

import (
	"bytes"
	"reflect"
	"slices"
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

// FuzzApplyEdits checks that applying guest output never panics, that it
// accepts exactly what ValidateEdits accepts, that a failed apply leaves the
// record alone, that the header list the record had is never written, and
// that ApplyEdits, with its one-pass path for a single header edit, does
// exactly what the general path (applyList) does, to a record with headers
// and to one without.
func FuzzApplyEdits(f *testing.F) {
	for _, e := range []*EditList{
		new(EditList).SetHeader("kpipe-stamp", []byte("sdk")),
		new(EditList).SetHeader("h", nil),
		new(EditList).SetHeader("h", []byte{}),
		new(EditList).AppendHeader("h", []byte("v")),
		new(EditList).AppendHeader("", nil),
		new(EditList).RemoveHeader("h"),
		new(EditList).SetHeader("h", []byte("1")).SetKey([]byte("k")).SetTimestamp(5).ClearPartition(),
	} {
		b := e.Bytes()
		f.Add(b)
		f.Add(append(bytes.Clone(b), 0))
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0x80, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	// The records the edits apply to: with headers and without; the
	// header lists have room to grow in place, which the edits must not
	// use.
	bases := []func() plugins.Record{
		func() plugins.Record {
			return plugins.Record{Topic: "t", Key: []byte("k"), Headers: slices.Grow([]plugins.Header{
				{Key: "h", Value: []byte("0")}, {Key: "x", Value: []byte("1")}, {Key: "h", Value: []byte("2")},
			}, 2)}
		},
		func() plugins.Record { return plugins.Record{Topic: "t", Key: []byte("k")} },
		func() plugins.Record {
			return plugins.Record{Topic: "t", Key: []byte("k"), Headers: make([]plugins.Header, 0, 2)}
		},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, base := range bases {
			var a, general Applier
			r, want := base(), base()
			old := r.Headers[:cap(r.Headers)]
			before := slices.Clone(old)
			err := a.ApplyEdits(in, &r)
			wantErr := general.applyList(in, &want)
			if (err == nil) != (ValidateEdits(in) == nil) || (err == nil) != (wantErr == nil) {
				t.Fatalf("ApplyEdits error %v, applyList error %v, ValidateEdits error %v", err, wantErr, ValidateEdits(in))
			}
			if IsEditList(in) && (err == nil) != (ValidateResult(in) == nil) {
				t.Fatalf("ApplyEdits error %v, ValidateResult error %v", err, ValidateResult(in))
			}
			if err != nil && !reflect.DeepEqual(r, base()) {
				t.Fatalf("failed apply (%v) changed the record", err)
			}
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("ApplyEdits and applyList differ:\n%#v\n%#v", r, want)
			}
			if !reflect.DeepEqual(old, before) {
				t.Fatalf("ApplyEdits wrote the record's old header list:\n%#v\n%#v", old, before)
			}
		}
	})
}
