package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

var validDocs = []string{
	`{}`, `[]`, `0`, `-0`, `1.5e+10`, `-12.25E-3`, `"s"`, `true`, `false`, `null`,
	` { "a" : [ 1 , 2 , { "b" : null } ] , "c" : "x\ty" } `,
	`"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"`,
	"\"raw \xff bytes\"",
	`[[[[]]]]`,
}

var invalidDocs = []string{
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`,
	`tru`, `nulls`, `"abc`, `"\x"`, `"\u12g4"`, "\"a\nb\"", `{} {}`, `[1 2]`, `{"a":1 "b":2}`, `[1]]`,
	`NaN`, `'s'`,
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, doc := range append(append([]string{}, validDocs...), invalidDocs...) {
		if got, want := Valid([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", doc, got, want)
		}
	}
}

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		doc    string
		offset int
		msg    string
	}{
		{`[1,]`, 3, `unexpected character ']'`},
		{`{"a":1`, 6, "unexpected end of input"},
		{`tru`, 3, "unexpected end of input"},
		{`trux`, 3, `unexpected character 'x'`},
		{`"\q"`, 2, `invalid escape \q`},
		{`{} x`, 3, "data after the top-level value"},
		{strings.Repeat("[", MaxDepth+1), MaxDepth, "nesting deeper than the limit"},
	}
	for _, tt := range tests {
		err := Walk([]byte(tt.doc), nil)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset != tt.offset || se.Msg != tt.msg {
			t.Errorf("Walk(%.20q) = %v, want offset %d: %s", tt.doc, err, tt.offset, tt.msg)
		}
	}
}

func TestAppendCompact(t *testing.T) {
	for _, doc := range validDocs {
		got, err := AppendCompact([]byte("prefix:"), []byte(doc))
		if err != nil {
			t.Fatalf("AppendCompact(%q): %v", doc, err)
		}
		var want bytes.Buffer
		want.WriteString("prefix:")
		if err := json.Compact(&want, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("AppendCompact(%q) = %q, want %q", doc, got, want.Bytes())
		}
	}
	if got, err := AppendCompact([]byte("keep"), []byte(`{"a":`)); err == nil || string(got) != "keep" {
		t.Fatalf("AppendCompact(invalid) = %q, %v; want dst unchanged and an error", got, err)
	}
}

// walkAll returns "path kind raw" for every value Walk reports.
func walkAll(t *testing.T, doc string) []string {
	t.Helper()
	var out []string
	err := Walk([]byte(doc), func(v *Value) {
		out = append(out, fmt.Sprintf("%s %v %s", Path(v.Path), v.Kind, doc[v.Start:v.End]))
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", doc, err)
	}
	return out
}

func TestWalk(t *testing.T) {
	got := walkAll(t, ` {"a": {"b": [1, {"c": true}], "d\u0021": null}, "e": "x"} `)
	want := []string{
		"a.b number 1",
		"a.b.c bool true",
		"a.b object {\"c\": true}",
		"a.b array [1, {\"c\": true}]",
		"a.d! null null",
		`a object {"b": [1, {"c": true}], "d\u0021": null}`,
		`e string "x"`,
		` object {"a": {"b": [1, {"c": true}], "d\u0021": null}, "e": "x"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Walk reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParsePath(t *testing.T) {
	for _, bad := range []string{"", ".", "a..b", ".a", "a."} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) succeeded", bad)
		}
	}
	p, err := ParsePath("card.number")
	if err != nil || p.String() != "card.number" {
		t.Fatalf("ParsePath = %v, %v", p, err)
	}
	if !p.Match([][]byte{[]byte("card"), []byte("number")}) || p.Match([][]byte{[]byte("card")}) || p.Match([][]byte{[]byte("card"), []byte("num")}) {
		t.Fatal("Match is wrong")
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "ctl\x00\x1f\n\r\t", "é😀", "<&>"} {
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil || back != s {
			t.Errorf("AppendString(%q) = %s, decodes to %q, %v", s, enc, back, err)
		}
	}
}

func TestAppendUnquoted(t *testing.T) {
	for _, lit := range []string{`""`, `"abc"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d\ude00"`} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		if got := string(AppendUnquoted(nil, []byte(lit))); got != want {
			t.Errorf("AppendUnquoted(%s) = %q, want %q", lit, got, want)
		}
	}
}

func FuzzAgainstEncodingJSON(f *testing.F) {
	for _, d := range append(append([]string{}, validDocs...), invalidDocs...) {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if bytes.Count(doc, []byte("["))+bytes.Count(doc, []byte("{")) > MaxDepth {
			return // encoding/json allows deeper nesting
		}
		valid := Valid(doc)
		if valid != json.Valid(doc) {
			t.Fatalf("Valid(%q) = %v, encoding/json disagrees", doc, valid)
		}
		if !valid {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, doc); err != nil {
			t.Fatal(err)
		}
		if got, err := AppendCompact(nil, doc); err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("AppendCompact(%q) = %q, %v; want %q", doc, got, err, want.Bytes())
		}
		// Matcher reports what Walk and Path.Match find.
		paths := []Path{{[]byte("a")}, {[]byte("a"), []byte("b")}, {}}
		wantM, _ := matchByWalk(doc, paths)
		if got, err := matchByMatcher(doc, paths); err != nil || !slices.Equal(got, wantM) {
			t.Fatalf("Matcher on %q = %v, %v; Walk and Match give %v", doc, got, err, wantM)
		}
		// Every reported range is itself a valid value, and strings unquote
		// as encoding/json decodes them.
		Walk(doc, func(v *Value) {
			raw := doc[v.Start:v.End]
			if !json.Valid(raw) {
				t.Fatalf("range %d:%d = %q is not a JSON value", v.Start, v.End, raw)
			}
			if v.Kind == String {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil || string(AppendUnquoted(nil, raw)) != s {
					t.Fatalf("AppendUnquoted(%q) = %q, encoding/json gives %q", raw, AppendUnquoted(nil, raw), s)
				}
			}
		})
	})
}

// TestPlainRun checks plainRun against a loop over the bytes, with each kind
// of byte that ends a run at every offset of a 20-byte run.
func TestPlainRun(t *testing.T) {
	for _, stop := range []byte{'"', '\\', 0, 0x1f, '\n'} {
		for n := 0; n < 20; n++ {
			for _, fill := range []byte{'a', ' ', 0x7f, 0x80, 0xff, '!', '#', '[', ']'} {
				src := append(bytes.Repeat([]byte{fill}, n), stop, 'x', '"')
				for from := 0; from <= n; from++ {
					if got := plainRun(src, from); got != n {
						t.Fatalf("plainRun(%q, %d) = %d, want %d", src, from, got, n)
					}
				}
			}
		}
	}
	if got := plainRun([]byte("abcdefghijklmnopq"), 3); got != 17 {
		t.Fatalf("plainRun to the end = %d, want 17", got)
	}
}
