package jsonpath

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Path
		wantErr bool
	}{
		{"a", Path{"a"}, false},
		{"card.number", Path{"card", "number"}, false},
		{"", nil, true},
		{"a..b", nil, true},
		{".a", nil, true},
		{"a.", nil, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{`{"a":1}`, false},
		{` [1, 2] `, false},
		{`"s"`, false},
		{`{"a":1} {}`, true},
		{`{"a":1}]`, true},
		{`{"a":`, true},
		{`not json`, true},
		{``, true},
	}
	for _, tt := range tests {
		if _, err := Decode([]byte(tt.in)); (err != nil) != tt.wantErr {
			t.Errorf("Decode(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
		}
	}
}

func TestDecodeKeepsNumbers(t *testing.T) {
	v, err := Decode([]byte(`{"big":12345678901234567890,"f":1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, v); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), `{"big":12345678901234567890,"f":1.50}`; got != want {
		t.Fatalf("round trip = %s, want %s", got, want)
	}
}

func TestEncodeNoHTMLEscape(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, map[string]any{"h": "<a&b>"}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), `{"h":"<a&b>"}`; got != want {
		t.Fatalf("Encode = %s, want %s", got, want)
	}
}

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLookup(t *testing.T) {
	doc := `{"a":{"b":"x","n":null},"items":[{"sku":1},{"sku":2}],"s":"str"}`
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{"a.b", "x", true},
		{"a.n", nil, true},
		{"a.missing", nil, false},
		{"items.sku", json.Number("1"), true},
		{"s.deeper", nil, false},
		{"nope", nil, false},
	}
	for _, tt := range tests {
		p, _ := Parse(tt.path)
		got, ok := Lookup(mustDecode(t, doc), p)
		if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lookup(%s) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestReplace(t *testing.T) {
	tests := []struct {
		doc, path string
		want      string
		n         int
	}{
		{`{"ssn":"123"}`, "ssn", `{"ssn":"***"}`, 1},
		{`{"card":{"number":"4111","exp":"12/30"}}`, "card.number", `{"card":{"exp":"12/30","number":"***"}}`, 1},
		{`{"items":[{"c":1},{"d":2},{"c":{"x":1}}]}`, "items.c", `{"items":[{"c":"***"},{"d":2},{"c":"***"}]}`, 2},
		{`{"a":1}`, "b", `{"a":1}`, 0},
		{`{"a":"s"}`, "a.b", `{"a":"s"}`, 0},
		{`[{"a":1},{"a":2}]`, "a", `[{"a":"***"},{"a":"***"}]`, 2},
	}
	for _, tt := range tests {
		doc := mustDecode(t, tt.doc)
		p, _ := Parse(tt.path)
		if n := Replace(doc, p, "***"); n != tt.n {
			t.Errorf("Replace(%s, %s) = %d, want %d", tt.doc, tt.path, n, tt.n)
		}
		var buf bytes.Buffer
		if err := Encode(&buf, doc); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("Replace(%s, %s) gives %s, want %s", tt.doc, tt.path, buf.String(), tt.want)
		}
	}
}
