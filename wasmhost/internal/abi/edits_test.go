package abi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/kpipe/kpipe/plugins"
)

func TestApplyEdits(t *testing.T) {
	base := func() plugins.Record {
		r := plugins.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"), Headers: []plugins.Header{
			{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("3")},
		}}
		r.SetPartition(4)
		r.Timestamp = time.UnixMilli(99)
		return r
	}
	tests := []struct {
		name  string
		edits *EditList
		want  func(r *plugins.Record)
	}{
		{"none", &EditList{}, func(*plugins.Record) {}},
		{"set replaces the first and removes the rest", new(EditList).SetHeader("a", []byte("x")), func(r *plugins.Record) {
			r.Headers = []plugins.Header{{Key: "a", Value: []byte("x")}, {Key: "b", Value: []byte("2")}}
		}},
		{"set appends a new name", new(EditList).SetHeader("c", nil), func(r *plugins.Record) {
			r.Headers = append(r.Headers, plugins.Header{Key: "c"})
		}},
		{"append", new(EditList).AppendHeader("a", []byte{}), func(r *plugins.Record) {
			r.Headers = append(r.Headers, plugins.Header{Key: "a", Value: []byte{}})
		}},
		{"remove", new(EditList).RemoveHeader("a"), func(r *plugins.Record) {
			r.Headers = []plugins.Header{{Key: "b", Value: []byte("2")}}
		}},
		{"key value topic", new(EditList).SetKey(nil).SetValue([]byte{}).SetTopic("u"), func(r *plugins.Record) {
			r.Key, r.Value, r.Topic = nil, []byte{}, "u"
		}},
		{"partition and timestamp", new(EditList).ClearPartition().SetTimestamp(-5), func(r *plugins.Record) {
			r.HasPartition, r.Partition, r.Timestamp = false, 0, time.UnixMilli(-5)
		}},
		{"set partition, clear timestamp", new(EditList).SetPartition(0).ClearTimestamp(), func(r *plugins.Record) {
			r.Partition, r.Timestamp = 0, time.Time{}
		}},
		{"in order", new(EditList).RemoveHeader("b").AppendHeader("b", []byte("9")).SetHeader("a", nil), func(r *plugins.Record) {
			r.Headers = []plugins.Header{{Key: "a"}, {Key: "b", Value: []byte("9")}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := base(), base()
			orig := got.Headers
			tt.want(&want)
			b := tt.edits.Bytes()
			if !IsEditList(b) {
				t.Fatal("IsEditList = false")
			}
			if err := new(Applier).DecodeResult(b, &got, true); err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, want)
			if !reflect.DeepEqual(orig, base().Headers) {
				t.Errorf("the record's old header slice was written: %v", orig)
			}
		})
	}
}

func TestApplyEditsInvalid(t *testing.T) {
	valid := new(EditList).SetHeader("a", []byte("x")).Bytes()
	tests := map[string][]byte{
		"not an edit list": {0, 0, 0, 0},
		"count too large":  {5, 0, 0, 0x80, 1},
		"unknown op":       {1, 0, 0, 0x80, 42},
		"cut name":         valid[:8],
		"trailing":         append(append([]byte{}, valid...), 0),
		"cut partition":    {1, 0, 0, 0x80, EditSetPartition, 1, 2},
		"negative value":   {1, 0, 0, 0x80, EditSetKey, 0xfe, 0xff, 0xff, 0xff},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			r := plugins.Record{Topic: "keep"}
			var de *DecodeError
			if err := new(Applier).ApplyEdits(b, &r); !errors.As(err, &de) {
				t.Fatalf("ApplyEdits = %v, want a *DecodeError", err)
			}
			if r.Topic != "keep" {
				t.Error("record changed by an invalid edit list")
			}
		})
	}
	// A record is not an edit list, and DecodeResult decodes it.
	rec := encode(&plugins.Record{Topic: "r"})
	var r plugins.Record
	if IsEditList(rec) || new(Applier).DecodeResult(rec, &r, true) != nil || r.Topic != "r" {
		t.Errorf("a record result: IsEditList %v, topic %q", IsEditList(rec), r.Topic)
	}
}

