package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

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
		r, err := parseJSONRecord(b)
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

// jsonRecord is one JSON input line.
type jsonRecord struct {
	Topic       *string          `json:"topic"`
	Key         json.RawMessage  `json:"key"`
	KeyBase64   *string          `json:"key_base64"`
	Value       json.RawMessage  `json:"value"`
	ValueBase64 *string          `json:"value_base64"`
	Headers     json.RawMessage  `json:"headers"`
	Partition   *int32           `json:"partition"`
	Timestamp   *json.RawMessage `json:"timestamp"`
}

// parseJSONRecord decodes one JSON line:
//
//	{"topic": "t", "key": "k", "value": {"any": "json"}, "headers": {"h": "v"},
//	 "partition": 2, "timestamp": 1700000000000}
//
// key and value: a JSON string is sent as its text; any other JSON value as
// its JSON text; null or absent is null (a null value is a tombstone).
// key_base64 and value_base64 instead: the bytes a standard base64 string
// encodes, for data that is not UTF-8 text. headers: an object of string (or
// null) values, sent in the order given. timestamp: milliseconds since the
// epoch, or an RFC 3339 string.
//
// A line that is not valid UTF-8, or whose strings escape half of a UTF-16
// surrogate pair, is malformed: encoding/json would replace those bytes with
// U+FFFD and send something else than what the line holds.
func parseJSONRecord(line []byte) (*plugins.Record, error) {
	if err := checkJSONText(line); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var jr jsonRecord
	if err := dec.Decode(&jr); err != nil {
		return nil, fmt.Errorf("invalid JSON record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON record: more than one JSON value on the line")
	}
	r := &plugins.Record{}
	if jr.Topic != nil {
		if *jr.Topic == "" {
			return nil, errors.New(`"topic" must not be empty`)
		}
		r.Topic = *jr.Topic
	}
	var err error
	if r.Key, err = jsonDataOrBase64("key", jr.Key, jr.KeyBase64); err != nil {
		return nil, err
	}
	if r.Value, err = jsonDataOrBase64("value", jr.Value, jr.ValueBase64); err != nil {
		return nil, err
	}
	if r.Headers, err = jsonHeaders(jr.Headers); err != nil {
		return nil, fmt.Errorf(`"headers": %w`, err)
	}
	if jr.Partition != nil {
		if *jr.Partition < 0 {
			return nil, fmt.Errorf(`"partition" must not be negative, got %d`, *jr.Partition)
		}
		r.SetPartition(*jr.Partition)
	}
	if jr.Timestamp != nil {
		if r.Timestamp, err = jsonTimestamp(*jr.Timestamp); err != nil {
			return nil, fmt.Errorf(`"timestamp": %w`, err)
		}
	}
	return r, nil
}

// jsonDataOrBase64 decodes the field name, given either as JSON (raw) or as
// name_base64 (b64), not both.
func jsonDataOrBase64(name string, raw json.RawMessage, b64 *string) ([]byte, error) {
	if b64 == nil {
		d, err := jsonData(raw)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		return d, nil
	}
	if len(raw) > 0 {
		return nil, fmt.Errorf("%q and %q: give one of them, not both", name, name+"_base64")
	}
	d, err := base64.StdEncoding.DecodeString(*b64)
	if err != nil {
		return nil, fmt.Errorf("%q: not standard base64: %w", name+"_base64", err)
	}
	return d, nil
}

// checkJSONText returns an error naming the first byte of line that is not
// valid UTF-8, or the first \u escape that is half of a surrogate pair.
func checkJSONText(line []byte) error {
	if !utf8.Valid(line) {
		for i := 0; i < len(line); {
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n <= 1 {
				return fmt.Errorf("column %d: byte 0x%02x is not valid UTF-8: JSON input must be UTF-8 text; "+
					"give bytes that are not with key_base64 / value_base64", i+1, line[i])
			}
			i += n
		}
	}
	if !bytes.Contains(line, []byte(`\u`)) {
		return nil
	}
	inString := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(line):
			if line[i+1] != 'u' {
				i++ // a one-character escape, possibly \"
				continue
			}
			hi, ok := hex4(line, i+2)
			switch {
			case !ok:
				// Not an escape: the JSON decoder reports it.
			case hi >= 0xd800 && hi < 0xdc00:
				lo, ok := -1, i+7 < len(line) && line[i+6] == '\\' && line[i+7] == 'u'
				if ok {
					lo, ok = hex4(line, i+8)
				}
				if !ok || lo < 0xdc00 || lo >= 0xe000 {
					return fmt.Errorf("column %d: %s is half of a UTF-16 surrogate pair, not a character; "+
						"give bytes that are not UTF-8 text with key_base64 / value_base64", i+1, line[i:i+6])
				}
				i += 11
				continue
			case hi >= 0xdc00 && hi < 0xe000:
				return fmt.Errorf("column %d: %s is half of a UTF-16 surrogate pair, not a character; "+
					"give bytes that are not UTF-8 text with key_base64 / value_base64", i+1, line[i:i+6])
			}
			i += 5
		}
	}
	return nil
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (int, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	return int(v), err == nil
}

func jsonData(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func jsonHeaders(raw json.RawMessage) ([]plugins.Header, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	// Decode token by token to keep the order of the object's members.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("must be an object of string values")
	}
	var hs []plugins.Header
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := t.(string)
		var v *string
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("header %q: must be a string or null", name)
		}
		h := plugins.Header{Key: name}
		if v != nil {
			h.Value = []byte(*v)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func jsonTimestamp(raw json.RawMessage) (time.Time, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("want milliseconds since the epoch or an RFC 3339 time: %w", err)
		}
		return t, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("want milliseconds since the epoch or an RFC 3339 time, got %s", raw)
	}
	return time.UnixMilli(ms), nil
}
