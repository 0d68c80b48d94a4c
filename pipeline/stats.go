package pipeline

import (
	"sync/atomic"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// Hook names a plugin call site in Stats and in logs.
type Hook string

// The hooks.
const (
	HookOnSend         Hook = "on_send"
	HookOnAck          Hook = "on_ack"
	HookSerializeKey   Hook = "serialize_key"
	HookSerializeValue Hook = "serialize_value"
	HookPartition      Hook = "partition"
)

// Stats is a snapshot of a Producer's counters, from Producer.Stats.
type Stats struct {
	// Delivered, Filtered and Failed count records by outcome.
	Delivered, Filtered, Failed uint64
	// InFlight is the number of records sent whose outcome is not known
	// yet.
	InFlight int64
	// Plugins has one entry per plugin and hook, in pipeline order:
	// interceptors (on_send, on_ack; no on_ack entry for an interceptor
	// that wants no acknowledgements, see plugins.AckObserver), key
	// serializer, value serializer, then one entry per name of every
	// partitioner that has been in use.
	Plugins []PluginStats
}

// PluginStats counts the calls of one plugin at one hook.
type PluginStats struct {
	// Name is the name the plugin was given in its option.
	Name string
	// Kind is the plugin kind.
	Kind plugins.Kind
	// Hook is the call site.
	Hook Hook
	// Calls is how many times the plugin was called at this hook.
	Calls uint64
	// Failures counts calls that returned an error, panicked, or (for a
	// partitioner) returned a partition out of range.
	Failures uint64
	// Bypasses counts calls skipped because the plugin's circuit breaker
	// was open.
	Bypasses uint64
	// Drops counts records an interceptor filtered out (on_send only).
	Drops uint64
	// MeanLatency is the mean duration of a call, measured on one call in
	// 64 (the 1st, the 65th, ...): reading the clock is not free. A batch
	// call (see StageBatch) counts as one call per record in Calls, and
	// its duration is shared by its records: MeanLatency is then the cost
	// per record.
	MeanLatency time.Duration
	// Sampled is the number of records whose call duration was measured,
	// SampledTime the sum of those durations, and Latency their
	// histogram: Latency[i] counts the records that took at most
	// LatencyBuckets[i] and more than the bucket before; the last entry
	// counts those slower than every bucket. A batch call's records each
	// count its duration divided by their number.
	Sampled     uint64
	SampledTime time.Duration
	Latency     [NumLatencyBuckets]uint64
}

// sampleEvery is how often a call's duration is measured: reading the clock
// twice can cost more than a native plugin call (50-150ns on virtual
// machines), so measuring every call would double the cost of the cheapest
// plugins.
const sampleEvery = 64

// hookStats are the counters of one plugin at one hook. Send goroutines
// update those of on_send, serializers and partitioners, the completion
// goroutine those of on_ack: they are padded on both sides so that no
// other field, such as a circuit breaker the other goroutine reads on every
// record, shares their cache lines.
type hookStats struct {
	_                                cacheLinePad
	calls, failures, bypasses, drops atomic.Uint64
	sampled                          atomic.Uint64
	sampledNanos                     atomic.Int64
	lastLog                          atomic.Int64
	latency                          latencyHist
	_                                cacheLinePad
}

// start counts a call and returns its start time if this call is sampled,
// or the zero time.
func (h *hookStats) start() time.Time {
	if h.calls.Add(1)%sampleEvery == 1 {
		return time.Now()
	}
	return time.Time{}
}

func (h *hookStats) end(t time.Time) {
	if !t.IsZero() {
		d := time.Since(t)
		h.sampledNanos.Add(int64(d))
		h.sampled.Add(1)
		h.latency.observe(d, 1)
	}
}

// startN counts a call that serves n records as n calls, and returns its
// start time if one of them is sampled (the same calls start samples), or
// the zero time.
func (h *hookStats) startN(n int) time.Time {
	c := h.calls.Add(uint64(n))
	// Calls 1, 65, 129, ... are sampled: how many there are up to c is
	// (c+63)/64.
	if (c+sampleEvery-1)/sampleEvery != (c-uint64(n)+sampleEvery-1)/sampleEvery {
		return time.Now()
	}
	return time.Time{}
}

// endN records the duration of a call sampled by startN, shared by its n
// records.
func (h *hookStats) endN(t time.Time, n int) {
	if !t.IsZero() {
		d := time.Since(t)
		h.sampledNanos.Add(int64(d))
		h.sampled.Add(uint64(n))
		h.latency.observe(d/time.Duration(n), uint64(n))
	}
}

// shouldLog rate-limits failure logs to one per hook per second.
func (h *hookStats) shouldLog() bool {
	now := time.Now().UnixNano()
	last := h.lastLog.Load()
	return now-last >= int64(time.Second) && h.lastLog.CompareAndSwap(last, now)
}

func (h *hookStats) snapshot(name string, kind plugins.Kind, hook Hook) PluginStats {
	s := PluginStats{
		Name: name, Kind: kind, Hook: hook,
		Calls: h.calls.Load(), Failures: h.failures.Load(),
		Bypasses: h.bypasses.Load(), Drops: h.drops.Load(),
	}
	s.Sampled, s.SampledTime = h.sampled.Load(), time.Duration(h.sampledNanos.Load())
	if s.Sampled > 0 {
		s.MeanLatency = s.SampledTime / time.Duration(s.Sampled)
	}
	s.Latency = h.latency.snapshot()
	return s
}

// breaker is a plugin's circuit breaker; see CircuitBreaker.
type breaker struct {
	threshold int32
	cooldown  int64
	fails     atomic.Int32
	streak    atomic.Int32 // trips since the last success
	openUntil atomic.Int64 // unix nanos; 0 when closed
}

const maxCooldownFactor = 16

// allow reports whether the plugin may be called now.
func (b *breaker) allow() bool {
	u := b.openUntil.Load()
	return u == 0 || time.Now().UnixNano() >= u
}

func (b *breaker) success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
		b.streak.Store(0)
	}
}

// failure records a failure and returns the cool-down if it opened the
// breaker, or 0.
func (b *breaker) failure() time.Duration {
	if b.threshold <= 0 {
		return 0
	}
	// A failure of the trial call after a cool-down re-opens at once.
	if b.openUntil.Load() == 0 && b.fails.Add(1) < b.threshold {
		return 0
	}
	b.fails.Store(0)
	streak := b.streak.Add(1)
	factor := int64(1) << min(streak-1, 4)
	d := b.cooldown * min(factor, maxCooldownFactor)
	b.openUntil.Store(time.Now().UnixNano() + d)
	return time.Duration(d)
}
