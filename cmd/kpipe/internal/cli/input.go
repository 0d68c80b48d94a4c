package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/kpipe/kpipe/plugins"
)

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

// lineReader reads records, one per line.
type lineReader struct {
	sc     *bufio.Scanner
	format inputFormat
	json   jsonParser
	line   int
	// bytes is the number of input bytes consumed so far, for progress.
	bytes int64
}

func newLineReader(r io.Reader, format inputFormat) *lineReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	lr := &lineReader{sc: sc, format: format}
	// bufio.ScanLines drops "\n" or "\r\n"; count what it consumed.
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		advance, token, err := bufio.ScanLines(data, atEOF)
		lr.bytes += int64(advance)
		return advance, token, err
	})
	return lr
}

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
			return &plugins.Record{Value: append([]byte{}, b...)}, lr.line, nil
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
