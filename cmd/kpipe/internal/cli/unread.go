package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// unread is what a run's summary says of the input lines it left unread
// when it stopped before the end of its input.
type unread struct {
	why     string // why reading stopped; empty if it did not stop early
	n       int    // lines after the last one read
	atLeast bool   // n is a lower bound: the input did not end within drainFor
	unknown bool   // the lines could not be counted
}

func (u unread) String() string {
	switch {
	case u.unknown:
		return fmt.Sprintf("the rest of the input (not counted: it is not a file) — reading stopped: %s", u.why)
	case u.atLeast:
		return fmt.Sprintf("at least %d lines (the input had not ended after %v) — reading stopped: %s", u.n, drainFor, u.why)
	}
	return fmt.Sprintf("%d lines — reading stopped: %s", u.n, u.why)
}

// drainFor bounds how long countUnread reads on from an input that is not a
// regular file.
const drainFor = time.Second

// countUnread counts the lines of the input after line last, the last one
// the run read, when it stopped reading early for the reason why. A regular
// file (including a redirected stdin) is counted from its contents, which
// costs one read of the file; other input is read on through pending (lines
// the run received and did not send) and then lines, the reading goroutine's
// output, for at most drainFor, and not at all after an interrupt (the user
// wants the run to end) or once the reader gave up.
func countUnread(in io.Reader, pending []inputLine, lines <-chan []inputLine, last int, why string) unread {
	u := unread{why: why}
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total, err := countLines(f)
			if err == nil {
				u.n = max(0, total-last)
				return u
			}
		}
	}
	if why == "interrupted" {
		u.unknown = true
		return u
	}
	seen := last
	// see takes one line; it returns true once the count is known.
	see := func(il inputLine) bool {
		var le *lineError
		switch {
		case errors.Is(il.err, io.EOF):
			u.n = max(0, il.line-last)
			return true
		case il.err != nil && !errors.As(il.err, &le):
			// The reader stopped (a line over the limit, a read
			// error): what follows is not counted.
			u.unknown = true
			return true
		}
		seen = il.line
		return false
	}
	for _, il := range pending {
		if see(il) {
			return u
		}
	}
	timer := time.NewTimer(drainFor)
	defer timer.Stop()
	for {
		select {
		case batch := <-lines:
			for _, il := range batch {
				if see(il) {
					return u
				}
			}
		case <-timer.C:
			u.n, u.atLeast = seen-last, true
			return u
		}
	}
}

// countLines counts the lines of f as the input reader numbers them: every
// newline ends one, and a last line without one counts too. It reads f with
// ReadAt, leaving its offset alone.
func countLines(f *os.File) (int, error) {
	buf := make([]byte, 1<<20)
	var (
		off   int64
		n     int
		lastB byte = '\n'
	)
	for {
		k, err := f.ReadAt(buf, off)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			lastB = buf[k-1]
			off += int64(k)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if lastB != '\n' {
		n++
	}
	return n, nil
}
