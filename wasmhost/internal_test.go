package wasmhost

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/tetratelabs/wazero/experimental"
)

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+10)
	tests := []struct {
		name   string
		writes []string
		want   []string // logged messages, after Flush
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"several in one write, blank lines dropped", []string{"a\nb\n\n \r\nc\n"}, []string{"a", "b", "c"}},
		{"a panic after an empty line", []string{"\n", "panicked at src/lib.rs:3:5:\n"}, []string{"panicked at src/lib.rs:3:5:"}},
		{"carriage return", []string{"dos\r\n"}, []string{"dos"}},
		{"unterminated, flushed", []string{"tail"}, []string{"tail"}},
		{"long line in pieces", []string{long + "\n"}, []string{long[:maxLogLine], "xxxxxxxxxx"}},
		{"exactly the maximum", []string{long[:maxLogLine], "\n"}, []string{long[:maxLogLine]}},
		{"long line across writes", []string{long[:4000], long[:200], "\n"}, []string{long[:maxLogLine], long[:104]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace, DisableTime: true})
			w := newLineWriter(logger, newLogLimiter(logger, 0, 1), hclog.Info, "stdout")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.Flush()
			w.Flush() // nothing left: logs nothing
			var got []string
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				msg, ok := strings.CutPrefix(line, "[INFO]  ")
				if !ok {
					t.Fatalf("unexpected log line %q", line)
				}
				msg, ok = strings.CutSuffix(msg, ": stream=stdout")
				if !ok {
					t.Fatalf("log line %q lacks the stream field", line)
				}
				got = append(got, msg)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("logged %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLogLimiter checks the token bucket: a burst passes, the rest is
// suppressed and counted, and the log says how many lines it lost, at most
// once every logReportEvery and when flushed.
func TestLogLimiter(t *testing.T) {
	var out bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace, DisableTime: true})
	l := newLogLimiter(logger, 10, 5)
	w := newLineWriter(logger, l, hclog.Warn, "stderr")
	for range 100 {
		w.Write([]byte("flood\n"))
	}
	if got := strings.Count(out.String(), "flood"); got != 5 {
		t.Fatalf("%d lines of a burst of 5 logged:\n%s", got, out.String())
	}
	if got := l.suppressed.Load(); got != 95 {
		t.Fatalf("suppressed = %d, want 95", got)
	}
	time.Sleep(logReportEvery) // time to report, and tokens at 10 lines/s
	out.Reset()
	w.Write([]byte("again\n"))
	if want := "[WARN]  95 log lines of the plugin suppressed: it logs faster than 10 lines/s (bursts of 5): suppressed=95\n[WARN]  again: stream=stderr\n"; out.String() != want {
		t.Fatalf("after the flood the log has\n%q\nwant\n%q", out.String(), want)
	}
	// A flood at the end is reported when the instance goes, not
	// before, since a report was made less than logReportEvery ago.
	out.Reset()
	for range 30 {
		w.Write([]byte("tail\n"))
	}
	if strings.Contains(out.String(), "suppressed") {
		t.Fatalf("reported again within %v:\n%s", logReportEvery, out.String())
	}
	l.flush()
	if !strings.Contains(out.String(), "suppressed=") {
		t.Fatalf("flush did not report the suppressed lines:\n%s", out.String())
	}
	// Lines at a level the logger does not log cost no token.
	quiet := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Error})
	ql := newLogLimiter(quiet, 10, 1)
	qw := newLineWriter(quiet, ql, hclog.Info, "stdout")
	for range 10 {
		qw.Write([]byte("info\n"))
	}
	if ql.suppressed.Load() != 0 {
		t.Errorf("lines below the logger's level were counted as suppressed")
	}
}

func TestLimitedMemory(t *testing.T) {
	tests := []struct {
		name string
		// memory returns the memory under test, allocated with an
		// initial capacity of one page.
		memory func() *limitedMemory
		mapped bool // whether the memory must be a mapping
	}{
		{"Allocate", func() *limitedMemory {
			m := &limitedMemory{limit: 4 << 16}
			m.Allocate(1<<16, 1<<32)
			return m
		}, runtime.GOOS == "linux" || runtime.GOOS == "darwin"},
		// The Go slice that Allocate falls back to where it cannot map.
		{"heap", func() *limitedMemory {
			return &limitedMemory{limit: 4 << 16, buf: make([]byte, 0, 1<<16)}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.memory()
			if got := m.mapped != nil; got != tt.mapped {
				t.Fatalf("mapped = %v, want %v", got, tt.mapped)
			}
			var lm experimental.LinearMemory = m
			if b := lm.Reallocate(1 << 16); len(b) != 1<<16 {
				t.Fatalf("initial allocation: %d bytes", len(b))
			}
			b := lm.Reallocate(2 << 16)
			b[len(b)-1] = 7
			b = lm.Reallocate(3 << 16)
			if len(b) != 3<<16 || b[2<<16-1] != 7 {
				t.Fatalf("growth lost contents or length: len %d", len(b))
			}
			for _, x := range b[2<<16:] {
				if x != 0 {
					t.Fatal("new memory is not zeroed")
				}
			}
			if m.refused {
				t.Fatal("refused below the limit")
			}
			if b := lm.Reallocate(4 << 16); len(b) != 4<<16 {
				t.Fatalf("growth to exactly the limit: %d bytes", len(b))
			}
			if b := lm.Reallocate(5 << 16); b != nil || !m.refused {
				t.Fatalf("growth beyond the limit: %d bytes, refused=%v", len(b), m.refused)
			}
			lm.Free()
			if m.buf != nil || m.mapped != nil {
				t.Fatal("Free kept the memory")
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	tests := []struct {
		in   uint32
		want hclog.Level
	}{
		{0, hclog.Trace}, {1, hclog.Trace}, {2, hclog.Debug}, {3, hclog.Info}, {4, hclog.Warn},
		{5, hclog.Error}, {6, hclog.Error}, {0xffffffff, hclog.Trace}, // -1
	}
	for _, tt := range tests {
		if got := logLevel(tt.in); got != tt.want {
			t.Errorf("logLevel(%d) = %v, want %v", int32(tt.in), got, tt.want)
		}
	}
}

func TestFaultReasonString(t *testing.T) {
	for r := FaultTrap; r < numFaultReasons; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "FaultReason(") {
			t.Errorf("reason %d has no name", r)
		}
	}
	if s := FaultReason(200).String(); s != "FaultReason(200)" {
		t.Errorf("unknown reason = %q", s)
	}
}

// testHost returns a Host closed when the test ends, for the tests inside
// the package (helpers_test.go has the same for the external ones).
func testHost(tb testing.TB, opts ...HostOption) *Host {
	tb.Helper()
	h, err := New(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// readWAT returns the committed module built from the .wat at path
// (relative to the repository root).
func readWAT(tb testing.TB, path string) []byte {
	tb.Helper()
	wasm, err := os.ReadFile(plugintest.WAT(tb, path))
	if err != nil {
		tb.Fatal(err)
	}
	return wasm
}
