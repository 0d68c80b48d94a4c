package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kpipe/kpipe/plugins"
)

// referenceRecord decodes a line with encoding/json, the obvious way to read
// the format of docs/cli.md; FuzzJSONParser checks jsonParser against it.
func referenceRecord(line []byte) (*plugins.Record, error) {
	var jr struct {
		Topic       *string          `json:"topic"`
		Key         json.RawMessage  `json:"key"`
		KeyBase64   *string          `json:"key_base64"`
		Value       json.RawMessage  `json:"value"`
		ValueBase64 *string          `json:"value_base64"`
		Headers     json.RawMessage  `json:"headers"`
		Partition   *int32           `json:"partition"`
		Timestamp   *json.RawMessage `json:"timestamp"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one value")
	}
	r := &plugins.Record{}
	if jr.Topic != nil {
		if *jr.Topic == "" {
			return nil, errors.New("empty topic")
		}
		r.Topic = *jr.Topic
	}
	data := func(raw json.RawMessage) ([]byte, error) {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		if raw[0] == '"' {
			var s string
			err := json.Unmarshal(raw, &s)
			return []byte(s), err
		}
		var buf bytes.Buffer
		err := json.Compact(&buf, raw)
		return buf.Bytes(), err
	}
	dataOrBase64 := func(raw json.RawMessage, b64 *string) ([]byte, error) {
		if b64 == nil {
			return data(raw)
		}
		if len(raw) > 0 {
			return nil, errors.New("both")
		}
		return base64.StdEncoding.DecodeString(*b64)
	}
	var err error
	if r.Key, err = dataOrBase64(jr.Key, jr.KeyBase64); err != nil {
		return nil, err
	}
	if r.Value, err = dataOrBase64(jr.Value, jr.ValueBase64); err != nil {
		return nil, err
	}
	if len(jr.Headers) > 0 && string(jr.Headers) != "null" {
		hd := json.NewDecoder(bytes.NewReader(jr.Headers))
		if t, err := hd.Token(); err != nil || t != json.Delim('{') {
			return nil, errors.New("headers not an object")
		}
		for hd.More() {
			t, err := hd.Token()
			if err != nil {
				return nil, err
			}
			var v *string
			if err := hd.Decode(&v); err != nil {
				return nil, err
			}
			h := plugins.Header{Key: t.(string)}
			if v != nil {
				h.Value = []byte(*v)
			}
			r.Headers = append(r.Headers, h)
		}
	}
	if jr.Partition != nil {
		if *jr.Partition < 0 {
			return nil, errors.New("negative partition")
		}
		r.SetPartition(*jr.Partition)
	}
	if jr.Timestamp != nil {
		raw := *jr.Timestamp
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			if r.Timestamp, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return nil, err
			}
		} else {
			ms, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return nil, err
			}
			r.Timestamp = time.UnixMilli(ms)
		}
	}
	return r, nil
}

// repeatsField says whether the line's object names a field twice (in any
// case). encoding/json keeps the first value's type error even when a later
// value replaces it, where jsonParser judges the value that counts.
func repeatsField(line []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		name := strings.ToLower(t.(string))
		if seen[name] {
			return true
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

func equalRecords(a, b *plugins.Record) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	x, y := *a, *b
	x.Timestamp, y.Timestamp = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// surrogateEscape matches a \u escape of a UTF-16 surrogate (or text that
// looks like one), which encoding/json decodes to U+FFFD when it is half of a
// pair, where jsonParser rejects the line; TestParseJSONRecord covers them.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// FuzzJSONParser checks jsonParser against encoding/json: on a line of valid
// UTF-8 and valid JSON with no surrogate escapes, both accept or both reject
// it, and accept it as the same record; jsonParser accepts no line that is
// not valid JSON, and rejects every line with invalid UTF-8.
func FuzzJSONParser(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"key":"k","value":"v"}`, `{"key":"","value":""}`,
		`{"value": {"a": [1, 2.5e3, -0], "b": null, "c": true, "d": "x\"y"}}`,
		`{"key": 42, "value": false}`, `{"headers":{"z":"1","a":null,"m":"\u00e9"}}`,
		`{"topic":"t","partition":3,"timestamp":1767323045000}`,
		`{"timestamp":"2026-01-02T03:04:05.123+02:00"}`, `{"partition":0}`,
		`{"vaule":"x"}`, `{} {}`, `[1]`, `{"headers":{"h":1}}`, `{"partition":-1}`,
		`{"partition":1.5}`, `{"timestamp":"yesterday"}`, `{"topic":""}`,
		`{"Key":"\ud83d\ude00\\\/\b\f\n\r\t"}`, `{"value":"a` + "\xff" + `"}`,
		`{"KEY":"a","key":null}`, ` { "value" : [ ] } `, `{"partition":2147483648}`,
		`{"key_base64":"AP8=","value_base64":null}`, `{"value":"x","value_base64":"AA=="}`,
	} {
		f.Add([]byte(s))
	}
	var p jsonParser
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := p.parse(line)
		if err == nil && !json.Valid(line) {
			t.Fatalf("%q: accepted a line that is not valid JSON: %#v", line, got)
		}
		if !utf8.Valid(line) {
			if err == nil {
				t.Fatalf("%q: accepted invalid UTF-8", line)
			}
			return
		}
		if !json.Valid(line) || repeatsField(line) || surrogateEscape.Match(line) {
			return
		}
		want, werr := referenceRecord(line)
		switch {
		case (err == nil) != (werr == nil):
			t.Fatalf("%q: error %v, encoding/json's %v", line, err, werr)
		case err == nil && !equalRecords(got, want):
			t.Fatalf("%q:\ngot  %#v\nwant %#v", line, got, want)
		}
	})
}

