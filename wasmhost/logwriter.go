package wasmhost

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine is the longest line a lineWriter buffers; longer output is
// logged in pieces of this size. It also bounds a message of the log host
// function.
const maxLogLine = 4096

// Defaults of WithLogRateLimit.
const (
	// DefaultLogLinesPerSecond is the default rate at which a plugin's log
	// lines (its log calls, stdout and stderr lines) reach its logger.
	DefaultLogLinesPerSecond = 100
	// DefaultLogBurst is the default number of lines a plugin may log at
	// once before the rate applies.
	DefaultLogBurst = 200
)

// logReportEvery is how often, at most, a plugin's logger says how many of
// its lines the rate limit suppressed.
const logReportEvery = time.Second

// logLimiter is a plugin's budget of log lines, shared by its instances: a
// token bucket of burst lines that refills at rate lines per second. A
// line that finds the bucket empty is suppressed and counted. The count is
// reported in a line of its own, outside the budget, at most once every
// logReportEvery (on the first line, logged or not, after that time), and
// when an instance is closed (flush), so that the log says what it lost.
type logLimiter struct {
	logger hclog.Logger
	rate   float64 // lines per second; 0: no limit
	burst  float64

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	pending    uint64 // suppressed since the last report
	lastReport time.Time

	suppressed atomic.Uint64 // since the plugin was loaded
}

func newLogLimiter(logger hclog.Logger, rate float64, burst int) *logLimiter {
	now := time.Now()
	return &logLimiter{logger: logger, rate: rate, burst: float64(burst), tokens: float64(burst), last: now, lastReport: now}
}

// allow reports whether a line may be logged now, reporting earlier
// suppressed lines first if it is time to.
func (l *logLimiter) allow() bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	var report uint64
	if l.pending > 0 && now.Sub(l.lastReport) >= logReportEvery {
		report, l.pending, l.lastReport = l.pending, 0, now
	}
	ok := l.tokens >= 1
	if ok {
		l.tokens--
	} else {
		l.pending++
		l.suppressed.Add(1)
	}
	l.mu.Unlock()
	if report > 0 {
		l.report(report)
	}
	return ok
}

// flush reports the lines suppressed since the last report, if any: called
// when an instance is closed, so that a plugin's last flood is reported
// too.
func (l *logLimiter) flush() {
	if l.rate <= 0 {
		return
	}
	l.mu.Lock()
	n := l.pending
	l.pending, l.lastReport = 0, time.Now()
	l.mu.Unlock()
	if n > 0 {
		l.report(n)
	}
}

func (l *logLimiter) report(n uint64) {
	l.logger.Warn(fmt.Sprintf("%d log lines of the plugin suppressed: it logs faster than %g lines/s (bursts of %g)", n, l.rate, l.burst),
		"suppressed", n)
}

// lineWriter forwards a guest's stdout or stderr to a logger, one log entry
// per line, within the plugin's log budget. Empty lines are dropped.
type lineWriter struct {
	mu      sync.Mutex
	logger  hclog.Logger
	limit   *logLimiter
	level   hclog.Level
	enabled bool // the logger logs level
	stream  string
	buf     []byte
}

func newLineWriter(logger hclog.Logger, limit *logLimiter, level hclog.Level, stream string) *lineWriter {
	return &lineWriter{logger: logger, limit: limit, level: level, enabled: levelEnabled(logger, level), stream: stream}
}

// Write implements io.Writer. It never fails. Output at a level the logger
// does not log costs only the search for newlines.
func (w *lineWriter) Write(p []byte) (int, error) {
	if !w.enabled {
		return len(p), nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i
		if i < 0 {
			end = len(p)
		}
		if room := maxLogLine - len(w.buf); end > room {
			// Too long for one entry: log what fits, go on with the rest.
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.emit()
			continue
		}
		w.buf = append(w.buf, p[:end]...)
		if i < 0 {
			break
		}
		p = p[i+1:]
		w.emit()
	}
	return n, nil
}

// Flush logs a last line that did not end with a newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}

func (w *lineWriter) emit() {
	line := bytes.TrimSuffix(w.buf, []byte("\r"))
	w.buf = w.buf[:0]
	if len(bytes.TrimSpace(line)) == 0 || !w.limit.allow() {
		return
	}
	w.logger.Log(w.level, logText(line), "stream", w.stream)
}

// logText is a guest's log message as it goes to the log: unchanged if it
// is printable UTF-8 text (tabs included), else with every control
// character and every byte that is not UTF-8 written as a Go escape
// (\x00, \x1b, \u2028, \xff), so that a plugin cannot put NULs, terminal
// escape sequences or line breaks in kpipe's output.
func logText(b []byte) string {
	clean := true
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r != '\t' && !unicode.IsPrint(r) && r != ' ' {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&sb, `\x%02x`, b[i])
		case r == '\t' || r == ' ' || unicode.IsPrint(r):
			sb.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			sb.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return sb.String()
}
