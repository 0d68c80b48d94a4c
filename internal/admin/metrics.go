package admin

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// Collector is a prometheus.Collector that reads a Pipeline's Snapshot at
// every scrape. Its series:
//
//	kpipe_records_read_total                    counter
//	kpipe_records_delivered_total               counter
//	kpipe_records_filtered_total                counter
//	kpipe_records_failed_total                  counter
//	kpipe_records_in_flight                     gauge
//	kpipe_partition_delivered_total{topic,partition}           counter
//	kpipe_plugin_calls_total{plugin,kind,hook}                 counter
//	kpipe_plugin_failures_total{plugin,kind,hook}              counter
//	kpipe_plugin_drops_total{plugin,kind,hook}                 counter
//	kpipe_plugin_bypasses_total{plugin,kind,hook}              counter
//	kpipe_plugin_call_duration_seconds{plugin,kind,hook}       histogram
//	kpipe_plugin_info{name,kind,role,module,sha256,policy}     gauge, 1
//	kpipe_plugin_log_lines_suppressed_total{plugin}            counter
//	kpipe_reloads_total{result="ok"|"rejected"}                counter
//	kpipe_chain_version                         gauge
//	kpipe_producer_batches_total                counter
//	kpipe_producer_batch_records_total          counter
//	kpipe_producer_batch_bytes_total{compression="before"|"after"}  counter
//	kpipe_ready                                 gauge, 1 once ready
//
// The call duration histogram holds the calls the pipeline measured (one in
// 64, see pipeline.PluginStats), per record.
type Collector struct {
	p Pipeline
}

// NewCollector returns the Collector of p.
func NewCollector(p Pipeline) *Collector { return &Collector{p: p} }

var (
	pluginLabels = []string{"plugin", "kind", "hook"}

	descRead      = prometheus.NewDesc("kpipe_records_read_total", "Records the pipeline took in.", nil, nil)
	descDelivered = prometheus.NewDesc("kpipe_records_delivered_total", "Records acknowledged by the broker.", nil, nil)
	descFiltered  = prometheus.NewDesc("kpipe_records_filtered_total", "Records an interceptor dropped.", nil, nil)
	descFailed    = prometheus.NewDesc("kpipe_records_failed_total", "Records that failed (including input that could not be decoded).", nil, nil)
	descInFlight  = prometheus.NewDesc("kpipe_records_in_flight", "Records sent whose outcome is not known yet.", nil, nil)
	descPartition = prometheus.NewDesc("kpipe_partition_delivered_total", "Records delivered, per topic and partition.", []string{"topic", "partition"}, nil)
	descCalls     = prometheus.NewDesc("kpipe_plugin_calls_total", "Plugin calls, one per record (a batch call counts its records).", pluginLabels, nil)
	descFailures  = prometheus.NewDesc("kpipe_plugin_failures_total", "Plugin calls that failed (error, fault, or a partition out of range).", pluginLabels, nil)
	descDrops     = prometheus.NewDesc("kpipe_plugin_drops_total", "Records an interceptor filtered out.", pluginLabels, nil)
	descBypasses  = prometheus.NewDesc("kpipe_plugin_bypasses_total", "Plugin calls skipped because its circuit breaker was open.", pluginLabels, nil)
	descDuration  = prometheus.NewDesc("kpipe_plugin_call_duration_seconds", "Duration of a plugin call per record, measured on one call in 64.", pluginLabels, nil)
	descInfo      = prometheus.NewDesc("kpipe_plugin_info", "The plugins of the current chain.", []string{"name", "kind", "role", "module", "sha256", "policy"}, nil)
	descLogLines  = prometheus.NewDesc("kpipe_plugin_log_lines_suppressed_total", "Log lines of a WASM plugin (log calls, stdout and stderr lines) dropped by its log rate limit; only plugins that had some.", []string{"plugin"}, nil)
	descReloads   = prometheus.NewDesc("kpipe_reloads_total", "Configuration reloads, by result.", []string{"result"}, nil)
	descVersion   = prometheus.NewDesc("kpipe_chain_version", "Version of the chain that serves now (1 for the first).", nil, nil)
	descReady     = prometheus.NewDesc("kpipe_ready", "1 once the pipeline reached a broker.", nil, nil)
	descBatches   = prometheus.NewDesc("kpipe_producer_batches_total", "Record batches the brokers acknowledged (one per partition and produce request).", nil, nil)
	descBatchRecs = prometheus.NewDesc("kpipe_producer_batch_records_total", "Records in the acknowledged batches: divided by kpipe_producer_batches_total, the mean batch size.", nil, nil)
	descBatchByte = prometheus.NewDesc("kpipe_producer_batch_bytes_total", "Bytes of the records of the acknowledged batches, before and after compression (batch headers not counted).", []string{"compression"}, nil)
)

