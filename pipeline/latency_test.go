package pipeline

import (
	"testing"
	"time"
)

func TestLatencyHist(t *testing.T) {
	var h hookStats
	h.latency.observe(0, 1)                  // bucket 0 (≤1µs)
	h.latency.observe(time.Microsecond, 1)   // bucket 0: bounds are inclusive
	h.latency.observe(3*time.Microsecond, 2) // bucket 2 (≤5µs), two records
	h.latency.observe(time.Millisecond, 1)   // bucket 9 (≤1ms)
	h.latency.observe(2*time.Second, 1)      // beyond the last bound
	s := h.snapshot("p", 0, HookPartition).Latency
	want := map[int]uint64{0: 2, 2: 2, 9: 1, NumLatencyBuckets - 1: 1}
	for i, n := range s {
		if n != want[i] {
			t.Errorf("bucket %d: %d, want %d (all %v)", i, n, want[i], s)
		}
	}
}

// TestHookStatsSampling checks that sampled calls reach the histogram, Sampled
// and SampledTime, and that a batch call counts one record per entry.
func TestHookStatsSampling(t *testing.T) {
	var h hookStats
	t0 := h.startN(1) // call 1 is sampled
	if t0.IsZero() {
		t.Fatal("the first call was not sampled")
	}
	h.endN(t0.Add(-3*time.Millisecond), 1)
	t1 := h.startN(64) // calls 2..65: 65 is sampled
	if t1.IsZero() {
		t.Fatal("a batch that holds call 65 was not sampled")
	}
	h.endN(t1, 64)
	s := h.snapshot("p", 0, HookPartition)
	if s.Calls != 65 || s.Sampled != 65 {
		t.Errorf("calls %d, sampled %d; want 65 and 65", s.Calls, s.Sampled)
	}
	var n uint64
	for _, c := range s.Latency {
		n += c
	}
	if n != s.Sampled {
		t.Errorf("histogram holds %d records, want Sampled = %d", n, s.Sampled)
	}
	if s.Latency[11] != 1 { // 3ms: ≤5ms
		t.Errorf("the 3ms call is not in the ≤5ms bucket: %v", s.Latency)
	}
	if s.SampledTime < 3*time.Millisecond || s.MeanLatency != s.SampledTime/65 {
		t.Errorf("SampledTime %v, MeanLatency %v", s.SampledTime, s.MeanLatency)
	}
}
