package kpipe

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// viewFunc is a ViewInterceptor made of a function.
type viewFunc func(*RecordView) (Action, error)

func (f viewFunc) OnSendView(v *RecordView) (Action, error) { return f(v) }

// checkView checks that v's getters give what rec holds.
func checkView(t *testing.T, v *RecordView, rec *Record) {
	t.Helper()
	if got := v.Topic(); got != rec.Topic {
		t.Errorf("Topic = %q, want %q", got, rec.Topic)
	}
	if got := v.Key(); !bytes.Equal(got, rec.Key) || (got == nil) != (rec.Key == nil) {
		t.Errorf("Key = %q (nil %v), want %q (nil %v)", got, got == nil, rec.Key, rec.Key == nil)
	}
	if got := v.Value(); !bytes.Equal(got, rec.Value) || (got == nil) != (rec.Value == nil) {
		t.Errorf("Value = %.20q (nil %v), want %.20q (nil %v)", got, got == nil, rec.Value, rec.Value == nil)
	}
	if p, ok := v.Partition(); p != rec.Partition || ok != rec.HasPartition {
		t.Errorf("Partition = %d, %v; want %d, %v", p, ok, rec.Partition, rec.HasPartition)
	}
	if ts, ok := v.Timestamp(); ts != rec.Timestamp || ok != rec.HasTimestamp {
		t.Errorf("Timestamp = %d, %v; want %d, %v", ts, ok, rec.Timestamp, rec.HasTimestamp)
	}
	for _, h := range rec.Headers {
		want, _ := rec.HeaderValue(h.Key)
		got, ok := v.Header(h.Key)
		if !ok || !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("Header(%q) = %q, %v; want %q", h.Key, got, ok, want)
		}
	}
	if _, ok := v.Header("no such header"); ok {
		t.Errorf("Header of a missing name found one")
	}
	hs := v.Headers()
	if len(hs) != len(rec.Headers) {
		t.Fatalf("Headers has %d headers, want %d", len(hs), len(rec.Headers))
	}
	for i := range hs {
		if hs[i].Key != rec.Headers[i].Key || !bytes.Equal(hs[i].Value, rec.Headers[i].Value) ||
			(hs[i].Value == nil) != (rec.Headers[i].Value == nil) {
			t.Errorf("header %d = %q: %q, want %q: %q", i, hs[i].Key, hs[i].Value, rec.Headers[i].Key, rec.Headers[i].Value)
		}
	}
}

func TestViewVectors(t *testing.T) {
	editSetHeader := readVector(t, "results/edit_set_header.bin")
	var d decoder
	var v RecordView
	for _, name := range vectorNames(t, "records.txt") {
		t.Run(name, func(t *testing.T) {
			in := readVector(t, "records/"+name+".bin")
			var rec Record
			if err := d.decodeRecord(in, &rec); err != nil {
				t.Fatal(err)
			}
			if !v.reset(in, &d) {
				t.Fatal("reset refused the record")
			}
			checkView(t, &v, &rec)

			// Setting a header gives the vector's edit list, or with
			// edits off the vector's whole record; the getters see it.
			for _, edits := range []bool{true, false} {
				v.reset(in, &d)
				v.SetHeader("kpipe-stamp", []byte("sdk"))
				got, changed, err := v.appendResult(nil, edits)
				if err != nil || !changed {
					t.Fatalf("appendResult(edits %v) = %v, %v", edits, changed, err)
				}
				want := editSetHeader
				if !edits {
					want = readVector(t, "results/set_header/"+name+".bin")
				}
				if !bytes.Equal(got, want) {
					t.Errorf("appendResult(edits %v) = %x, want %x", edits, got, want)
				}
				if hv, _ := v.Header("kpipe-stamp"); string(hv) != "sdk" {
					t.Errorf("Header after SetHeader = %q", hv)
				}
				stamped := rec
				stamped.Headers = slices.Clone(rec.Headers)
				stamped.SetHeader("kpipe-stamp", []byte("sdk"))
				checkView(t, &v, &stamped)
			}

			// Every truncation, and a trailing byte, is refused, and
			// describe says why.
			for n := range len(in) {
				if v.reset(in[:n], &d) {
					t.Fatalf("reset accepted the first %d of %d bytes", n, len(in))
				}
				if d.describe(in[:n]) == nil {
					t.Fatalf("describe found nothing wrong with the first %d bytes", n)
				}
			}
			if v.reset(append(slices.Clip(in), 0), &d) {
				t.Fatal("reset accepted a trailing byte")
			}
		})
	}
}