// durationBounds are pipeline.LatencyBuckets in seconds.
var durationBounds = func() []float64 {
	b := make([]float64, len(pipeline.LatencyBuckets))
	for i, d := range pipeline.LatencyBuckets {
		b[i] = d.Seconds()
	}
	return b
}()

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRead, descDelivered, descFiltered, descFailed, descInFlight,
		descPartition, descCalls, descFailures, descDrops, descBypasses, descDuration, descInfo,
		descLogLines, descReloads, descVersion, descReady, descBatches, descBatchRecs, descBatchByte} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descRead, s.Read)
	counter(descDelivered, s.Delivered)
	counter(descFiltered, s.Filtered)
	counter(descFailed, s.Failed)
	gauge(descInFlight, float64(s.InFlight))
	for _, pc := range s.Partitions {
		// A plugin may send a record to a topic named in any bytes, and
		// a broker that does not check names (the embedded one) takes
		// it: Prometheus refuses a label value that is not UTF-8, and
		// with it the whole scrape.
		counter(descPartition, pc.Delivered, strings.ToValidUTF8(pc.Topic, "\uFFFD"), strconv.Itoa(int(pc.Partition)))
	}
	for _, ps := range s.Stats {
		labels := []string{ps.Name, KindName(ps.Kind), string(ps.Hook)}
		counter(descCalls, ps.Calls, labels...)
		counter(descFailures, ps.Failures, labels...)
		counter(descDrops, ps.Drops, labels...)
		counter(descBypasses, ps.Bypasses, labels...)
		buckets := make(map[float64]uint64, len(durationBounds))
		var cum uint64
		for i, bound := range durationBounds {
			cum += ps.Latency[i]
			buckets[bound] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, ps.Sampled, ps.SampledTime.Seconds(), buckets, labels...)
	}
	for _, pi := range s.Chain {
		gauge(descInfo, 1, pi.Name, pi.Kind, pi.Role, pi.Module, pi.SHA256, pi.Policy)
	}
	for name, n := range s.LogLinesSuppressed {
		counter(descLogLines, n, name)
	}
	counter(descReloads, s.Reloads.OK, "ok")
	counter(descReloads, s.Reloads.Rejected, "rejected")
	gauge(descVersion, float64(s.ChainVersion))
	counter(descBatches, s.Batches.Batches)
	counter(descBatchRecs, s.Batches.Records)
	counter(descBatchByte, s.Batches.UncompressedBytes, "before")
	counter(descBatchByte, s.Batches.CompressedBytes, "after")
	ready := 0.0
	if c.p.Ready() {
		ready = 1
	}
	gauge(descReady, ready)
}

// KindName is the name of a single plugin kind in metrics and JSON:
// "interceptor", "serializer" or "partitioner".
func KindName(k plugins.Kind) string {
	switch k {
	case plugins.KindInterceptor:
		return "interceptor"
	case plugins.KindSerializer:
		return "serializer"
	case plugins.KindPartitioner:
		return "partitioner"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}