// TestJSONParserOwnBytes checks that a record's key, value and headers do not
// share writable memory: appending to one never changes another, and parsing
// the next line changes neither.
func TestJSONParserOwnBytes(t *testing.T) {
	var p jsonParser
	r, err := p.parse([]byte(`{"key":"k","value":"vv","headers":{"a":"1","b":"2"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(r.Key, 'X')
	_ = append(r.Value, 'Y')
	_ = append(r.Headers[0].Value, 'Z')
	if _, err := p.parse([]byte(`{"key":"other","value":"other","headers":{"a":"other"}}`)); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %s %s=%s %s=%s", r.Key, r.Value, r.Headers[0].Key, r.Headers[0].Value, r.Headers[1].Key, r.Headers[1].Value)
	if want := "k vv a=1 b=2"; got != want {
		t.Errorf("record = %s, want %s", got, want)
	}
}

// TestJSONParserAllocs bounds the allocations of a typical line: the record,
// its bytes and its headers' slice; topic and header names are reused.
func TestJSONParserAllocs(t *testing.T) {
	line := []byte(`{"topic":"orders","key":"eu-1001","value":{"customer":"ada","amount":12.5},"headers":{"channel":"web"}}`)
	var p jsonParser
	if _, err := p.parse(line); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = p.parse(line) }); n > 3 {
		t.Errorf("%v allocations per line, want at most 3", n)
	}
}

// TestSkipPlainASCII checks the word-at-a-time scan against plainASCII: every
// byte value, at every position of a line longer than two words, stops the
// scan exactly where it is if plainASCII does not hold it, and not at all
// otherwise; and the scan starts where it is told.
func TestSkipPlainASCII(t *testing.T) {
	const n = 19
	for c := 0; c < 256; c++ {
		for i := 0; i < n; i++ {
			line := bytes.Repeat([]byte{'a'}, n)
			line[i] = byte(c)
			want := n
			if !plainASCII[c] {
				want = i
			}
			if got := skipPlainASCII(line, 0); got != want {
				t.Fatalf("byte 0x%02x at %d: stopped at %d, want %d", c, i, got, want)
			}
			if got := skipPlainASCII(line, i); got != want {
				t.Fatalf("byte 0x%02x at %d, from %d: stopped at %d, want %d", c, i, i, got, want)
			}
		}
	}
}
