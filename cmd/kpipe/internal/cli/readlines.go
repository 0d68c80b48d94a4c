package cli

import (
	"errors"
	"io"

	"github.com/kpipe/kpipe/plugins"
)

// lineBatch is the most lines readLines hands over at once. A channel
// operation per batch rather than per line keeps the reading goroutine and
// run's loop from waking each other for every record (BenchmarkReadLines).
const lineBatch = 256

// inputLine is one result of lineReader.next, passed from the reading
// goroutine; offset is the input position after the line.
type inputLine struct {
	rec    *plugins.Record
	line   int
	offset int64
	err    error
}

// errStopped ends reading when run no longer wants lines.
var errStopped = errors.New("reading stopped")

// readLines reads the lines of in and sends them to out in batches of at most
// size lines (run uses lineBatch), in order, ending with an error (io.EOF at the end of the input);
// it stops early when stop is closed. A batch also goes out before every read
// from in, which may block (stdin from a terminal or a pipe), so lines that
// were read are never held back waiting for more input.
func readLines(in io.Reader, format inputFormat, size int, out chan<- []inputLine, stop <-chan struct{}) {
	batch := make([]inputLine, 0, size)
	send := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case out <- batch:
			batch = make([]inputLine, 0, size)
			return true
		case <-stop:
			return false
		}
	}
	lr := newLineReader(flushingReader{in, send}, format)
	for {
		r, line, err := lr.next()
		if errors.Is(err, errStopped) {
			return
		}
		batch = append(batch, inputLine{rec: r, line: line, offset: lr.bytes, err: err})
		if err != nil && !isLineError(err) {
			send()
			return
		}
		if len(batch) == size && !send() {
			return
		}
	}
}

// isLineError says whether err is a malformed line, after which reading goes
// on.
func isLineError(err error) bool {
	var le *lineError
	return errors.As(err, &le)
}

// flushingReader calls flush before every read from r, and fails the read
// with errStopped if flush returns false.
type flushingReader struct {
	r     io.Reader
	flush func() bool
}

func (f flushingReader) Read(p []byte) (int, error) {
	if !f.flush() {
		return 0, errStopped
	}
	return f.r.Read(p)
}
