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