// TestViewRefusesWhatDecodeRefuses checks reset against the decoder on
// records whose length fields are damaged one byte at a time.
func TestViewRefusesWhatDecodeRefuses(t *testing.T) {
	var d decoder
	var v RecordView
	for _, name := range []string{"full", "repeated_headers", "null_key", "tombstone"} {
		in := readVector(t, "records/"+name+".bin")
		for i := range in {
			for _, b := range []byte{0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff} {
				damaged := slices.Clone(in)
				damaged[i] = b
				var rec Record
				decodeOK := d.decodeRecord(damaged, &rec) == nil
				if ok := v.reset(damaged, &d); ok != decodeOK {
					t.Fatalf("%s with byte %d = %#x: reset %v, decodeRecord %v", name, i, b, ok, decodeOK)
				}
			}
		}
	}
}

// TestViewEdits checks the encoding of every edit and that the getters and
// the whole record (without edits) see the changes as a Record's setters
// would make them.
func TestViewEdits(t *testing.T) {
	le := binary.LittleEndian
	var d decoder
	var v RecordView
	if !v.reset(goldenBytes, &d) {
		t.Fatal("reset refused the golden record")
	}
	v.SetKey([]byte("K"))
	v.SetValue(nil)
	v.SetTopic("t2")
	v.ClearPartition()
	v.SetPartition(3)
	v.ClearTimestamp()
	v.SetTimestamp(-5)
	v.AddHeader("h", []byte("2"))
	v.SetHeader("n", []byte("x"))
	if !v.RemoveHeader("h") {
		t.Error("RemoveHeader(h) found none")
	}
	if v.RemoveHeader("missing") {
		t.Error("RemoveHeader(missing) found one")
	}
	var want []byte
	want = le.AppendUint32(want, editListFlag|10)
	want = append(want, editSetKey, 1, 0, 0, 0, 'K')
	want = append(want, editSetValue, 0xff, 0xff, 0xff, 0xff)
	want = append(want, editSetTopic, 2, 0, 0, 0, 't', '2')
	want = append(want, editClearPartition)
	want = append(want, editSetPartition, 3, 0, 0, 0)
	want = append(want, editClearTimestamp)
	want = le.AppendUint64(append(want, editSetTimestamp), uint64(0xffff_ffff_ffff_fffb))
	want = append(want, editAppendHeader, 1, 0, 0, 0, 'h', 1, 0, 0, 0, '2')
	want = append(want, editSetHeader, 1, 0, 0, 0, 'n', 1, 0, 0, 0, 'x')
	want = append(want, editRemoveHeader, 1, 0, 0, 0, 'h')
	got, changed, err := v.appendResult(nil, true)
	if err != nil || !changed || !bytes.Equal(got, want) {
		t.Fatalf("edit list = %x, %v, %v; want %x", got, changed, err, want)
	}

	rec := goldenRecord
	rec.Headers = slices.Clone(goldenRecord.Headers)
	rec.Key, rec.Value, rec.Topic = []byte("K"), nil, "t2"
	rec.SetPartition(3)
	rec.Timestamp, rec.HasTimestamp = -5, true
	rec.AddHeader("h", []byte("2"))
	rec.SetHeader("n", []byte("x"))
	rec.RemoveHeader("h")
	checkView(t, &v, &rec)
	whole, changed, err := v.appendResult(nil, false)
	wantWhole, _ := appendRecord(nil, &rec)
	if err != nil || !changed || !bytes.Equal(whole, wantWhole) {
		t.Fatalf("whole record = %x, %v, %v; want %x", whole, changed, err, wantWhole)
	}

	// A new record forgets the edits.
	v.reset(goldenBytes, &d)
	if _, changed, _ := v.appendResult(nil, true); changed {
		t.Error("a reset view has edits")
	}
	checkView(t, &v, &goldenRecord)
}

