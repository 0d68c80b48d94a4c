package cli

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

func TestParseJSONRecord(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		line    string
		want    *plugins.Record
		wantErr string
	}{
		{name: "empty object is a tombstone with null key", line: `{}`, want: &plugins.Record{}},
		{name: "strings", line: `{"key":"k","value":"v"}`,
			want: &plugins.Record{Key: []byte("k"), Value: []byte("v")}},
		{name: "empty string is not null", line: `{"key":"","value":""}`,
			want: &plugins.Record{Key: []byte{}, Value: []byte{}}},
		{name: "json value is its text", line: `{"value": {"a": [1, 2], "b": null}}`,
			want: &plugins.Record{Value: []byte(`{"a":[1,2],"b":null}`)}},
		{name: "numbers and bools", line: `{"key": 42, "value": true}`,
			want: &plugins.Record{Key: []byte("42"), Value: []byte("true")}},
		{name: "explicit null", line: `{"key":null,"value":null}`, want: &plugins.Record{}},
		{name: "headers keep order", line: `{"headers":{"z":"1","a":null,"m":""}}`,
			want: &plugins.Record{Headers: []plugins.Header{{Key: "z", Value: []byte("1")}, {Key: "a"}, {Key: "m", Value: []byte{}}}}},
		{name: "partition topic timestamp ms", line: `{"topic":"t","partition":3,"timestamp":1767323045000}`,
			want: &plugins.Record{Topic: "t", Partition: 3, HasPartition: true, Timestamp: time.UnixMilli(1767323045000)}},
		{name: "timestamp rfc3339", line: `{"timestamp":"2026-01-02T03:04:05Z"}`,
			want: &plugins.Record{Timestamp: ts}},
		{name: "partition zero is explicit", line: `{"partition":0}`,
			want: &plugins.Record{HasPartition: true}},
		{name: "not json", line: `key=value`, wantErr: "invalid JSON record"},
		{name: "unknown field", line: `{"vaule":"x"}`, wantErr: `unknown field "vaule"`},
		{name: "two values", line: `{} {}`, wantErr: "more than one JSON value"},
		{name: "array", line: `[1]`, wantErr: "invalid JSON record"},
		{name: "header not string", line: `{"headers":{"h":1}}`, wantErr: `header "h": must be a string or null`},
		{name: "headers not object", line: `{"headers":["h"]}`, wantErr: "must be an object"},
		{name: "negative partition", line: `{"partition":-1}`, wantErr: "must not be negative"},
		{name: "fractional partition", line: `{"partition":1.5}`, wantErr: "invalid JSON record"},
		{name: "bad timestamp", line: `{"timestamp":"yesterday"}`, wantErr: "RFC 3339"},
		{name: "float timestamp", line: `{"timestamp":1.5}`, wantErr: "milliseconds"},
		{name: "empty topic", line: `{"topic":""}`, wantErr: "must not be empty"},
		{name: "escapes are decoded in strings", line: `{"key":"a\"b\\\u00e9\ud83d\ude00\n","headers":{"h\u0031":"\t"}}`,
			want: &plugins.Record{Key: []byte("a\"b\\é😀\n"), Headers: []plugins.Header{{Key: "h1", Value: []byte("\t")}}}},
		{name: "escapes are kept in JSON text", line: `{"value":["a\u00e9", "\n"]}`,
			want: &plugins.Record{Value: []byte(`["a\u00e9","\n"]`)}},
		{name: "UTF-8 text", line: `{"value":"héllo 😀"}`,
			want: &plugins.Record{Value: []byte("héllo 😀")}},
		{name: "field names match case-insensitively", line: `{"KEY":"k","Value":"v"}`,
			want: &plugins.Record{Key: []byte("k"), Value: []byte("v")}},
		{name: "last repeated field counts", line: `{"key":"a","key":"b","partition":1,"partition":null}`,
			want: &plugins.Record{Key: []byte("b")}},
		{name: "null fields are absent", line: `{"topic":null,"headers":null,"timestamp":null,"partition":null}`,
			want: &plugins.Record{}},
		{name: "whitespace", line: " \t{ \"key\" : [ 1 , { } ] , \"value\":\"x\" } \r",
			want: &plugins.Record{Key: []byte("[1,{}]"), Value: []byte("x")}},
		{name: "numbers as written", line: `{"value":-0.5e+10}`, want: &plugins.Record{Value: []byte("-0.5e+10")}},
		{name: "invalid UTF-8 in a value", line: "{\"value\":\"a\xffb\"}", wantErr: "column 12: byte 0xff is not valid UTF-8"},
		{name: "invalid UTF-8 in a nested string", line: "{\"value\":{\"a\xc3\":1}}", wantErr: "column 13: byte 0xc3 is not valid UTF-8"},
		{name: "lone surrogate in a nested string", line: `{"value":["\udc00"]}`, wantErr: `column 12: \udc00 is half of a UTF-16 surrogate pair`},
		{name: "base64 with JSON escapes", line: `{"value_base64":"AP8\u003d"}`, want: &plugins.Record{Value: []byte{0x00, 0xff}}},
		{name: "base64 not a string", line: `{"value_base64":1}`, wantErr: `invalid JSON record: "value_base64" must be a string`},
		{name: "null key and base64 key", line: `{"key":null,"key_base64":"AA=="}`, wantErr: `"key" and "key_base64": give one of them`},
		{name: "control character in a string", line: "{\"value\":\"a\tb\"}", wantErr: "control character"},
		{name: "bad escape", line: `{"value":"\x"}`, wantErr: `invalid escape '\x'`},
		{name: "short unicode escape", line: `{"value":"\u12"}`, wantErr: "four hexadecimal digits"},
		{name: "unterminated string", line: `{"value":"abc`, wantErr: "string not terminated"},
		{name: "unterminated object", line: `{"value":"abc"`, wantErr: "invalid JSON record: column 15"},
		{name: "trailing comma", line: `{"value":1,}`, wantErr: "invalid JSON record"},
		{name: "leading zero", line: `{"value":01}`, wantErr: "invalid JSON record"},
		{name: "bad literal", line: `{"value":nul}`, wantErr: "invalid JSON record"},
		{name: "garbage after the record", line: `{}}`, wantErr: "invalid JSON record"},
		{name: "topic not a string", line: `{"topic":1}`, wantErr: `"topic" must be a string`},
		{name: "topic Kafka refuses", line: `{"topic":"bad topic"}`, wantErr: `invalid JSON record: "topic": topic name "bad topic" has a character other than`},
		{name: "topic too long", line: `{"topic":"` + strings.Repeat("t", 250) + `"}`, wantErr: `"topic": the topic name is 250 bytes long`},
		{name: "partition too big", line: `{"partition":2147483648}`, wantErr: "invalid JSON record"},
		{name: "partition a string", line: `{"partition":"1"}`, wantErr: "invalid JSON record"},
		{name: "timestamp object", line: `{"timestamp":{}}`, wantErr: "got {}"},
		{name: "syntax error after a bad field", line: `{"vaule":"x",}`, wantErr: "column 14"},
		// Bytes that are not UTF-8 fail the line instead of turning into
		// U+FFFD; key_base64 and value_base64 carry any bytes exactly.
		{name: "invalid utf-8 in value", line: "{\"value\":\"a\xffb\"}", wantErr: "column 12: byte 0xff is not valid UTF-8"},
		{name: "invalid utf-8 in key", line: "{\"key\":\"\xc3\"}", wantErr: "column 9: byte 0xc3 is not valid UTF-8"},
		{name: "invalid utf-8 in header", line: "{\"headers\":{\"h\":\"\xed\xa0\x80\"}}", wantErr: "column 18: byte 0xed is not valid UTF-8"},
		{name: "invalid utf-8 in header name", line: "{\"headers\":{\"\xfe\":\"v\"}}", wantErr: "column 14: byte 0xfe is not valid UTF-8"},
		{name: "lone high surrogate", line: `{"value":"x\ud800y"}`, wantErr: `column 12: \ud800 is half of a UTF-16 surrogate pair`},
		{name: "lone low surrogate", line: `{"key":"\uDC00"}`, wantErr: `column 9: \uDC00 is half of a UTF-16 surrogate pair`},
		{name: "high surrogate then other escape", line: `{"value":"\ud800\u0041"}`, wantErr: `column 11: \ud800 is half`},
		{name: "surrogate pair is a character", line: `{"value":"\ud83d\ude00 \u00e9"}`,
			want: &plugins.Record{Value: []byte("\U0001F600 \u00e9")}},
		{name: "escaped backslash then u is text", line: `{"value":"\\ud800"}`,
			want: &plugins.Record{Value: []byte(`\ud800`)}},
		{name: "utf-8 text", line: `{"value":"grüße 😀"}`, want: &plugins.Record{Value: []byte("grüße 😀")}},
		{name: "base64", line: `{"key_base64":"AP8=","value_base64":""}`,
			want: &plugins.Record{Key: []byte{0x00, 0xff}, Value: []byte{}}},
		{name: "base64 and text", line: `{"value":"x","value_base64":"AA=="}`, wantErr: `"value" and "value_base64": give one of them`},
		{name: "base64 not base64", line: `{"key_base64":"%%"}`, wantErr: `"key_base64": not standard base64`},
		{name: "base64 null is null", line: `{"value_base64":null}`, want: &plugins.Record{}},
	}
	var p jsonParser // one parser for every line, as lineReader uses it
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.parse([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Timestamp.Equal(tt.want.Timestamp) {
				t.Errorf("timestamp = %v, want %v", got.Timestamp, tt.want.Timestamp)
			}
			got.Timestamp, tt.want.Timestamp = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestLineReader(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		// A byte order mark starts the input (skipped); one inside
		// the input is not white space (line 6 is malformed).
		in := "\xef\xbb\xbf{\"value\":\"a\"}\n\n  \nnot json\r\n{\"value\":\"b\"}\r\n\xef\xbb\xbf{}\n"
		lr := newLineReader(strings.NewReader(in), formatJSON)
		type res struct {
			value string
			line  int
			bad   bool
		}
		var got []res
		for {
			r, line, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			var le *lineError
			if errors.As(err, &le) {
				got = append(got, res{line: line, bad: true})
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, res{value: string(r.Value), line: line})
		}
		want := []res{{"a", 1, false}, {"", 4, true}, {"b", 5, false}, {"", 6, true}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if lr.bytes != int64(len(in)) {
			t.Errorf("bytes = %d, want %d", lr.bytes, len(in))
		}
	})
	t.Run("raw", func(t *testing.T) {
		lr := newLineReader(strings.NewReader("\xef\xbb\xbfa\n\nb\r\nc"), formatRaw)
		var got []string
		for {
			r, _, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Value == nil {
				t.Fatal("raw line gave a null value")
			}
			got = append(got, string(r.Value))
		}
		if want := []string{"\xef\xbb\xbfa", "", "b", "c"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("too long", func(t *testing.T) {
		lr := newLineReader(strings.NewReader("ok\n"+strings.Repeat("x", maxLine+1)), formatRaw)
		if _, _, err := lr.next(); err != nil {
			t.Fatal(err)
		}
		_, line, err := lr.next()
		if err == nil || errors.Is(err, io.EOF) || line != 2 {
			t.Fatalf("got line %d, err %v; want an error on line 2", line, err)
		}
	})
}

// BenchmarkParseJSONRecord compares jsonParser with referenceRecord, the
// same format read with encoding/json, on a line with a nested value and a
// header, and on a line like scripts/bench_cli.py's (a key and a 100-byte
// string value). cpu-ns/op is the process's CPU time per line, steadier
// than ns/op on a busy machine.
func BenchmarkParseJSONRecord(b *testing.B) {
	lines := []struct{ name, line string }{
		{"nested", `{"key":"eu-1001","value":{"customer":"ada","amount":12.5,"card":{"number":"4111111111111111","cvv":"123"}},"headers":{"channel":"web"}}`},
		{"flat", `{"key":"key-00000001","value":"` + strings.Repeat("v", 100) + `"}`},
	}
	for _, l := range lines {
		line := []byte(l.line)
		b.Run("jsonParser/"+l.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			var p jsonParser
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := p.parse(line); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
		b.Run("encoding-json/"+l.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := referenceRecord(line); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