// TestApplierNames checks that an Applier gives edits with the same header
// name or topic the same string, copied once and never pointing into the
// edit list, while every record still gets values of its own; and that a
// long name is copied every time, so that what the Applier remembers stays
// small.
func TestApplierNames(t *testing.T) {
	var a Applier
	long := strings.Repeat("n", nameCacheMax+1)
	edits := new(EditList).SetHeader("kpipe-stamp", []byte("sdk")).AppendHeader(long, nil).SetTopic("t").Bytes()
	var rs [3]plugins.Record
	for i := range rs {
		b := append([]byte(nil), edits...)
		if err := a.ApplyEdits(b, &rs[i]); err != nil {
			t.Fatal(err)
		}
		clear(b) // the records must not see the guest's bytes change
	}
	data := func(s string) *byte { return unsafe.StringData(s) }
	for i, r := range rs {
		if len(r.Headers) != 2 || r.Headers[0].Key != "kpipe-stamp" || string(r.Headers[0].Value) != "sdk" ||
			r.Headers[1].Key != long || r.Topic != "t" {
			t.Fatalf("record %d: %+v", i, r)
		}
		if i == 0 {
			continue
		}
		if data(r.Headers[0].Key) != data(rs[0].Headers[0].Key) || data(r.Topic) != data(rs[0].Topic) {
			t.Errorf("record %d: a repeated name or topic was copied again", i)
		}
		if data(r.Headers[1].Key) == data(rs[0].Headers[1].Key) {
			t.Errorf("record %d: a name longer than %d bytes was remembered", i, nameCacheMax)
		}
		if &r.Headers[0].Value[0] == &rs[0].Headers[0].Value[0] {
			t.Errorf("record %d shares its header value with record 0", i)
		}
	}
}

// TestApplierBlocks checks that records edited by one Applier, whose memory
// comes from the same blocks, share nothing that one could change in the
// other: every slice is capped at its length, and a header list that the
// edits may grow has room only for what they add.
func TestApplierBlocks(t *testing.T) {
	var a Applier
	edits := new(EditList).SetHeader("h", []byte("v1")).SetValue([]byte("val")).Bytes()
	rs := make([]plugins.Record, 3*blockHeaders) // enough to fill several blocks
	for i := range rs {
		rs[i] = plugins.Record{Headers: []plugins.Header{{Key: "x", Value: []byte("1")}}}
		if err := a.ApplyEdits(edits, &rs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range rs {
		r := &rs[i]
		if len(r.Headers) != 2 || cap(r.Headers) != 2 || cap(r.Value) != len(r.Value) || cap(r.Headers[1].Value) != len(r.Headers[1].Value) {
			t.Fatalf("record %d: headers len %d cap %d, value cap %d, header value cap %d: not capped",
				i, len(r.Headers), cap(r.Headers), cap(r.Value), cap(r.Headers[1].Value))
		}
		// Writing through one record's slices and growing them must leave
		// every other record as it was.
		r.Value[0] = 'X'
		r.Headers[1].Value = append(r.Headers[1].Value, '!')
		r.Headers = append(r.Headers, plugins.Header{Key: "grown"})
	}
	for i := range rs {
		r := &rs[i]
		if string(r.Value) != "Xal" || r.Headers[0].Key != "x" || r.Headers[1].Key != "h" || string(r.Headers[1].Value) != "v1!" {
			t.Fatalf("record %d changed through another: %+v", i, *r)
		}
	}
	// A header list too large for a block gets memory of its own.
	big := plugins.Record{Headers: make([]plugins.Header, blockHeaders)}
	if err := a.ApplyEdits(edits, &big); err != nil || len(big.Headers) != blockHeaders+1 {
		t.Fatalf("large header list: %v, %d headers", err, len(big.Headers))
	}
}

// BenchmarkApplyEdits measures applying the header stamp's edit list (set
// kpipe-stamp to sdk) as the host does for every record a stamping
// interceptor returns (DecodeResult), to a record without headers
// (no-headers, the record of wasmhost's benchmarks) and to one with three
// (3-headers). The record is on the heap, as the pipeline's records are, so
// its pointer writes pay the collector's write barriers as they do there.
// Count instructions with scripts/callgrind_per_op.sh ./wasmhost/internal/abi
// 'BenchmarkApplyEdits/no-headers'.
func BenchmarkApplyEdits(b *testing.B) {
	edits := new(EditList).SetHeader("kpipe-stamp", []byte("sdk")).Bytes()
	for _, bench := range []struct {
		name    string
		headers []plugins.Header
	}{
		{"no-headers", nil},
		{"3-headers", []plugins.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "c", Value: []byte("3")}}},
	} {
		b.Run(bench.name, func(b *testing.B) {
			orig := plugins.Record{Topic: "bench", Key: []byte("key-0001"), Value: make([]byte, 100), Headers: bench.headers}
			r := new(plugins.Record)
			a := new(Applier)
			b.ReportAllocs()
			for b.Loop() {
				*r = orig
				if err := a.DecodeResult(edits, r, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