// TestViewInterceptor runs a ViewInterceptor through kpipe_on_send and
// kpipe_on_send_batch, with and without edits, and checks that a batch gives
// each record what a single call gives it.
func TestViewInterceptor(t *testing.T) {
	h := useFakeHost(t)
	stamp := []byte("sdk")
	vi := viewFunc(func(v *RecordView) (Action, error) {
		switch string(v.Key()) {
		case "drop":
			return Drop, nil
		case "same":
			v.SetHeader("ignored", nil)
			return Unchanged, nil
		}
		v.SetHeader("kpipe-stamp", stamp)
		return Changed, nil
	})
	names := vectorNames(t, "records.txt")
	for _, edits := range []bool{true, false} {
		rt := &runtime{viewInterceptor: vi}
		h.features = 0
		if edits {
			h.features = uint64(FeatureEdits)
		}
		rt.features = 0
		if code := rt.init(); code != statusOK {
			t.Fatalf("init = %d", code)
		}
		if got := rt.features&FeatureEdits != 0; got != edits {
			t.Fatalf("edits enabled: %v, want %v", got, edits)
		}
		var singles [][]byte
		var entries [][]byte
		for _, name := range names {
			in := readVector(t, "records/"+name+".bin")
			entries = append(entries, in)
			copy(rt.buffer(int32(len(in))), in)
			out, code := rt.onSend(int32(len(in)))
			if code != statusOK || len(out) == 0 {
				t.Fatalf("%s: onSend = %x, %d (%s)", name, out, code, h.errMsg)
			}
			want := readVector(t, "results/edit_set_header.bin")
			if !edits {
				want = readVector(t, "results/set_header/"+name+".bin")
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s: onSend (edits %v) = %x, want %x", name, edits, out, want)
			}
			singles = append(singles, slices.Clone(out))
		}
		// A dropped and an unchanged record, and one that does not decode.
		drop, _ := appendRecord(nil, &Record{Key: []byte("drop")})
		same, _ := appendRecord(nil, &Record{Key: []byte("same")})
		entries = append(entries, drop, same, []byte{1, 2, 3})
		in := batchInput(nil, entries...)
		copy(rt.buffer(int32(len(in))), in)
		results, code := rt.onSendBatch(int32(len(entries)), int32(len(in)))
		if code != statusOK {
			t.Fatalf("onSendBatch = %d (%s)", code, h.errMsg)
		}
		codes, outs := sendResults(t, rt, results, len(entries))
		for i := range names {
			if !bytes.Equal(outs[i], singles[i]) {
				t.Errorf("%s: batch result %x differs from the single call's %x", names[i], outs[i], singles[i])
			}
		}
		if n := len(names); codes[n] != statusDrop || codes[n+1] != statusOK || codes[n+2] != statusError {
			t.Errorf("drop, unchanged, malformed = %d, %d, %d", codes[n], codes[n+1], codes[n+2])
		}
		if want := "record of 3 bytes is shorter than its 16-byte fixed part"; !bytes.Contains([]byte(h.errMsg), []byte(want)) {
			t.Errorf("error message %q does not say %q", h.errMsg, want)
		}
	}
}

func TestViewBatchSteadyStateAllocs(t *testing.T) {
	h := useFakeHost(t)
	h.features = uint64(FeatureEdits)
	stamp := []byte("1")
	for _, tt := range []struct {
		name string
		vi   viewFunc
	}{
		{"unchanged", func(v *RecordView) (Action, error) { _ = v.Value(); return Unchanged, nil }},
		{"changed", func(v *RecordView) (Action, error) { v.SetHeader("extra", stamp); return Changed, nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := &runtime{viewInterceptor: tt.vi}
			if code := rt.init(); code != statusOK {
				t.Fatalf("init = %d", code)
			}
			in := batchInput(nil, goldenBytes, goldenBytes, goldenBytes)
			copy(rt.buffer(64*1024), in)
			call := func() {
				if _, code := rt.onSendBatch(3, int32(len(in))); code != statusOK {
					t.Fatalf("onSendBatch = %d", code)
				}
			}
			call()
			if allocs := testing.AllocsPerRun(100, call); allocs != 0 {
				t.Errorf("%v allocations per call, want 0", allocs)
			}
		})
	}
}

func TestNewRecordView(t *testing.T) {
	v, err := NewRecordView(&goldenRecord)
	if err != nil {
		t.Fatal(err)
	}
	checkView(t, v, &goldenRecord)
	v.SetHeader("h", []byte("w"))
	if hv, ok := v.Header("h"); !ok || string(hv) != "w" {
		t.Errorf("Header(h) after SetHeader = %q, %v", hv, ok)
	}
}
