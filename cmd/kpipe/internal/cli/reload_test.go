//go:build unix

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/admin"
	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
)

// benchRun builds a run's producer and reloader for the configuration src
// (written to dir/k.hcl) on an embedded broker, with the compilation cache
// in cacheDir ("off" for none).
func benchRun(b testing.TB, dir, src, cacheDir string) (*built, *reloader) {
	b.Helper()
	path := filepath.Join(dir, "k.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	e := &env{stderr: io.Discard, logOut: &heldWriter{w: io.Discard}, logLevel: "off", logFormat: "text", wasmCache: cacheDir}
	if err := e.setupLogger(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	bt, err := e.buildProducer(ctx, path, "", nil, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = bt.producer.Close(ctx)
		bt.close()
	})
	return bt, newReloader(e, runFlags{config: path}, bt)
}

// swapModule replaces dir/part.wasm by the file at from, by a rename.
func swapModule(b testing.TB, dir, from string) {
	b.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	tmp := filepath.Join(dir, ".part.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "part.wasm")); err != nil {
		b.Fatal(err)
	}
}

// TestReloadWhileSending swaps the partitioner module back and forth while
// records are sent and the admin snapshot is read, all at once (for the race
// detector): every record is delivered, and the chain version counts the
// swaps.
func TestReloadWhileSending(t *testing.T) {
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	last := plugintest.WAT(t, "wasmhost/testdata/faulty.wasm")
	dir := t.TempDir()
	swapModule(t, dir, keyhash)
	bt, rl := benchRun(t, dir, `pipeline "p" {
  topic = "race"
  partitioner { module = "part.wasm" }
}
`, "off")
	lv := &live{rl: rl}
	tl := &tally{perPartition: map[topicPartition]*int{}, firstFailure: make(chan struct{})}
	lv.attached.Store(&attachedRun{b: bt, t: tl})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, swaps = 3000, 6
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			r := &plugins.Record{Key: fmt.Appendf(nil, "k%d", i)}
			bt.producer.Send(ctx, r, tl.callback(&env{stderr: io.Discard}, []inputLine{{rec: r, line: i + 1}}))
		}
	}()
	go func() {
		defer wg.Done()
		for k := 0; k < swaps; k++ {
			swapModule(t, dir, []string{last, keyhash}[k%2])
			if _, err := rl.reload(ctx, "test"); err != nil {
				t.Error(err)
			}
			_ = lv.Snapshot()
		}
	}()
	wg.Wait()
	if err := bt.producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := lv.Snapshot()
	if s.Delivered != n || s.ChainVersion != swaps+1 || s.Reloads.OK != swaps {
		t.Errorf("delivered %d of %d, chain version %d (want %d), reloads %+v", s.Delivered, n, s.ChainVersion, swaps+1, s.Reloads)
	}
}

// p99 is the 99th percentile of d (sorted in place).
func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)*99/100]
}

