package kpipe

import "testing"

func BenchmarkOnSendUnchanged(b *testing.B) {
	h := &fakeHost{}
	old := host
	host = h
	b.Cleanup(func() { host = old })
	rt, n := newRuntime(nil, &funcPlugin{onSend: func(*Record) (Action, error) { return Unchanged, nil }})
	b.ReportAllocs()
	for b.Loop() {
		if _, code := rt.onSend(n); code != statusOK {
			b.Fatal(code)
		}
	}
}

// BenchmarkOnSendBatch runs kpipe_on_send_batch on 64 copies of the golden
// record, and reports the cost per record.
func BenchmarkOnSendBatch(b *testing.B) {
	const count = 64
	entries := make([][]byte, count)
	for i := range entries {
		entries[i] = goldenBytes
	}
	in := batchInput(nil, entries...)
	extra := []byte("1")
	for _, bb := range []struct {
		name string
		fn   func(*Record) (Action, error)
	}{
		{"unchanged", func(*Record) (Action, error) { return Unchanged, nil }},
		{"changed", func(r *Record) (Action, error) { r.SetHeader("extra", extra); return Changed, nil }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			h := &fakeHost{}
			old := host
			host = h
			b.Cleanup(func() { host = old })
			rt, n := batchRuntime(&funcPlugin{onSend: bb.fn}, in)
			b.ReportAllocs()
			for b.Loop() {
				if _, code := rt.onSendBatch(count, n); code != statusOK {
					b.Fatal(code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/record")
		})
	}
}
