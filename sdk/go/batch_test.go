package kpipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// batchInput encodes entries as a batch input: each entry is prefixed by the
// fixed prefix (without its size), then the u32 size of the entry.
func batchInput(prefixes [][]byte, entries ...[]byte) []byte {
	var b []byte
	for i, e := range entries {
		if prefixes != nil {
			b = append(b, prefixes[i]...)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// encode returns the encoding of r.
func encode(tb testing.TB, r Record) []byte {
	tb.Helper()
	b, err := appendRecord(nil, &r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// batchRuntime returns a runtime with p registered for every kind and in
// written to its input buffer.
func batchRuntime(p *funcPlugin, in []byte) (*runtime, int32) {
	rt := &runtime{interceptor: p, observer: p, serializer: p, partitioner: p}
	copy(rt.buffer(int32(max(len(in), 64*1024))), in)
	return rt, int32(len(in))
}

// sendResults splits the results of onSendBatch. Natively, addressOf is 0,
// so the slice of a changed record is its offset in the arena: the returned
// outs holds the bytes it names, and codes holds the other results.
func sendResults(t *testing.T, rt *runtime, results []byte, count int) (codes []int64, outs [][]byte) {
	t.Helper()
	if len(results) != 8*count {
		t.Fatalf("results of %d bytes for %d records, want %d", len(results), count, 8*count)
	}
	codes = make([]int64, count)
	outs = make([][]byte, count)
	for i := range count {
		r := int64(binary.LittleEndian.Uint64(results[8*i:]))
		if r <= 0 {
			codes[i] = r
			continue
		}
		off, n := r>>32, r&0xffffffff
		if off+n > int64(len(rt.arena)) {
			t.Fatalf("result %d names [%d, %d) of a %d-byte arena", i, off, off+n, len(rt.arena))
		}
		outs[i] = rt.arena[off : off+n]
	}
	return codes, outs
}

func TestCheckBatch(t *testing.T) {
	rec := goldenBytes
	two := batchInput(nil, rec, []byte{})
	tests := []struct {
		name   string
		in     []byte
		count  int32
		prefix int
		want   string // "" = valid
	}{
		{"one", batchInput(nil, rec), 1, sizePrefix, ""},
		{"empty entry last", two, 2, sizePrefix, ""},
		{"with partitions", batchInput([][]byte{{3, 0, 0, 0}}, rec), 1, partitionPrefix, ""},
		{"no entries", nil, 0, sizePrefix, "batch of 0 entries"},
		{"negative count", two, -1, sizePrefix, "batch of -1 entries"},
		{"count beyond len", two, 3, sizePrefix, "batch entry 2 at offset 62 needs 4 bytes, 0 left"},
		{"huge count", two, 1 << 30, sizePrefix, "cannot fit"},
		{"count short", two, 1, sizePrefix, "4 trailing bytes after 1 batch entries"},
		{"size overruns", append(binary.LittleEndian.AppendUint32(nil, 100), rec...), 1, sizePrefix, "needs 100 bytes"},
		{"size wraps", append(binary.LittleEndian.AppendUint32(nil, 0xffffffff), rec...), 1, sizePrefix, "needs 4294967295 bytes"},
		{"cut in the second size", two[:len(two)-2], 2, sizePrefix, "batch entry 1 at offset"},
		{"trailing byte", append(bytes.Clone(two), 0), 2, sizePrefix, "1 trailing bytes"},
		{"partition prefix cut", batchInput(nil, []byte{1, 2}), 1, partitionPrefix, "cannot fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBatch(tt.in, tt.count, tt.prefix)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkBatch = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkBatch = %v, want errMalformed containing %q", err, tt.want)
			}
		})
	}
}

// byKey is an OnSend that acts on the record's key, so that one batch can
// hold every case.
func byKey(r *Record) (Action, error) {
	switch string(r.Key) {
	case "unchanged":
		r.Topic = "ignored"
		return Unchanged, nil
	case "changed":
		r.Value = append(bytes.Clone(r.Value), '!')
		r.SetHeader("seen", []byte("yes"))
		r.ClearPartition()
		return Changed, nil
	case "drop":
		return Drop, nil
	case "error":
		return Changed, errors.New("refused")
	case "panic":
		var m map[string]int
		m["x"] = 1
	case "unknown":
		return Action(9), nil
	}
	return Unchanged, nil
}

// TestOnSendBatchMatchesOnSend runs a batch holding every outcome, and checks
// that each record's result is what kpipe_on_send gives for it alone.
func TestOnSendBatchMatchesOnSend(t *testing.T) {
	keys := []string{"unchanged", "changed", "error", "drop", "panic", "changed", "unknown", "malformed", "unchanged"}
	entries := make([][]byte, len(keys))
	for i, k := range keys {
		r := goldenRecord
		r.Key = []byte(k)
		r.Value = []byte(fmt.Sprintf("value %d", i))
		entries[i] = encode(t, r)
	}
	entries[7] = entries[7][:len(entries[7])-1] // truncated record

	h := useFakeHost(t)
	var seen []string
	p := &funcPlugin{onSend: func(r *Record) (Action, error) {
		seen = append(seen, string(r.Key))
		return byKey(r)
	}}
	in := batchInput(nil, entries...)
	rt, n := batchRuntime(p, in)
	results, code := rt.onSendBatch(int32(len(entries)), n)
	if code != statusOK {
		t.Fatalf("onSendBatch code = %d (%q), want 0", code, h.errMsg)
	}
	codes, outs := sendResults(t, rt, results, len(entries))
	batchErrors := h.errSets
	lastErr := h.errMsg
	wantSeen := slicesWithout(keys, "malformed")
	if !reflect.DeepEqual(seen, wantSeen) {
		t.Fatalf("OnSend saw keys %q, want %q", seen, wantSeen)
	}

	// Each record alone through the single-record hook.
	singleErrors := 0
	var msgs []string
	for i, e := range entries {
		h.errSets = 0
		rt1, n1 := batchRuntime(p, e)
		out, code := rt1.onSend(n1)
		if h.errSets > 0 {
			singleErrors++
			msgs = append(msgs, h.errMsg)
		}
		if code != codes[i] || !bytes.Equal(out, outs[i]) {
			t.Errorf("record %d (%s): batch gave (%d, % x), single (%d, % x)", i, keys[i], codes[i], outs[i], code, out)
		}
	}
	// The batch sets one message, which holds every single call's.
	if batchErrors != 1 || singleErrors != 4 || !strings.HasPrefix(lastErr, "4 of 9 records failed: ") {
		t.Errorf("batch: %d set_error calls, the last %q; single: %d; want 1 call saying 4 of 9 failed, and 4", batchErrors, lastErr, singleErrors)
	}
	for _, msg := range msgs {
		if !strings.Contains(lastErr, msg+" (1)") {
			t.Errorf("batch error %q does not hold %q", lastErr, msg)
		}
	}
	want := map[string]int64{"unchanged": statusOK, "drop": statusDrop, "error": statusError, "panic": statusError, "unknown": statusError, "malformed": statusError}
	for i, k := range keys {
		if k == "changed" {
			var got Record
			if err := (&decoder{}).decodeRecord(outs[i], &got); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if wantValue := fmt.Sprintf("value %d!", i); string(got.Value) != wantValue || got.HasPartition {
				t.Errorf("record %d came back as %+v, want value %q and no partition", i, got, wantValue)
			}
			continue
		}
		if codes[i] != want[k] {
			t.Errorf("record %d (%s) = %d, want %d", i, k, codes[i], want[k])
		}
	}
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, v := range s {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

func TestOnSendBatchAllUnchanged(t *testing.T) {
	h := useFakeHost(t)
	calls := 0
	p := &funcPlugin{onSend: func(r *Record) (Action, error) { calls++; return Unchanged, nil }}
	rt, n := batchRuntime(p, batchInput(nil, goldenBytes, goldenBytes, goldenBytes))
	results, code := rt.onSendBatch(3, n)
	if results != nil || code != statusOK || calls != 3 || h.errSets != 0 {
		t.Fatalf("onSendBatch = (% x, %d) after %d calls, %d errors; want (nil, 0) after 3 and none", results, code, calls, h.errSets)
	}
}

// TestOnSendBatchArena changes records large enough to make the arena grow
// several times during one call: every record must still come back intact.
func TestOnSendBatchArena(t *testing.T) {
	useFakeHost(t)
	const count = 50
	p := &funcPlugin{onSend: func(r *Record) (Action, error) {
		r.Value = bytes.Repeat(r.Key, 1000)
		return Changed, nil
	}}
	entries := make([][]byte, count)
	for i := range entries {
		entries[i] = encode(t, Record{Topic: "t", Key: []byte{byte('a' + i%26), byte(i)}})
	}
	rt, n := batchRuntime(p, batchInput(nil, entries...))
	for call := range 2 { // the second call reuses the arena
		results, code := rt.onSendBatch(count, n)
		if code != statusOK {
			t.Fatalf("call %d: code %d", call, code)
		}
		_, outs := sendResults(t, rt, results, count)
		for i, out := range outs {
			want := encode(t, Record{Topic: "t", Key: []byte{byte('a' + i%26), byte(i)}, Value: bytes.Repeat([]byte{byte('a' + i%26), byte(i)}, 1000)})
			if !bytes.Equal(out, want) {
				t.Fatalf("call %d: record %d came back as %d bytes, want %d", call, i, len(out), len(want))
			}
		}
	}
}

// TestBatchMalformed checks that a batch whose framing does not match its
// length fails as a whole, with a message, without calling the plugin.
func TestBatchMalformed(t *testing.T) {
	p := &funcPlugin{
		onSend:    func(*Record) (Action, error) { t.Error("OnSend called"); return 0, nil },
		onAck:     func(*Record, Ack) error { t.Error("OnAck called"); return nil },
		partition: func(*Record, int32) (int32, error) { t.Error("Partition called"); return 0, nil },
	}
	good := batchInput(nil, goldenBytes, goldenBytes)
	overrun := bytes.Clone(good)
	binary.LittleEndian.PutUint32(overrun[4+len(goldenBytes):], uint32(len(goldenBytes)+1))
	goodPart := batchInput([][]byte{{3, 0, 0, 0}, {3, 0, 0, 0}}, goldenBytes, goldenBytes)
	partOverrun := bytes.Clone(goodPart)
	binary.LittleEndian.PutUint32(partOverrun[12+len(goldenBytes):], 0x7fffffff)
	tests := []struct {
		name  string
		in    []byte
		hook  string
		count int32
		n     int32 // -1 = len(in)
		want  string
	}{
		{"send size overruns len", overrun, "send", 2, -1, "batch entry 1 at offset"},
		{"send count too large", good, "send", 3, -1, "needs 4 bytes, 0 left"},
		{"send count zero", good, "send", 0, -1, "batch of 0 entries"},
		{"send len short", good, "send", 2, int32(len(good) - 1), "batch entry 1 at offset 62 needs 54 bytes, 53 left"},
		{"send len beyond buffer", good, "send", 2, 1 << 20, "does not fit"},
		{"send len negative", good, "send", 1, -2, "does not fit"},
		{"send trailing", good, "send", 1, -1, "trailing bytes after 1 batch entries"},
		{"ack size overruns len", overrun, "ack", 2, -1, "batch entry 1 at offset"},
		{"ack count negative", good, "ack", -5, -1, "batch of -5 entries"},
		{"partition size overruns len", partOverrun, "partition", 2, -1, "needs 2147483647 bytes"},
		{"partition read as send", goodPart, "send", 2, -1, "malformed"},
		{"send read as partition", good, "partition", 2, -1, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			rt, n := batchRuntime(p, tt.in)
			if tt.n != -1 {
				n = tt.n
			}
			var code int64
			var results []byte
			switch tt.hook {
			case "send":
				results, code = rt.onSendBatch(tt.count, n)
			case "ack":
				code = rt.onAckBatch(tt.count, n)
			case "partition":
				results, code = rt.partitionBatch(tt.count, n)
			}
			if code != statusError || results != nil || !strings.Contains(h.errMsg, tt.want) {
				t.Fatalf("code %d, results % x, set_error(%q); want %d, none, and a message containing %q", code, results, h.errMsg, statusError, tt.want)
			}
		})
	}
}

func TestBatchUnregisteredKind(t *testing.T) {
	h := useFakeHost(t)
	rt := &runtime{serializer: &funcPlugin{}}
	copy(rt.buffer(1024), batchInput(nil, goldenBytes))
	n := int32(4 + len(goldenBytes))
	if res, code := rt.onSendBatch(1, n); res != nil || code != statusError || !strings.Contains(h.errMsg, "no interceptor") {
		t.Errorf("onSendBatch without interceptor: (% x, %d), error %q", res, code, h.errMsg)
	}
	if code := rt.onAckBatch(1, n); code != statusError || !strings.Contains(h.errMsg, "kpipe_on_ack_batch called, but no interceptor") {
		t.Errorf("onAckBatch without interceptor: %d, error %q", code, h.errMsg)
	}
	if res, code := rt.partitionBatch(1, n); res != nil || code != statusError || !strings.Contains(h.errMsg, "no partitioner") {
		t.Errorf("partitionBatch without partitioner: (% x, %d), error %q", res, code, h.errMsg)
	}
}

func TestPartitionBatch(t *testing.T) {
	// Partition returns what the key says: a number, "default", "error",
	// "panic"; every record's partition count is checked against its own.
	h := useFakeHost(t)
	var seenCounts []int32
	p := &funcPlugin{partition: func(r *Record, n int32) (int32, error) {
		seenCounts = append(seenCounts, n)
		switch k := string(r.Key); k {
		case "default":
			return DefaultPartition, nil
		case "error":
			return 0, errors.New("no partition for you")
		case "panic":
			panic("boom")
		default:
			var p int32
			fmt.Sscan(k, &p)
			return p, nil
		}
	}}
	type entry struct {
		key  string
		n    int32
		want int32
	}
	entries := []entry{
		{"0", 3, 0},
		{"2", 3, 2},
		{"default", 3, int32(statusDefaultPartition)},
		{"3", 3, int32(statusError)}, // out of range
		{"-7", 10, int32(statusError)},
		{"error", 1, int32(statusError)},
		{"panic", 5, int32(statusError)},
		{"4", 0, int32(statusError)}, // no partitions: Partition is not called
		{"9", 10, 9},
		{"malformed", 10, int32(statusError)},
	}
	var prefixes, recs [][]byte
	var wantCounts []int32
	for _, e := range entries {
		prefixes = append(prefixes, binary.LittleEndian.AppendUint32(nil, uint32(e.n)))
		rec := encode(t, Record{Topic: "t", Key: []byte(e.key)})
		if e.key == "malformed" {
			rec = rec[:10]
		} else if e.n > 0 {
			wantCounts = append(wantCounts, e.n)
		}
		recs = append(recs, rec)
	}
	rt, n := batchRuntime(p, batchInput(prefixes, recs...))
	results, code := rt.partitionBatch(int32(len(entries)), n)
	if code != statusOK || len(results) != 4*len(entries) {
		t.Fatalf("partitionBatch = (%d bytes, %d), want (%d bytes, 0)", len(results), code, 4*len(entries))
	}
	for i, e := range entries {
		if got := int32(binary.LittleEndian.Uint32(results[4*i:])); got != e.want {
			t.Errorf("record %d (%s of %d) = %d, want %d", i, e.key, e.n, got, e.want)
		}
	}
	if !reflect.DeepEqual(seenCounts, wantCounts) {
		t.Errorf("Partition saw counts %v, want %v", seenCounts, wantCounts)
	}
	want := "6 of 10 records failed: partition 3 out of range [0, 3) (1); partition -7 out of range [0, 10) (1); no partition for you (1); panic in Partition: boom (1); 2 more with other messages"
	if h.errSets != 1 || h.errMsg != want {
		t.Errorf("%d set_error calls, the last %q; want 1, %q", h.errSets, h.errMsg, want)
	}
}

// ackEntry returns the encoding of an acknowledgement of a record with key.
func ackEntry(t testing.TB, offset int64, errText, key string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(offset))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(errText)))
	b = append(b, errText...)
	return append(b, encode(t, Record{Topic: "t", Key: []byte(key), Partition: 1, HasPartition: true})...)
}

