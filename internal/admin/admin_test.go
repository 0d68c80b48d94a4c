package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// fakePipeline serves a fixed snapshot; Reload fails while failReload is set.
type fakePipeline struct {
	snap       Snapshot
	ready      atomic.Bool
	failReload atomic.Bool
	notStarted atomic.Bool
	reloads    atomic.Int32
}

func (f *fakePipeline) Snapshot() Snapshot { return f.snap }
func (f *fakePipeline) Ready() bool        { return f.ready.Load() }
func (f *fakePipeline) Reload(ctx context.Context) (uint64, error) {
	f.reloads.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		return 0, errors.New("reload without a deadline")
	}
	if f.notStarted.Load() {
		return 0, ErrNotStarted
	}
	if f.failReload.Load() {
		return 0, &ReloadError{Diagnostics: []string{"k.hcl:3:14: error: Module not found: x.wasm does not exist"}}
	}
	return f.snap.ChainVersion + 1, nil
}

func newFake() *fakePipeline {
	var lat [pipeline.NumLatencyBuckets]uint64
	lat[2], lat[9] = 3, 1 // three calls ≤5µs, one ≤1ms
	return &fakePipeline{snap: Snapshot{
		Read: 10, Delivered: 7, Filtered: 1, Failed: 2, InFlight: 0,
		ChainVersion: 3,
		Chain: []PluginInfo{
			{Name: "stamp", Kind: "interceptor", Role: "interceptor", Module: "/m/stamp.wasm", SHA256: "ab12", Policy: "skip"},
			{Name: "keyhash", Kind: "partitioner", Role: "partitioner", Module: "/m/keyhash.wasm", SHA256: "cd34", Policy: "default"},
		},
		Stats: []pipeline.PluginStats{
			{Name: "stamp", Kind: plugins.KindInterceptor, Hook: pipeline.HookOnSend, Calls: 8, Drops: 1},
			{Name: "stamp", Kind: plugins.KindInterceptor, Hook: pipeline.HookOnAck, Calls: 7},
			{Name: "keyhash", Kind: plugins.KindPartitioner, Hook: pipeline.HookPartition, Calls: 7, Failures: 1,
				Sampled: 4, SampledTime: 1100 * time.Microsecond, Latency: lat},
		},
		Partitions:         []PartitionCount{{"t", 0, 3}, {"t", 1, 4}},
		Reloads:            ReloadStats{OK: 2, Rejected: 1},
		LogLinesSuppressed: map[string]uint64{"stamp": 1234},
		Batches:            pipeline.BatchStats{Batches: 2, Records: 7, UncompressedBytes: 700, CompressedBytes: 210},
	}}
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// TestMetrics parses /metrics with the Prometheus text parser and checks
// every kpipe series against the snapshot.
func TestMetrics(t *testing.T) {
	f := newFake()
	f.ready.Store(true)
	code, body := get(t, Handler(f, Options{}), "GET", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		mf := families[name]
		if mf == nil {
			t.Fatalf("no %s in /metrics", name)
		}
	next:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v in /metrics", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kpipe_records_read_total", nil, 10},
		{"kpipe_records_delivered_total", nil, 7},
		{"kpipe_records_filtered_total", nil, 1},
		{"kpipe_records_failed_total", nil, 2},
		{"kpipe_records_in_flight", nil, 0},
		{"kpipe_partition_delivered_total", map[string]string{"topic": "t", "partition": "1"}, 4},
		{"kpipe_plugin_calls_total", map[string]string{"plugin": "stamp", "hook": "on_ack"}, 7},
		{"kpipe_plugin_drops_total", map[string]string{"plugin": "stamp", "hook": "on_send"}, 1},
		{"kpipe_plugin_failures_total", map[string]string{"plugin": "keyhash", "kind": "partitioner", "hook": "partition"}, 1},
		{"kpipe_plugin_bypasses_total", map[string]string{"plugin": "keyhash"}, 0},
		{"kpipe_plugin_call_duration_seconds", map[string]string{"plugin": "keyhash"}, 4},
		{"kpipe_plugin_info", map[string]string{"name": "keyhash", "module": "/m/keyhash.wasm", "sha256": "cd34", "kind": "partitioner"}, 1},
		{"kpipe_plugin_log_lines_suppressed_total", map[string]string{"plugin": "stamp"}, 1234},
		{"kpipe_reloads_total", map[string]string{"result": "ok"}, 2},
		{"kpipe_reloads_total", map[string]string{"result": "rejected"}, 1},
		{"kpipe_chain_version", nil, 3},
		{"kpipe_ready", nil, 1},
		{"kpipe_producer_batches_total", nil, 2},
		{"kpipe_producer_batch_records_total", nil, 7},
		{"kpipe_producer_batch_bytes_total", map[string]string{"compression": "before"}, 700},
		{"kpipe_producer_batch_bytes_total", map[string]string{"compression": "after"}, 210},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Plugins that had no log line suppressed have no series.
	if mf := families["kpipe_plugin_log_lines_suppressed_total"]; len(mf.GetMetric()) != 1 {
		t.Errorf("kpipe_plugin_log_lines_suppressed_total has %d series, want 1 (stamp only)", len(mf.GetMetric()))
	}
	// The histogram's buckets are cumulative: 3 calls ≤5µs, all 4 ≤1ms.
	for _, m := range families["kpipe_plugin_call_duration_seconds"].Metric {
		for _, b := range m.Histogram.Bucket {
			want := uint64(0)
			switch {
			case b.GetUpperBound() >= 0.001:
				want = 4
			case b.GetUpperBound() >= 5e-6:
				want = 3
			}
			if m.Label[0].GetValue() == "keyhash" && b.GetCumulativeCount() != want {
				t.Errorf("bucket ≤%gs: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	if families["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
}

func TestProbesAndPipeline(t *testing.T) {
	f := newFake()
	h := Handler(f, Options{})
	if code, _ := get(t, h, "GET", "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, h, "GET", "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d, want 503", code)
	}
	f.ready.Store(true)
	if code, _ := get(t, h, "GET", "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once ready: %d, want 200", code)
	}
	code, body := get(t, h, "GET", "/v1/pipeline")
	if code != http.StatusOK {
		t.Fatalf("/v1/pipeline: %d %s", code, body)
	}
	var pj pipelineJSON
	if err := json.Unmarshal([]byte(body), &pj); err != nil {
		t.Fatal(err)
	}
	if pj.ChainVersion != 3 || len(pj.Plugins) != 2 || pj.Records.Read != 10 || len(pj.Partitions) != 2 {
		t.Errorf("/v1/pipeline: %s", body)
	}
	st := pj.Plugins[0]
	if st.Name != "stamp" || st.SHA256 != "ab12" || st.Policy != "skip" || st.Hooks["on_send"].Calls != 8 || st.Hooks["on_ack"].Calls != 7 {
		t.Errorf("stamp: %+v", st)
	}
	if code, _ := get(t, h, "GET", "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", code)
	}
	if code, _ := get(t, Handler(f, Options{Pprof: true}), "GET", "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("/debug/pprof/ with Pprof: %d, want 200", code)
	}
}

func TestReload(t *testing.T) {
	f := newFake()
	h := Handler(f, Options{})
	if code, _ := get(t, h, "GET", "/v1/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/reload: %d, want 405", code)
	}
	code, body := get(t, h, "POST", "/v1/reload")
	var r reloadResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || r.Version != 4 {
		t.Errorf("POST /v1/reload: %d %s (%v), want 200 and version 4", code, body, err)
	}
	f.failReload.Store(true)
	code, body = get(t, h, "POST", "/v1/reload")
	r = reloadResponse{}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusUnprocessableEntity ||
		len(r.Diagnostics) != 1 || !strings.HasPrefix(r.Diagnostics[0], "k.hcl:3:14: ") || r.Version != 3 {
		t.Errorf("POST /v1/reload rejected: %d %s (%v), want 422, the diagnostics, and version 3", code, body, err)
	}
	// Before the pipeline started the request came too early: 503, to be
	// retried, not a rejected configuration.
	f.notStarted.Store(true)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/reload", nil))
	r = reloadResponse{}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusServiceUnavailable ||
		rec.Header().Get("Retry-After") == "" || !strings.Contains(r.Error, "not started") || len(r.Diagnostics) != 0 {
		t.Errorf("POST /v1/reload before the start: %d %q %s (%v), want 503 with Retry-After and the reason", rec.Code, rec.Header().Get("Retry-After"), rec.Body, err)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:9464", false, true},
		{"[::1]:9464", false, true},
		{"localhost:0", false, true},
		{"0.0.0.0:9464", false, false},
		{":9464", false, false},
		{"[::]:9464", false, false},
		{"192.0.2.1:9464", false, false},
		{"192.0.2.1:9464", true, true},
		{":9464", true, true},
		{"9464", false, false},
	} {
		err := CheckAddr(tt.addr, tt.public)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", tt.addr, tt.public, err, tt.ok)
		}
	}
	if _, err := Start(Options{Addr: "0.0.0.0:0"}, newFake()); err == nil || !strings.Contains(err.Error(), "--admin-public") {
		t.Errorf("Start on 0.0.0.0: %v, want a refusal naming --admin-public", err)
	}
}

// TestStart serves on a loopback port and stops within its bound.
func TestStart(t *testing.T) {
	s, err := Start(Options{Addr: "127.0.0.1:0"}, newFake())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestStalledBody: a request that declares a body and never sends it is
// answered (and its connection closed) once the read timeout passes,
// instead of holding its connection and goroutine for as long as the
// client keeps it open: the server reads the body a handler left unread
// before it writes the answer.
func TestStalledBody(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 300 * time.Millisecond
	s, err := Start(Options{Addr: "127.0.0.1:0"}, newFake())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("no answer and no close within 5s: %v (read %q)", err, got)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Fatalf("answer %q, want 200", got)
	}
}

// TestMetricsTopicNotUTF8: a delivered record's topic that is not UTF-8
// (a plugin can name any bytes, and the embedded broker takes them) shows
// with U+FFFD; it used to make /metrics answer 500.
func TestMetricsTopicNotUTF8(t *testing.T) {
	f := newFake()
	f.snap.Partitions = append(f.snap.Partitions, PartitionCount{"bad\xfftopic", 0, 1})
	code, body := get(t, Handler(f, Options{}), "GET", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	if want := "kpipe_partition_delivered_total{partition=\"0\",topic=\"bad\uFFFDtopic\"} 1"; !strings.Contains(body, want) {
		t.Fatalf("/metrics lacks %s:\n%s", want, body)
	}
}
