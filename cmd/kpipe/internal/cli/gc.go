package cli

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// setGC sets GOGC to percent and the soft memory limit (GOMEMLIMIT) to
// limit bytes, each unless the environment sets it (the user's choice wins)
// or the value is negative, and returns what restores the previous
// settings. kpipe's long-running commands allocate a few hundred bytes per
// record that die within milliseconds, so with a small live heap the
// collector's fixed cost per cycle, not its marking, is what a record pays
// for: run and gateway collect less often than Go's default, each bounded
// by a soft memory limit (tuneGC, tuneRunGC).
func setGC(percent int, limit int64) (restore func()) {
	var undo []func()
	if os.Getenv("GOGC") == "" && percent >= 0 {
		prev := debug.SetGCPercent(percent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if os.Getenv("GOMEMLIMIT") == "" && limit >= 0 {
		prev := debug.SetMemoryLimit(limit)
		undo = append(undo, func() { debug.SetMemoryLimit(prev) })
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}

// runHeapHeadroom is how much garbage `kpipe run` lets the heap gather
// between collections at least: GOGC is raised until the heap may grow by
// this much over what is live (at most GOGC runMaxGCPercent). With the
// default GOGC, `kpipe run --format raw` with no plugins (about 10MB live)
// collected some 60 times per million records and used 1.4 times the CPU
// of scripts/minprod; with GOGC 400 it used 0.95 times (interleaved runs
// against the embedded broker; python3 scripts/bench_cli.py --only
// minprod,kpipe-raw,kcat,kpipe-json reports both). A pipeline of Go plugins
// (the quickstart: about 36MB live after loading) keeps the default GOGC:
// its collections are few, and a higher GOGC only raised its peak RSS.
const (
	runHeapHeadroom = 32 << 20
	runMaxGCPercent = 400
)

// runGC returns GOGC and the soft memory limit of `kpipe run` for a process
// with live bytes of heap after loading its pipeline and a client that
// buffers at most buffered bytes of records (0: no byte limit): GOGC such
// that the heap may grow by runHeapHeadroom over live, between 100 and
// runMaxGCPercent; the limit where the default GOGC would put the heap
// with the buffer full, so that a full buffer makes the collector run more
// often rather than the heap grow beyond that. Without a byte limit on the
// buffer there is no such bound, and the settings stay Go's (-1, -1).
func runGC(live, buffered int64) (percent int, limit int64) {
	if buffered <= 0 {
		return -1, -1
	}
	percent = runMaxGCPercent
	if live > 0 {
		percent = int(min(max(100*runHeapHeadroom/live, 100), runMaxGCPercent))
	}
	return percent, 2*(live+buffered) + 64<<20
}

// tuneRunGC collects, reads the live heap, and sets the garbage collector
// for `kpipe run` (runGC, setGC). It is called once the pipeline's plugins
// are loaded, when the heap holds what the run keeps.
func (e *env) tuneRunGC(buffered int64) (restore func()) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	var live int64
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = int64(s[0].Value.Uint64())
	}
	percent, limit := runGC(live, buffered)
	e.log.Debug("garbage collector", "live_heap", live, "gogc", percent, "soft_memory_limit", limit,
		"env_gogc", os.Getenv("GOGC"), "env_gomemlimit", os.Getenv("GOMEMLIMIT"))
	return setGC(percent, limit)
}
