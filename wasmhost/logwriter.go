package wasmhost

import (
	"bytes"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine is the longest line a lineWriter buffers; longer output is
// logged in pieces of this size.
const maxLogLine = 4096

// lineWriter forwards a guest's stdout or stderr to a logger, one log entry
// per line.
type lineWriter struct {
	mu     sync.Mutex
	logger hclog.Logger
	level  hclog.Level
	stream string
	buf    []byte
}

func newLineWriter(logger hclog.Logger, level hclog.Level, stream string) *lineWriter {
	return &lineWriter{logger: logger, level: level, stream: stream}
}

// Write implements io.Writer. It never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
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
	w.logger.Log(w.level, string(line), "stream", w.stream)
	w.buf = w.buf[:0]
}
