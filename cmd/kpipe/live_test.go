package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/plugins"
)

// liveRun is a `kpipe run` that reads records from a pipe the test writes
// at a steady rate, with its stderr collected line by line.
type liveRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	admin  string // base URL of the admin endpoint
	done   chan struct{}
	exit   error
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced at every new stderr line
}

// startLive starts kpipe run with args in dir and waits for its admin
// endpoint's address.
func startLive(t *testing.T, dir string, args ...string) *liveRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r := &liveRun{t: t, done: make(chan struct{}), notify: make(chan struct{})}
	r.cmd = exec.CommandContext(ctx, kpipeBin, args...)
	r.cmd.Dir = dir
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout = io.Discard
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			close(r.notify)
			r.notify = make(chan struct{})
			r.mu.Unlock()
		}
		r.exit = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.stdin.Close()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
			t.Errorf("kpipe run did not end within 30s of its input's end")
		}
		if t.Failed() {
			t.Logf("kpipe run stderr:\n%s", r.stderr())
		}
	})
	line := r.waitFor(`admin endpoint on (http://\S+)`, 0, 30*time.Second)
	r.admin = regexp.MustCompile(`http://\S+`).FindString(line)
	return r
}

func (r *liveRun) stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// waitFor waits up to d for a stderr line at index from or later that
// matches pattern, and returns it.
func (r *liveRun) waitFor(pattern string, from int, d time.Duration) string {
	r.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(d)
	for {
		r.mu.Lock()
		for _, l := range r.lines[min(from, len(r.lines)):] {
			if re.MatchString(l) {
				r.mu.Unlock()
				return l
			}
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-r.done:
			r.t.Fatalf("kpipe run ended (%v) before a stderr line matched %q", r.exit, pattern)
		case <-deadline:
			r.t.Fatalf("no stderr line matched %q within %v", pattern, d)
		}
	}
}

// interrupt sends kpipe SIGINT and waits for it to exit, bounded.
func (r *liveRun) interrupt() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Fatal("kpipe run did not end within 30s of SIGINT")
	}
}

// nlines is the number of stderr lines so far.
func (r *liveRun) nlines() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lines)
}

