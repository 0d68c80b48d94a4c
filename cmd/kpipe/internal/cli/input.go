package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kpipe/kpipe/plugins"
)

// openInput opens the --input file at path. A directory is refused here,
// with its name, rather than failing at the first read, after the run has
// started.
func openInput(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory, not a file of records", path)
	}
	return f, nil
}

// maxLine is the longest input line run accepts.
const maxLine = 64 << 20

// inputFormat is the --format of run and plugin test.
type inputFormat string

const (
	formatJSON inputFormat = "json"
	formatRaw  inputFormat = "raw"
)

func parseFormat(s string) (inputFormat, error) {
	switch f := inputFormat(s); f {
	case formatJSON, formatRaw:
		return f, nil
	}
	return "", usageErrorf("--format %q: want json or raw", s)
}

// lineReader reads records, one per line. The records and their bytes come
// from an arena.
type lineReader struct {
	sc     *bufio.Scanner
	format inputFormat
	json   jsonParser
	arena  recordArena
	line   int
	// bytes is the number of input bytes consumed so far, for progress.
	bytes int64
}

func newLineReader(r io.Reader, format inputFormat) *lineReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	lr := &lineReader{sc: sc, format: format}
	lr.json.arena = &lr.arena
	// bufio.ScanLines drops "\n" or "\r\n"; count what it consumed.
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		advance, token, err := bufio.ScanLines(data, atEOF)
		lr.bytes += int64(advance)
		return advance, token, err
	})
	return lr
}

// utf8BOM is the UTF-8 encoding of the byte order mark, U+FEFF.
var utf8BOM = []byte("\xef\xbb\xbf")

// lineError is a malformed input line.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.err) }

// next returns the next record and the line it came from. It returns a
// *lineError for a malformed line (reading can go on), io.EOF at the end, and
// any other error when the input cannot be read further.
func (lr *lineReader) next() (*plugins.Record, int, error) {
	for lr.sc.Scan() {
		lr.line++
		b := lr.sc.Bytes()
		if lr.format == formatRaw {
			// Every line is a value, including empty lines (empty,
			// not null values).
			r := lr.arena.record()
			r.Value = lr.arena.copy(b)
			return r, lr.line, nil
		}
		if lr.line == 1 {
			// A UTF-8 byte order mark before the first object, as
			// some editors on Windows write, is not part of it
			// (RFC 8259, section 8.1, lets a parser ignore it).
			b = bytes.TrimPrefix(b, utf8BOM)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		r, err := lr.json.parse(b)
		if err != nil {
			return nil, lr.line, &lineError{lr.line, err}
		}
		return r, lr.line, nil
	}
	if err := lr.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, lr.line + 1, fmt.Errorf("line %d: longer than %d bytes", lr.line+1, maxLine)
		}
		return nil, lr.line, fmt.Errorf("reading input: %w", err)
	}
	return nil, lr.line, io.EOF
}

// The blocks of a recordArena: records are allocated arenaRecords at a time,
// bytes in blocks of arenaBytes, and a byte slice longer than arenaOwnBytes
// gets an allocation of its own, so that a block wastes at most that much at
// its end. BenchmarkReadLines and BenchmarkParseJSONRecord measure them.
const (
	arenaRecords  = 256
	arenaBytes    = 32 << 10
	arenaOwnBytes = arenaBytes / 8
)

// recordArena allocates the records that run reads, and their keys, values
// and header values, in blocks rather than one by one: a line costs no
// allocation of its own in the common case, where it used to cost two or
// three. A block stays in memory while any record or byte slice in it is
// used; records are produced roughly in the order they were read, so that is
// about as long as the newest of them waits to be delivered. The zero value
// is ready to use; a recordArena is not safe for concurrent use.
type recordArena struct {
	recs []plugins.Record
	data []byte
}

// record returns a new, zero record.
func (a *recordArena) record() *plugins.Record {
	if len(a.recs) == 0 {
		a.recs = make([]plugins.Record, arenaRecords)
	}
	r := &a.recs[0]
	a.recs = a.recs[1:]
	return r
}

// copy returns a copy of b, never nil (an empty value is not a null one),
// with its capacity capped at its length, so that appending to it never
// writes over the bytes of another record or field.
func (a *recordArena) copy(b []byte) []byte {
	n := len(b)
	if n > arenaOwnBytes {
		return append(make([]byte, 0, n), b...)
	}
	if a.data == nil || cap(a.data)-len(a.data) < n {
		a.data = make([]byte, 0, arenaBytes)
	}
	start := len(a.data)
	a.data = append(a.data, b...)
	return a.data[start:len(a.data):len(a.data)]
}
