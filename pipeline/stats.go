package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	// Plugins has one entry per plugin name and hook that has been in
	// use, in the order of first use: for the chain New built that is
	// pipeline order, interceptors (on_send, on_ack; no on_ack entry for
	// an interceptor that wants no acknowledgements, see
	// plugins.AckObserver), key serializer, value serializer,
	// partitioner; chains swapped in later (Producer.Swap) add entries
	// for new names after them. Plugins of one name and hook share one
	// entry across chains. The built-in default partitioner has an entry
	// (its calls count the records it partitioned); serializers that send
	// data as it is have none.
	Plugins []PluginStats
	// Batches counts the record batches the brokers acknowledged.
	Batches BatchStats
}

// BatchStats counts the record batches the client wrote: one per partition
// and produce request, each acknowledged by the broker (a batch that failed
// is not counted, nor are its records). A batch is counted just after its
// records have their outcomes, so right after Flush the last batches may
// be missing for a moment. Records/Batches is the mean number
// of records per batch, which Kafka's Java producer reports as
// batch-size-avg in bytes and records-per-request-avg: few records per batch
// mean many small requests, more work for the brokers per record (see
// docs/producer.md, Batching).
type BatchStats struct {
	// Batches counts the batches.
	Batches uint64
	// Records counts the records in them.
	Records uint64
	// UncompressedBytes counts the bytes of their records before
	// compression, CompressedBytes what was written after it (the same
	// when the batch is not compressed); neither counts the batches'
	// headers.
	UncompressedBytes, CompressedBytes uint64
}

// batchCounter counts the batches franz-go wrote (kgo.HookProduceBatchWritten,
// called once per batch after the broker's acknowledgement).
type batchCounter struct {
	batches, records, uncompressed, compressed atomic.Uint64
}

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (c *batchCounter) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	c.batches.Add(1)
	c.records.Add(uint64(m.NumRecords))
	c.uncompressed.Add(uint64(m.UncompressedBytes))
	c.compressed.Add(uint64(m.CompressedBytes))
}

func (c *batchCounter) snapshot() BatchStats {
	return BatchStats{
		Batches:           c.batches.Load(),
		Records:           c.records.Load(),
		UncompressedBytes: c.uncompressed.Load(),
		CompressedBytes:   c.compressed.Load(),
	}
}

// PluginStats counts the calls of one plugin at one hook.
type PluginStats struct {
	// Name is the name the plugin was given in its option.
	Name string
	// Kind is the plugin kind.
	Kind plugins.Kind
	// Hook is the call site.
	Hook Hook
	// Calls counts the records given to the plugin at this hook: a batch
	// call of n records counts n, and a record partitioned again after
	// the client started a new batch (KIP-480) counts once. Each record
	// counts once per hook, so Calls + Bypasses of a hook every record
	// goes through is the number of records that reached it.
	Calls uint64
	// Failures counts the records on which the plugin failed: its call
	// returned an error or panicked, the WASM plugin faulted, a batch
	// call failed for that record (a batch call that fails as a whole
	// counts each of its records), or a partitioner returned a
	// partition out of range. Records the plugin was bypassed on are not
	// failures.
	Failures uint64
	// Bypasses counts records the plugin was not called for because its
	// circuit breaker was open; its failure policy applied to them.
	Bypasses uint64
	// Drops counts records an interceptor filtered out (on_send only): by
	// its Drop verdict, or by its DropRecord failure policy.
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
// goroutine those of on_ack. They are not padded to cache lines of their
// own: BenchmarkProduce/native (on_send, on_ack and partition counted for
// every record) measured no gain from it (RATIONALE.md, "Padding").
type hookStats struct {
	calls, failures, bypasses, drops atomic.Uint64
	sampled                          atomic.Uint64
	sampledNanos                     atomic.Int64
	lastLog                          atomic.Int64
	latency                          latencyHist
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

type statsKey struct {
	name string
	kind plugins.Kind
	hook Hook
}

type statsEntry struct {
	statsKey
	st *hookStats
}

// statsTable holds the counters of every plugin name and hook a Producer
// or a Consumer has used, in the order of first use.
type statsTable struct {
	mu   sync.Mutex
	by   map[statsKey]*hookStats
	list []statsEntry
}

// get returns the counters of plugin name at hook, creating them on first
// use.
func (t *statsTable) get(name string, kind plugins.Kind, hook Hook) *hookStats {
	k := statsKey{name, kind, hook}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = map[statsKey]*hookStats{}
	}
	st := t.by[k]
	if st == nil {
		st = new(hookStats)
		t.by[k] = st
		t.list = append(t.list, statsEntry{k, st})
	}
	return st
}

// snapshot returns the counters of every entry, in the order of first use.
func (t *statsTable) snapshot() []PluginStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []PluginStats
	for _, e := range t.list {
		out = append(out, e.st.snapshot(e.name, e.kind, e.hook))
	}
	return out
}

// statsFor returns the counters of plugin name at hook, creating them on
// first use.
func (p *Producer) statsFor(name string, kind plugins.Kind, hook Hook) *hookStats {
	return p.hookStats.get(name, kind, hook)
}

// Stats returns a snapshot of the producer's counters.
func (p *Producer) Stats() Stats {
	s := Stats{
		Delivered: p.delivered.Load(),
		Filtered:  p.filtered.Load(),
		Failed:    p.failed.Load(),
		InFlight:  p.inFlight(),
	}
	s.Plugins = p.hookStats.snapshot()
	s.Batches = p.batches.snapshot()
	return s
}
