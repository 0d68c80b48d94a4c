package gateway

import "testing"

// TestProducerStatesBounded: batches under ever new producer ids (which a
// client chooses freely) keep at most producers.max states, where they
// used to keep one per id for producerStateIdle; the newest state still
// deduplicates a retry of its batch.
func TestProducerStatesBounded(t *testing.T) {
	ps := newProducers()
	ps.max = 100
	var last seqKey
	for pid := range int64(10_000) {
		last = seqKey{pid: pid, topic: "t", partition: 0}
		if v, _, _ := ps.check(last, 0, 0, 1, failedResult(codeNone, "")); v != sendAll {
			t.Fatalf("producer %d: verdict %d, want sendAll", pid, v)
		}
	}
	if n := len(ps.states); n > ps.max {
		t.Fatalf("%d producer states kept, want at most %d", n, ps.max)
	}
	if v, _, _ := ps.check(last, 0, 0, 1, failedResult(codeNone, "")); v != answered {
		t.Fatalf("retry of the newest producer's batch: verdict %d, want answered", v)
	}
}