// wait closes the input and waits for kpipe to exit, bounded.
func (r *liveRun) wait() {
	r.t.Helper()
	_ = r.stdin.Close()
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		r.t.Fatalf("kpipe run did not exit within 60s of the end of its input")
	}
	if r.exit != nil {
		r.t.Fatalf("kpipe run: %v", r.exit)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// metrics scrapes /metrics and parses it with the Prometheus text parser.
func (r *liveRun) metrics() map[string]*dto.MetricFamily {
	r.t.Helper()
	resp, err := httpClient.Get(r.admin + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		r.t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

// metricValue is the value of the series of family name whose labels
// include labels (counter or gauge), or -1 if there is none.
func metricValue(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := mf[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	return -1
}

// feeder writes n JSON records (key "k<i>", value "<i>") at a steady rate
// and counts what it wrote.
type feeder struct {
	// written counts the records written; handed counts those written or
	// being written, which kpipe may have read: the bound a test needs
	// for "kpipe cannot have read record i yet". handed runs a write
	// ahead of written (the goroutine may be preempted between its write
	// and the count).
	written, handed atomic.Int64
	done            chan error
}

func feed(w io.Writer, n, perSecond int) *feeder {
	f := &feeder{done: make(chan error, 1)}
	go func() {
		const tick = 10 * time.Millisecond
		per := max(1, perSecond*int(tick)/int(time.Second))
		bw := bufio.NewWriter(w)
		next := time.Now()
		for i := 0; i < n; {
			f.handed.Store(int64(min(i+per, n))) // bw may write before Flush
			for j := 0; j < per && i < n; j, i = j+1, i+1 {
				fmt.Fprintf(bw, `{"key":"k%d","value":"%d"}`+"\n", i, i)
			}
			if err := bw.Flush(); err != nil {
				f.done <- err
				return
			}
			f.written.Store(int64(i))
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
		f.done <- nil
	}()
	return f
}

// waitWritten waits until the feeder wrote at least n records, bounded.
func (f *feeder) waitWritten(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for f.written.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the feeder wrote %d records, not %d, within 60s", f.written.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// replace writes data to a temporary file next to path and renames it over
// path: the atomic way to update a file that a process watches.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLiveReload streams 200k records through `kpipe run --watch --admin`
// while the partitioner module is swapped by an atomic rename, a broken
// module and a broken configuration are rejected, and SIGHUP swaps the
// first partitioner back. Consumed back, every record is there once, and
// each was placed by the partitioner that served when it was read: keyhash
// (murmur2), then the last partition (wasmhost/testdata/faulty.wasm, whose
// partitioner puts every record there), then keyhash again. /metrics,
// scraped once everything settled, equals the run's summary.
func TestLiveReload(t *testing.T) {
	const (
		n          = 200_000
		rate       = 20_000 // records per second: the run takes about 10s
		partitions = 4
	)
	keyhash := readFile(t, plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm"))
	last := readFile(t, plugintest.WAT(t, "wasmhost/testdata/faulty.wasm"))
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, partitions)

	dir := t.TempDir()
	mod := filepath.Join(dir, "part.wasm")
	replace(t, mod, keyhash)
	cfgPath := filepath.Join(dir, "k.hcl")
	cfg := fmt.Sprintf(`kafka {
  brokers = %q
  linger  = "2ms"
}
pipeline "live" {
  topic = %q
  partitioner { module = "part.wasm" }
}
`, strings.Join(brokers, ","), topic)
	replace(t, cfgPath, []byte(cfg))

	r := startLive(t, dir, "run", "--watch", "--admin", "127.0.0.1:0", "--config", "k.hcl")
	f := feed(r.stdin, n, rate)

	// 1. Swap the partitioner by an atomic rename.
	f.waitWritten(t, 30_000)
	replace(t, mod, last)
	r.waitFor(`reload \(change of .*part\.wasm\): chain 1 → 2 in .*replaced partitioner part`, 0, 30*time.Second)
	swapped := f.handed.Load() // every record written from here on was read after the swap

	// 2. A broken module is rejected; chain 2 keeps serving.
	f.waitWritten(t, 70_000)
	from := r.nlines()
	replace(t, mod, []byte("not a module"))
	r.waitFor(`reload \(change of .*part\.wasm\) rejected .*chain 2 keeps serving`, from, 30*time.Second)
	r.waitFor(`k\.hcl:7:26: error: Cannot load module: .*not a WebAssembly module`, from, 5*time.Second)

	// 3. POST /v1/reload with a configuration error: 422 and FILE:LINE:COL.
	f.waitWritten(t, 100_000)
	replace(t, cfgPath, []byte(strings.Replace(cfg, `topic = `, "colour = \"red\"\n  topic = ", 1)))
	resp, err := httpClient.Post(r.admin+"/v1/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Version     uint64   `json:"version"`
		Diagnostics []string `json:"diagnostics"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusUnprocessableEntity || body.Version != 2 ||
		len(body.Diagnostics) == 0 || !strings.Contains(body.Diagnostics[0], "k.hcl:6:3: error: Unsupported argument") {
		t.Fatalf("POST /v1/reload with a bad configuration: %d %+v (%v); want 422, version 2 and k.hcl:6:3's error", resp.StatusCode, body, err)
	}

	// 4. Repair both files and send SIGHUP at once: the SIGHUP reload (or
	// the watcher's, if it came first) swaps keyhash back in as chain 3.
	f.waitWritten(t, 130_000)
	from = r.nlines()
	replace(t, cfgPath, []byte(cfg))
	replace(t, mod, keyhash)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitFor(`reload \(SIGHUP\)`, from, 30*time.Second)
	r.waitFor(`chain 2 → 3 in `, from, 30*time.Second)
	swappedBack := f.handed.Load()

	if err := <-f.done; err != nil {
		t.Fatalf("writing the input: %v", err)
	}
	// Once every record settled, /metrics must agree with the summary.
	var mf map[string]*dto.MetricFamily
	deadline := time.Now().Add(60 * time.Second)
	for {
		mf = r.metrics()
		if metricValue(mf, "kpipe_records_read_total") == n && metricValue(mf, "kpipe_records_in_flight") == 0 &&
			metricValue(mf, "kpipe_records_delivered_total")+metricValue(mf, "kpipe_records_failed_total") == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records did not settle within 60s: read %v, delivered %v, in flight %v", metricValue(mf, "kpipe_records_read_total"),
				metricValue(mf, "kpipe_records_delivered_total"), metricValue(mf, "kpipe_records_in_flight"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.wait()
	checkSummary(t, r.stderr(), mf, topic)
	if v := metricValue(mf, "kpipe_chain_version"); v != 3 {
		t.Errorf("kpipe_chain_version %v, want 3", v)
	}
	if v := metricValue(mf, "kpipe_reloads_total", "result", "ok"); v < 2 {
		t.Errorf("kpipe_reloads_total{ok} %v, want at least 2", v)
	}
	if v := metricValue(mf, "kpipe_reloads_total", "result", "rejected"); v < 2 {
		t.Errorf("kpipe_reloads_total{rejected} %v, want at least 2 (the broken module and the POST)", v)
	}
	if v := metricValue(mf, "kpipe_plugin_info", "name", "part", "module", "part.wasm", "sha256", sha256Hex(keyhash)); v != 1 {
		t.Errorf("kpipe_plugin_info of part with keyhash's sha256: %v, want 1", v)
	}

	checkPlacement(t, brokers, topic, n, partitions, swapped, swappedBack)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkSummary compares the run's summary with the metrics scraped at its
// end: records read, delivered, filtered and failed, per-partition counts,
// and the partitioner's calls.
func checkSummary(t *testing.T, stderr string, mf map[string]*dto.MetricFamily, topic string) {
	t.Helper()
	field := func(re string) float64 {
		m := regexp.MustCompile(re).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("no %q in the summary:\n%s", re, stderr)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	for _, c := range []struct {
		re, metric string
	}{
		{`kpipe: (\d+) records read`, "kpipe_records_read_total"},
		{`\n  delivered  (\d+)`, "kpipe_records_delivered_total"},
		{`\n  filtered   (\d+)`, "kpipe_records_filtered_total"},
		{`\n  failed     (\d+)`, "kpipe_records_failed_total"},
		{`part +partition +calls (\d+)`, "kpipe_plugin_calls_total"},
	} {
		if s, m := field(c.re), metricValue(mf, c.metric); s != m {
			t.Errorf("summary %q = %v, but %s = %v", c.re, s, c.metric, m)
		}
	}
	for p := 0; p < 4; p++ {
		re := regexp.QuoteMeta(fmt.Sprintf("%s[%d]", topic, p)) + ` +(\d+)`
		if s, m := field(re), metricValue(mf, "kpipe_partition_delivered_total", "topic", topic, "partition", strconv.Itoa(p)); s != m {
			t.Errorf("summary %s[%d] = %v, but kpipe_partition_delivered_total = %v", topic, p, s, m)
		}
	}
}

// checkPlacement reads the topic back: n records, each once, no more in the
// topic; record i placed by keyhash before the swap, on the last partition
// between the swap and the swap back, and by keyhash after it. The swaps
// happened before the feeder had written swapped and swappedBack records.
func checkPlacement(t *testing.T, brokers []string, topic string, n, partitions int, swapped, swappedBack int64) {
	t.Helper()
	recs := testbroker.ReadAll(t, brokers, topic, n, false)
	total := testbroker.Total(testbroker.EndOffsets(t, brokers, topic))
	if total != int64(n) {
		t.Errorf("the topic holds %d records, want %d", total, n)
	}

	ref, _ := plugins.NewPartitioner(plugins.PartitionerMurmur2, nil)
	lastP := int32(partitions - 1)
	placed := make([]int8, n) // 1: keyhash only, 2: last partition only, 3: both
	seen := make([]bool, n)
	for _, rec := range recs {
		i, err := strconv.Atoi(string(rec.Value))
		if err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected record %q", rec.Value)
		}
		if seen[i] {
			t.Fatalf("record %d read twice", i)
		}
		seen[i] = true
		kh, _ := ref.Partition(context.Background(), &plugins.Record{Key: rec.Key}, int32(partitions))
		switch {
		case rec.Partition == kh && rec.Partition == lastP:
			placed[i] = 3
		case rec.Partition == kh:
			placed[i] = 1
		case rec.Partition == lastP:
			placed[i] = 2
		default:
			t.Fatalf("record %d on partition %d: neither keyhash's %d nor the last", i, rec.Partition, kh)
		}
	}
	firstLast, lastLast := -1, -1
	for i, p := range placed {
		if p == 2 {
			if firstLast < 0 {
				firstLast = i
			}
			lastLast = i
		}
	}
	if firstLast < 0 {
		t.Fatal("no record was placed by the second partitioner")
	}
	for i, p := range placed {
		if p == 1 && i > firstLast && i < lastLast {
			t.Errorf("record %d was placed by keyhash between records %d and %d placed by the second partitioner", i, firstLast, lastLast)
			break
		}
	}
	// The records just before firstLast that both partitioners would
	// place where they are (placed 3) may already have gone through the
	// second one: the swap took effect at one of them, or at firstLast.
	earliest := firstLast
	for earliest > 0 && placed[earliest-1] == 3 {
		earliest--
	}
	t.Logf("keyhash up to record %d, the last partition from %d (or from %d) to %d, keyhash again after", firstLast, firstLast, earliest, lastLast)
	if firstLast == 0 || int64(earliest) > swapped {
		t.Errorf("the first swap took effect at record %d (or from %d, placed alike by both); want after 0 and by %d, what was written when it was logged", firstLast, earliest, swapped)
	}
	if lastLast >= n-1 || int64(lastLast) >= swappedBack {
		t.Errorf("the swap back took effect after record %d; want before %d, what was written when it was logged", lastLast, swappedBack)
	}
}

// TestLiveReloadAddsInterceptor adds an interceptor (the headerstamp Go
// guest) by a reload while records stream: the records read before the
// reload are not stamped, every record read after it is, and its on_send
// calls are exactly those records. The module's compilation is cached by a
// `kpipe validate` first, as in production where the cache is warm.
func TestLiveReloadAddsInterceptor(t *testing.T) {
	const (
		n    = 40_000
		rate = 4_000
	)
	stamp := readFile(t, plugintest.GoPlugin(t, "examples/plugins/headerstamp"))
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 2)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	replace(t, filepath.Join(dir, "stamp.wasm"), stamp)
	base := fmt.Sprintf(`kafka {
  brokers = %q
  linger  = "2ms"
}
pipeline "live" {
  topic = %q
}
`, strings.Join(brokers, ","), topic)
	withStamp := strings.TrimSuffix(base, "}\n") + `  interceptor "stamp" {
    module = "stamp.wasm"
    config = { headers = { stamped = "yes" } }
  }
}
`
	cfgPath := filepath.Join(dir, "k.hcl")
	replace(t, cfgPath, []byte(withStamp))
	if res := kpipe(t, dir, "", "--wasm-cache", cache, "validate", "--config", "k.hcl"); res.code != 0 {
		t.Fatalf("warming the compilation cache: %v", res)
	}
	replace(t, cfgPath, []byte(base))

	r := startLive(t, dir, "--wasm-cache", cache, "run", "--watch", "--admin", "127.0.0.1:0", "--config", "k.hcl")
	f := feed(r.stdin, n, rate)
	f.waitWritten(t, 8_000)
	replace(t, cfgPath, []byte(withStamp))
	r.waitFor(`reload \(change of .*k\.hcl\): chain 1 → 2 in .*: added interceptor stamp`, 0, 60*time.Second)
	reloaded := f.handed.Load()
	if err := <-f.done; err != nil {
		t.Fatalf("writing the input: %v", err)
	}
	var mf map[string]*dto.MetricFamily
	deadline := time.Now().Add(60 * time.Second)
	for {
		mf = r.metrics()
		if metricValue(mf, "kpipe_records_delivered_total") == n && metricValue(mf, "kpipe_records_in_flight") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records did not settle within 60s: delivered %v", metricValue(mf, "kpipe_records_delivered_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.wait()

	stamped := make([]bool, n)
	for _, rec := range testbroker.ReadAll(t, brokers, topic, n, false) {
		i, err := strconv.Atoi(string(rec.Value))
		if err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected record %q", rec.Value)
		}
		for _, h := range rec.Headers {
			stamped[i] = stamped[i] || h.Key == "stamped" && string(h.Value) == "yes"
		}
	}
	first := -1
	for i, s := range stamped {
		if s && first < 0 {
			first = i
		}
		if !s && first >= 0 {
			t.Fatalf("record %d is not stamped, but record %d before it is", i, first)
		}
	}
	t.Logf("records from %d on are stamped; %d were written when the reload was logged", first, reloaded)
	if first <= 0 || int64(first) > reloaded {
		t.Errorf("the first stamped record is %d; want after 0 and by %d", first, reloaded)
	}
	if calls := metricValue(mf, "kpipe_plugin_calls_total", "plugin", "stamp", "hook", "on_send"); calls != float64(n-first) {
		t.Errorf("stamp on_send calls %v, want %d: exactly the records read after the reload", calls, n-first)
	}
}

// TestLiveAdminProbes starts a run whose broker accepts connections but
// never answers: the admin
// endpoint serves before the producer exists, /healthz says ok, /readyz and
// kpipe_ready say not ready, POST /v1/reload is refused, and SIGINT still
// ends the run.
func TestLiveAdminProbes(t *testing.T) {
	dir := t.TempDir()
	// A "broker" that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	dead := ln.Addr().String()
	r := startLive(t, dir, "run", "--admin", "127.0.0.1:0", "--pprof", "--brokers", dead, "--topic", "t")
	status := func(method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, r.admin+path, nil)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", http.StatusOK},
		{"GET", "/readyz", http.StatusServiceUnavailable},
		{"POST", "/v1/reload", http.StatusServiceUnavailable}, // too early: retry later
		{"GET", "/debug/pprof/", http.StatusOK},
	} {
		if got := status(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	if v := metricValue(r.metrics(), "kpipe_ready"); v != 0 {
		t.Errorf("kpipe_ready %v before any broker answered, want 0", v)
	}
	r.interrupt()
}