// BenchmarkReloadStall measures what reloads cost the records being sent:
// one goroutine sends records as fast as the pipeline takes them (one Send
// at a time, each timed) through a WAT partitioner, in rounds that
// alternate between no reloads and a reload every 20ms that swaps the
// partitioner module (keyhash <-> faulty's last-partition partitioner).
// Reported: the p99 duration of a Send in each kind of round, and their
// ratio, and the longest Send of each (p99 sorts them). The target (issue 11) is a p99 stall of at most 1ms during
// reloads.
//
//	go test -run '^$' -bench BenchmarkReloadStall -benchtime 4x ./cmd/kpipe/internal/cli/
func BenchmarkReloadStall(b *testing.B) {
	keyhash := plugintest.WAT(b, "examples/plugins/wat/keyhash.wasm")
	last := plugintest.WAT(b, "wasmhost/testdata/faulty.wasm")
	dir := b.TempDir()
	swapModule(b, dir, keyhash)
	bt, rl := benchRun(b, dir, `pipeline "p" {
  topic = "bench"
  partitioner { module = "part.wasm" }
}
`, filepath.Join(dir, "cache"))
	ctx := context.Background()
	p := bt.producer
	rec := func(i int) *plugins.Record {
		return &plugins.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}
	}
	const round = 500 * time.Millisecond
	var quiet, reloading []time.Duration
	reloads, rejected := 0, 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, withReloads := range []bool{false, true} {
			var stop atomic.Bool
			var wg sync.WaitGroup
			if withReloads {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mods := []string{last, keyhash}
					for k := 0; !stop.Load(); k++ {
						swapModule(b, dir, mods[k%2])
						if _, err := rl.reload(ctx, "bench"); err != nil {
							rejected++
						} else {
							reloads++
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			var d []time.Duration
			end := time.Now().Add(round)
			for j := 0; time.Now().Before(end); j++ {
				t0 := time.Now()
				p.Send(ctx, rec(j), nil)
				d = append(d, time.Since(t0))
			}
			stop.Store(true)
			wg.Wait()
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if withReloads {
				reloading = append(reloading, d...)
			} else {
				quiet = append(quiet, d...)
			}
		}
	}
	b.StopTimer()
	if rejected > 0 {
		b.Fatalf("%d of %d reloads were rejected", rejected, reloads+rejected)
	}
	q, r := p99(quiet), p99(reloading)
	b.ReportMetric(float64(q.Microseconds()), "p99-µs-quiet")
	b.ReportMetric(float64(r.Microseconds()), "p99-µs-reloading")
	b.ReportMetric(float64(r)/float64(max(q, 1)), "p99-ratio")
	b.ReportMetric(float64(quiet[len(quiet)-1].Microseconds()), "max-µs-quiet")
	b.ReportMetric(float64(reloading[len(reloading)-1].Microseconds()), "max-µs-reloading")
	b.ReportMetric(float64(reloads)/float64(b.N), "reloads/round")
	st := p.Stats()
	var failed uint64
	for _, ps := range st.Plugins {
		failed += ps.Failures
	}
	if failed > 0 || st.Failed > 0 {
		b.Fatalf("%d plugin failures, %d records failed", failed, st.Failed)
	}
}

// BenchmarkReloadGoGuest measures one reload that replaces a Go-guest
// partitioner (examples/plugins/route) by the same module with another
// config, so the reload loads, instantiates and probes a Go guest, with the
// compilation cache warm (the module was compiled when the run started).
// The time is the reload's, from reading the configuration to the swap;
// cpu-ms/reload is the process's CPU time over the same span (on a shared
// machine the wall time also holds the waits for a CPU).
//
//	go test -run '^$' -bench BenchmarkReloadGoGuest -benchtime 20x ./cmd/kpipe/internal/cli/
func BenchmarkReloadGoGuest(b *testing.B) {
	route := plugintest.GoPlugin(b, "examples/plugins/route")
	dir := b.TempDir()
	swapModule(b, dir, route)
	cfg := func(n int) string {
		return fmt.Sprintf(`pipeline "p" {
  topic = "bench"
  partitioner {
    module = "part.wasm"
    config = { key_prefix_routes = { "a-" = %d } }
  }
}
`, n%2)
	}
	_, rl := benchRun(b, dir, cfg(0), filepath.Join(dir, "cache"))
	path := filepath.Join(dir, "k.hcl")
	ctx := context.Background()
	var total, cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.WriteFile(path, []byte(cfg(i+1)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		if _, err := rl.reload(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		cpu += cpuTime() - c0
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/reload")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/reload")
}

// cpuTime is the CPU time the process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestReloadRejects checks that each kind of bad reload is refused with its
// FILE:LINE:COL, counted, and leaves the running chain in place.
func TestReloadRejects(t *testing.T) {
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	dir := t.TempDir()
	swapModule(t, dir, keyhash)
	const base = `pipeline "p" {
  topic = "t"
  partitioner { module = "part.wasm" }
}
`
	bt, rl := benchRun(t, dir, base, "off")
	path := filepath.Join(dir, "k.hcl")
	ctx := context.Background()
	for i, tt := range []struct {
		name, src, want string
	}{
		{"pinned to another hash", strings.Replace(base, `{ module = "part.wasm" }`, `{
    module = "part.wasm"
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  }`, 1), "k.hcl:5:14: error: Module does not match its sha256"},
		{"kafka settings", "kafka {\n  acks = \"1\"\n}\n" + base, "k.hcl:1:1: error: Needs a restart: the kafka settings acks changed"},
		{"topic", strings.Replace(base, `"t"`, `"u"`, 1), `k.hcl:1:1: error: Needs a restart: the pipeline's topic changed from "t" to "u"`},
		{"a module that faults", strings.Replace(base, "  partitioner", fmt.Sprintf("  interceptor \"x\" { module = %q }\n  partitioner", trap), 1),
			`k.hcl:3:3: error: Plugin fails on a synthetic record: interceptor "x", hook kpipe_on_send`},
		{"unknown pipeline", strings.Replace(base, `"p"`, `"q"`, 1), `no pipeline named`},
		{"a source block", strings.Replace(base, "  partitioner", "  source \"kafka\" {\n    topics = [\"in\"]\n    group  = \"g\"\n  }\n  partitioner", 1),
			`k.hcl:3:3: error: Needs a restart: the pipeline's source block changed`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			rl.name = "p"
			v, err := rl.reload(ctx, "test")
			var re *admin.ReloadError
			if !errors.As(err, &re) || v != 1 || !strings.Contains(strings.Join(re.Diagnostics, "\n"), tt.want) {
				t.Fatalf("reload: version %d, %v; want version 1 and %q", v, err, tt.want)
			}
			if got := bt.producer.ChainVersion(); got != 1 {
				t.Errorf("chain version %d after a rejected reload, want 1", got)
			}
			if _, st := rl.describe(); st.Rejected != uint64(i+1) || len(st.LastError) == 0 {
				t.Errorf("reload stats %+v, want %d rejected and the last error", st, i+1)
			}
		})
	}
}

// TestSameSource tells a source block that changed from one that moved in
// its file.
func TestSameSource(t *testing.T) {
	src := func(topic string, line int) *config.Source {
		return &config.Source{Topics: []string{topic}, Group: "g", DefRange: hcl.Range{Filename: "k.hcl", Start: hcl.Pos{Line: line}}}
	}
	for _, tt := range []struct {
		name string
		a, b *config.Source
		want bool
	}{
		{"none", nil, nil, true},
		{"added", nil, src("in", 3), false},
		{"removed", src("in", 3), nil, false},
		{"moved", src("in", 3), src("in", 9), true},
		{"topics changed", src("in", 3), src("in2", 3), false},
	} {
		if got := sameSource(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: sameSource = %v, want %v", tt.name, got, tt.want)
		}
	}
}