func TestOnAckBatch(t *testing.T) {
	type got struct {
		key string
		ack Ack
	}
	tests := []struct {
		name    string
		entries [][]byte
		want    []got
		code    int64
		errMsg  string
	}{
		{
			name:    "all delivered",
			entries: [][]byte{ackEntry(t, 5, "", "a"), ackEntry(t, 6, "", "b")},
			want:    []got{{"a", Ack{Offset: 5}}, {"b", Ack{Offset: 6}}},
			code:    statusOK,
		},
		{
			name:    "one alone fails",
			entries: [][]byte{ackEntry(t, 1, "", "error")},
			want:    []got{{"error", Ack{Offset: 1}}},
			code:    statusError,
			errMsg:  "failed on error",
		},
		{
			name: "failures do not stop the others",
			entries: [][]byte{
				ackEntry(t, 1, "", "a"), ackEntry(t, -1, "timed out", "error"), ackEntry(t, 3, "", "panic"),
				ackEntry(t, 4, "", "b")[:20], ackEntry(t, 5, "", "c"),
			},
			want:   []got{{"a", Ack{Offset: 1}}, {"error", Ack{Offset: -1, Error: "timed out"}}, {"panic", Ack{Offset: 3}}, {"c", Ack{Offset: 5}}},
			code:   statusError,
			errMsg: "3 of 5 acknowledgements failed: failed on error (1); panic in OnAck: boom (1); kpipe: malformed input: record of 8 bytes is shorter than its 16-byte fixed part (in the record after byte 12) (1)",
		},
		{
			name:    "all fail alike",
			entries: [][]byte{ackEntry(t, 3, "", "error"), ackEntry(t, 4, "", "error")},
			want:    []got{{"error", Ack{Offset: 3}}, {"error", Ack{Offset: 4}}},
			code:    statusError,
			errMsg:  "failed on error",
		},
		{
			name:    "first failure is a panic",
			entries: [][]byte{ackEntry(t, 3, "", "panic"), ackEntry(t, 4, "", "a")},
			want:    []got{{"panic", Ack{Offset: 3}}, {"a", Ack{Offset: 4}}},
			code:    statusError,
			errMsg:  "1 of 2 acknowledgements failed: panic in OnAck: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			var seen []got
			p := &funcPlugin{onAck: func(r *Record, a Ack) error {
				seen = append(seen, got{string(r.Key), a})
				switch string(r.Key) {
				case "error":
					return errors.New("failed on error")
				case "panic":
					panic("boom")
				}
				return nil
			}}
			rt, n := batchRuntime(p, batchInput(nil, tt.entries...))
			code := rt.onAckBatch(int32(len(tt.entries)), n)
			if code != tt.code || h.errMsg != tt.errMsg {
				t.Errorf("onAckBatch = %d, set_error(%q); want %d, %q", code, h.errMsg, tt.code, tt.errMsg)
			}
			if tt.code == statusError && h.errSets != 1 {
				t.Errorf("%d set_error calls, want 1", h.errSets)
			}
			if !reflect.DeepEqual(seen, tt.want) {
				t.Errorf("OnAck saw %+v, want %+v", seen, tt.want)
			}
		})
	}
}

