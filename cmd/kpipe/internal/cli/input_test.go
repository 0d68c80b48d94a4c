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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseJSONRecord([]byte(tt.line))
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
		in := "{\"value\":\"a\"}\n\n  \nnot json\r\n{\"value\":\"b\"}\r\n"
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
		want := []res{{"a", 1, false}, {"", 4, true}, {"b", 5, false}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if lr.bytes != int64(len(in)) {
			t.Errorf("bytes = %d, want %d", lr.bytes, len(in))
		}
	})
	t.Run("raw", func(t *testing.T) {
		lr := newLineReader(strings.NewReader("a\n\nb\r\nc"), formatRaw)
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
		if want := []string{"a", "", "b", "c"}; !reflect.DeepEqual(got, want) {
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

func BenchmarkParseJSONRecord(b *testing.B) {
	line := []byte(`{"key":"eu-1001","value":{"customer":"ada","amount":12.5,"card":{"number":"4111111111111111","cvv":"123"}},"headers":{"channel":"web"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := parseJSONRecord(line); err != nil {
			b.Fatal(err)
		}
	}
}
