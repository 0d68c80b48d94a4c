package pipeline

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of the buckets of
// PluginStats.Latency, from 1µs to 1s; the last bucket of Latency counts
// what is slower than all of them.
var LatencyBuckets = [NumLatencyBuckets - 1]time.Duration{
	1 * time.Microsecond, 2500 * time.Nanosecond, 5 * time.Microsecond,
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	1 * time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second,
}

// NumLatencyBuckets is the length of PluginStats.Latency.
const NumLatencyBuckets = 20

// latencyHist counts sampled call durations per bucket of LatencyBuckets.
// Only sampled calls reach it (see sampleEvery), so it costs nothing on the
// other 63 of 64 calls.
type latencyHist [NumLatencyBuckets]atomic.Uint64

// observe counts n records that each took d.
func (h *latencyHist) observe(d time.Duration, n uint64) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h[i].Add(n)
}

func (h *latencyHist) snapshot() (s [NumLatencyBuckets]uint64) {
	for i := range h {
		s[i] = h[i].Load()
	}
	return s
}