// TestBatchSteadyStateAllocs checks that batch hooks reuse their results
// array, arena and decoder once they have seen a batch of the same size.
func TestBatchSteadyStateAllocs(t *testing.T) {
	useFakeHost(t)
	extra := []byte("1")
	ack := ackEntry(t, 1, "", "k")
	changed := &funcPlugin{onSend: func(r *Record) (Action, error) { r.SetHeader("extra", extra); return Changed, nil }}
	tests := []struct {
		name string
		p    *funcPlugin
		in   []byte
		call func(rt *runtime, n int32) int64
	}{
		{"on_send unchanged", &funcPlugin{onSend: func(*Record) (Action, error) { return Unchanged, nil }},
			batchInput(nil, goldenBytes, goldenBytes, goldenBytes), func(rt *runtime, n int32) int64 {
				_, code := rt.onSendBatch(3, n)
				return code
			}},
		{"on_send changed", changed, batchInput(nil, goldenBytes, goldenBytes, goldenBytes), func(rt *runtime, n int32) int64 {
			_, code := rt.onSendBatch(3, n)
			return code
		}},
		{"partition", &funcPlugin{partition: func(*Record, int32) (int32, error) { return 1, nil }},
			batchInput([][]byte{{4, 0, 0, 0}, {4, 0, 0, 0}}, goldenBytes, goldenBytes), func(rt *runtime, n int32) int64 {
				_, code := rt.partitionBatch(2, n)
				return code
			}},
		{"on_ack", &funcPlugin{onAck: func(*Record, Ack) error { return nil }},
			batchInput(nil, ack, ack, ack), func(rt *runtime, n int32) int64 { return rt.onAckBatch(3, n) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, n := batchRuntime(tt.p, tt.in)
			if code := tt.call(rt, n); code != statusOK {
				t.Fatalf("first call = %d", code)
			}
			allocs := testing.AllocsPerRun(100, func() {
				copy(rt.in, tt.in)
				if code := tt.call(rt, n); code != statusOK {
					t.Fatalf("call = %d", code)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per call, want 0", allocs)
			}
		})
	}
}

// TestBatchPanicsResume checks that the batch loops go on after a panic
// wherever it happens: first, last, or several in a row.
func TestBatchPanicsResume(t *testing.T) {
	for _, pattern := range []string{"p", "pp", "p.", ".p", "pp.", ".pp", "p.p", "..p..p", "p.pp.p"} {
		t.Run(pattern, func(t *testing.T) {
			h := useFakeHost(t)
			var acks []string
			p := &funcPlugin{
				onSend: func(r *Record) (Action, error) {
					if r.Key[0] == 'p' {
						panic("send")
					}
					r.Value = r.Key
					return Changed, nil
				},
				partition: func(r *Record, n int32) (int32, error) {
					if r.Key[0] == 'p' {
						panic("partition")
					}
					return int32(len(r.Key)) % n, nil
				},
				onAck: func(r *Record, _ Ack) error {
					acks = append(acks, string(r.Key))
					if r.Key[0] == 'p' {
						panic("ack")
					}
					return nil
				},
			}
			var entries, prefixes [][]byte
			for i := range pattern {
				entries = append(entries, encode(t, Record{Topic: "t", Key: []byte(pattern[i:])}))
				prefixes = append(prefixes, []byte{100, 0, 0, 0})
			}
			count := int32(len(pattern))

			rt, n := batchRuntime(p, batchInput(nil, entries...))
			results, code := rt.onSendBatch(count, n)
			if code != statusOK {
				t.Fatalf("onSendBatch code %d", code)
			}
			codes, outs := sendResults(t, rt, results, len(pattern))
			for i := range pattern {
				key := pattern[i:]
				if key[0] == 'p' {
					if codes[i] != statusError || outs[i] != nil {
						t.Errorf("on_send record %d = %d, want %d", i, codes[i], statusError)
					}
					continue
				}
				if want := encode(t, Record{Topic: "t", Key: []byte(key), Value: []byte(key)}); !bytes.Equal(outs[i], want) {
					t.Errorf("on_send record %d = (%d, % x), want % x", i, codes[i], outs[i], want)
				}
			}

			rt, n = batchRuntime(p, batchInput(prefixes, entries...))
			results, code = rt.partitionBatch(count, n)
			if code != statusOK {
				t.Fatalf("partitionBatch code %d", code)
			}
			for i := range pattern {
				want := int32(len(pattern) - i)
				if pattern[i] == 'p' {
					want = int32(statusError)
				}
				if got := int32(binary.LittleEndian.Uint32(results[4*i:])); got != want {
					t.Errorf("partition record %d = %d, want %d", i, got, want)
				}
			}

			var ackEntries [][]byte
			var wantAcks []string
			for i := range pattern {
				ackEntries = append(ackEntries, ackEntry(t, int64(i), "", pattern[i:]))
				wantAcks = append(wantAcks, pattern[i:])
			}
			rt, n = batchRuntime(p, batchInput(nil, ackEntries...))
			if code := rt.onAckBatch(count, n); code != statusError || !strings.Contains(h.errMsg, "panic in OnAck: ack") {
				t.Errorf("onAckBatch = %d (%q), want %d and the panic", code, h.errMsg, statusError)
			}
			if !reflect.DeepEqual(acks, wantAcks) {
				t.Errorf("OnAck saw %q, want %q", acks, wantAcks)
			}
		})
	}
}

func TestBatchFailuresMessage(t *testing.T) {
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name string
		errs []string
		want string
	}{
		{"one", []string{"bad"}, "bad"},
		{"all alike", []string{"bad", "bad", "bad"}, "bad"},
		{"two kinds", []string{"bad", "worse", "bad"}, "3 of 10 records failed: bad (2); worse (1)"},
		{"too many kinds", []string{"a", "b", "c", "d", "e", "a", "f"}, "7 of 10 records failed: a (2); b (1); c (1); d (1); 2 more with other messages"},
		{"long messages", []string{long, long + "y", long + "z"}, "3 of 10 records failed: " + long + " (1); " + long + "y (1)"},
	}
	var f batchFailures
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.reset() // reused, as in the runtime
			for _, e := range tt.errs {
				f.add(errors.New(e))
			}
			if got := f.message("records", 10); got != tt.want {
				t.Fatalf("message = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBatchSetsOneError checks that a batch whose records all fail alike
// calls set_error once, with the message a single call would give.
func TestBatchSetsOneError(t *testing.T) {
	h := useFakeHost(t)
	p := &funcPlugin{
		onSend:    func(*Record) (Action, error) { return Unchanged, errors.New("no") },
		partition: func(*Record, int32) (int32, error) { return 0, errors.New("no") },
	}
	rt, n := batchRuntime(p, batchInput(nil, goldenBytes, goldenBytes, goldenBytes))
	results, code := rt.onSendBatch(3, n)
	codes, _ := sendResults(t, rt, results, 3)
	if code != statusOK || !reflect.DeepEqual(codes, []int64{statusError, statusError, statusError}) || h.errSets != 1 || h.errMsg != "no" {
		t.Fatalf("onSendBatch = %d, %v with %d set_error calls, the last %q; want 0, all -2, 1 call \"no\"", code, codes, h.errSets, h.errMsg)
	}
}

// panicky is an error whose Error method panics.
type panicky struct{}

func (panicky) Error() string { panic("Error panicked") }

// TestBatchErrorMethodPanics checks that an error whose Error method panics
// fails its record alone, and is counted once.
func TestBatchErrorMethodPanics(t *testing.T) {
	h := useFakeHost(t)
	p := &funcPlugin{onSend: func(r *Record) (Action, error) {
		if r.Key[0] == 'x' {
			return Unchanged, panicky{}
		}
		return Drop, nil
	}}
	rt, n := batchRuntime(p, batchInput(nil, encode(t, Record{Key: []byte("a")}), encode(t, Record{Key: []byte("x")}), encode(t, Record{Key: []byte("b")})))
	results, code := rt.onSendBatch(3, n)
	codes, _ := sendResults(t, rt, results, 3)
	if code != statusOK || !reflect.DeepEqual(codes, []int64{statusDrop, statusError, statusDrop}) || h.errMsg != "panic in OnSend: Error panicked" {
		t.Fatalf("onSendBatch = %d, %v, set_error(%q)", code, codes, h.errMsg)
	}
	if rt.failures.n != 1 {
		t.Fatalf("%d failures counted, want 1", rt.failures.n)
	}
}

// FuzzBatch feeds arbitrary inputs and counts to the three batch hooks,
// with a plugin that never fails: the SDK itself must never panic (its
// recovery would hide that as KPIPE_ERROR), a call fails as a whole exactly
// when checkBatch refuses the input, and results have their documented size.
func FuzzBatch(f *testing.F) {
	f.Add(batchInput(nil, goldenBytes, goldenBytes), int32(2))
	f.Add(batchInput([][]byte{{3, 0, 0, 0}}, goldenBytes), int32(1))
	f.Add(batchInput(nil, ackEntry(f, 1, "e", "k")), int32(1))
	f.Add([]byte{}, int32(0))
	p := &funcPlugin{
		onSend: func(r *Record) (Action, error) {
			if len(r.Key) > 0 && r.Key[0]&1 == 1 {
				r.AddHeader("x", r.Key)
				return Changed, nil
			}
			return Unchanged, nil
		},
		onAck:     func(*Record, Ack) error { return nil },
		partition: func(_ *Record, n int32) (int32, error) { return n - 1, nil },
	}
	f.Fuzz(func(t *testing.T, in []byte, count int32) {
		h := useFakeHost(t)
		rt, n := batchRuntime(p, in)
		check := func(hook string, code int64, prefix int) {
			t.Helper()
			if strings.Contains(h.errMsg, "panic") {
				t.Fatalf("%s: the SDK panicked: %s", hook, h.errMsg)
			}
			framingErr := checkBatch(in, count, prefix)
			if (code == statusError) != (framingErr != nil) {
				t.Fatalf("%s = %d, but checkBatch says %v", hook, code, framingErr)
			}
		}
		h.errMsg = ""
		results, code := rt.onSendBatch(count, n)
		check("onSendBatch", code, sizePrefix)
		if len(results) != 0 && len(results) != 8*int(count) {
			t.Fatalf("onSendBatch gave %d bytes of results for %d records", len(results), count)
		}
		if results != nil {
			sendResults(t, rt, results, int(count)) // the changed records are in the arena
		}
		h.errMsg = ""
		copy(rt.in, in) // a plugin may have changed the input in place
		results, code = rt.partitionBatch(count, n)
		check("partitionBatch", code, partitionPrefix)
		if code == statusOK && len(results) != 4*int(count) {
			t.Fatalf("partitionBatch gave %d bytes of results for %d records", len(results), count)
		}
		h.errMsg = ""
		copy(rt.in, in)
		code = rt.onAckBatch(count, n)
		if code == statusError && checkBatch(in, count, sizePrefix) == nil && !strings.Contains(h.errMsg, "malformed") {
			t.Fatalf("onAckBatch failed on well-framed input with %q", h.errMsg)
		}
		if strings.Contains(h.errMsg, "panic") {
			t.Fatalf("onAckBatch: the SDK panicked: %s", h.errMsg)
		}
	})
}
