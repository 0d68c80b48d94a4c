package wasmhost_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// countingWriter counts the bytes and lines a logger writes, and keeps
// the lines that mention suppression.
type countingWriter struct {
	bytes, lines atomic.Int64
	reports      logBuffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes.Add(int64(len(p)))
	w.lines.Add(int64(strings.Count(string(p), "\n")))
	if strings.Contains(string(p), "suppressed") {
		w.reports.Write(p)
	}
	return len(p), nil
}

// TestOutputFloodBounded runs a plugin that writes 100 MiB of short lines to
// stderr in one call (flood.wat): the log receives at most the burst plus
// the rate's worth of lines for the time the call took, plus the reports;
// the rest is counted in LogLinesSuppressed and the log says how many.
func TestOutputFloodBounded(t *testing.T) {
	var w countingWriter
	logger := hclog.New(&hclog.LoggerOptions{Output: &w, Level: hclog.Warn})
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "flood", wat(t, "flood"), plugins.KindInterceptor,
		wasmhost.WithLogger(logger), wasmhost.WithCallTimeout(0), wasmhost.WithPoolSize(1))
	start := time.Now()
	if _, err := p.OnSend(ctx, modeRecord(0)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if err := p.Close(ctx); err != nil { // reports what the flood's end lost
		t.Fatal(err)
	}
	const written = 1600 * 1024 // lines of 64 bytes: 100 MiB
	lines := w.lines.Load()
	maxLines := int64(wasmhost.DefaultLogBurst + (wasmhost.DefaultLogLinesPerSecond+1)*(elapsed.Seconds()+1) + 2)
	st := p.Stats()
	t.Logf("100 MiB written to stderr in %v: %d bytes in %d lines logged, %d suppressed", elapsed, w.bytes.Load(), lines, st.LogLinesSuppressed)
	if lines > maxLines {
		t.Errorf("%d lines logged, want at most %d", lines, maxLines)
	}
	if lines < wasmhost.DefaultLogBurst {
		t.Errorf("%d lines logged, want at least the burst of %d", lines, wasmhost.DefaultLogBurst)
	}
	// Every line written was either logged or suppressed; the reports
	// are lines of their own.
	reports := int64(strings.Count(w.reports.String(), "\n"))
	if got := int64(st.LogLinesSuppressed) + lines - reports; got != written {
		t.Errorf("logged %d (of which %d reports) + suppressed %d = %d lines, want %d", lines, reports, st.LogLinesSuppressed, got, written)
	}
	if !strings.Contains(w.reports.String(), "log lines of the plugin suppressed") || !strings.Contains(w.reports.String(), "plugin=flood") {
		t.Errorf("the log does not say that lines were suppressed:\n%s", w.reports.String())
	}
}

// TestLogCallsRateLimited checks that log host function calls share the
// budget: 300 calls that each log one line (hostcalls.wat mode 1) log the
// burst and suppress the rest, and WithLogRateLimit(0, 1) turns the limit
// off.
func TestLogCallsRateLimited(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		opts []wasmhost.PluginOption
		want int64
	}{
		{"limited", []wasmhost.PluginOption{wasmhost.WithLogRateLimit(0.001, 50)}, 50},
		{"unlimited", []wasmhost.PluginOption{wasmhost.WithLogRateLimit(0, 1)}, 300},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w countingWriter
			logger := hclog.New(&hclog.LoggerOptions{Output: &w, Level: hclog.Info})
			p := load(t, h, "chatty", wat(t, "hostcalls"), plugins.KindInterceptor, append(tt.opts, wasmhost.WithLogger(logger))...)
			defer p.Close(ctx)
			for range 300 {
				if _, err := p.OnSend(ctx, modeRecord(1)); err != nil {
					t.Fatal(err)
				}
			}
			if got := w.lines.Load(); got != tt.want {
				t.Errorf("%d lines logged, want %d", got, tt.want)
			}
			if got := p.Stats().LogLinesSuppressed; got != uint64(300-tt.want) {
				t.Errorf("LogLinesSuppressed = %d, want %d", got, 300-tt.want)
			}
		})
	}
	if _, err := h.Load(ctx, "bad", wat(t, "noop"), 0, wasmhost.WithLogRateLimit(-1, 0)); err == nil ||
		!strings.Contains(err.Error(), "log rate limit") {
		t.Errorf("bad log rate limit: %v", err)
	}
}

// TestHostLogLinesSuppressed checks that Host.LogLinesSuppressed sums the
// lines suppressed per plugin name, keeps the count of a closed plugin, and
// adds a later plugin of the same name to it.
func TestHostLogLinesSuppressed(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Info})
	chatty := func() *wasmhost.Plugin {
		p := load(t, h, "chatty", wat(t, "hostcalls"), plugins.KindInterceptor, wasmhost.WithLogRateLimit(0.001, 50), wasmhost.WithLogger(logger))
		for range 300 {
			if _, err := p.OnSend(ctx, modeRecord(1)); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	quiet := load(t, h, "quiet", wat(t, "noop"), plugins.KindInterceptor)
	defer quiet.Close(ctx)
	p := chatty()
	if got := h.LogLinesSuppressed(); len(got) != 1 || got["chatty"] != 250 {
		t.Errorf("while loaded: LogLinesSuppressed() = %v, want map[chatty:250]", got)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.LogLinesSuppressed(); len(got) != 1 || got["chatty"] != 250 {
		t.Errorf("once closed: LogLinesSuppressed() = %v, want map[chatty:250]", got)
	}
	p = chatty()
	defer p.Close(ctx)
	if got := h.LogLinesSuppressed(); len(got) != 1 || got["chatty"] != 500 {
		t.Errorf("with a second plugin of the name: LogLinesSuppressed() = %v, want map[chatty:500]", got)
	}
}
