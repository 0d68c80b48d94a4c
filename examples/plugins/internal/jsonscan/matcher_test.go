package jsonscan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func mustPaths(t testing.TB, specs ...string) []Path {
	t.Helper()
	var ps []Path
	for _, s := range specs {
		if s == "" {
			ps = append(ps, Path{}) // the root
			continue
		}
		p, err := ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// matchByWalk is what Matcher.Walk must report: "id start end" for every
// value Walk reports, for every path that matches it, in path order.
func matchByWalk(doc []byte, paths []Path) ([]string, error) {
	var out []string
	err := Walk(doc, func(v *Value) {
		for id, p := range paths {
			if p.Match(v.Path) {
				out = append(out, fmt.Sprint(id, v.Start, v.End))
			}
		}
	})
	return out, err
}

func matchByMatcher(doc []byte, paths []Path) ([]string, error) {
	var out []string
	err := NewMatcher(paths...).Walk(doc, func(id, start, end int) {
		out = append(out, fmt.Sprint(id, start, end))
	})
	return out, err
}

func TestMatcher(t *testing.T) {
	doc := ` {"a": {"b": [1, {"c": true}], "d\u0021": null, "x": {"b": 2}}, "e": "x", "b": [[3]]} `
	tests := []struct {
		name  string
		paths []string
		want  []string // "id raw"
	}{
		{"none", []string{"zz", "a.zz"}, nil},
		{"leaf and parent", []string{"a.b.c", "a"}, []string{`0 true`, `1 {"b": [1, {"c": true}], "d\u0021": null, "x": {"b": 2}}`}},
		{"array elements have the array's path", []string{"a.b"}, []string{`0 1`, `0 {"c": true}`, `0 [1, {"c": true}]`}},
		{"escaped name", []string{"a.d!"}, []string{`0 null`}},
		{"same step elsewhere", []string{"b"}, []string{`0 3`, `0 [3]`, `0 [[3]]`}},
		{"duplicate path", []string{"e", "e"}, []string{`0 "x"`, `1 "x"`}},
		{"root", []string{"", "e"}, []string{`1 "x"`, `0 ` + strings.TrimSpace(doc)}},
		{"prefix of another", []string{"a.x.b", "a.x", "a"}, []string{`0 2`, `1 {"b": 2}`, `2 {"b": [1, {"c": true}], "d\u0021": null, "x": {"b": 2}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := NewMatcher(mustPaths(t, tt.paths...)...).Walk([]byte(doc), func(id, start, end int) {
				got = append(got, fmt.Sprint(id, " ", doc[start:end]))
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Matcher reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestMatcherAgreesWithWalk checks Matcher against Walk and Path.Match, and
// that it reports Walk's syntax errors, on every test document.
func TestMatcherAgreesWithWalk(t *testing.T) {
	paths := mustPaths(t, "a", "a.b", "a.b.c", "c", "a.d!", "b", "a")
	docs := append(append([]string{}, validDocs...), invalidDocs...)
	docs = append(docs, `{"a":{"b":[{"c":1},{"c":[2]}]},"c":{"a":1}}`, `[{"a":1},{"b":{"a":2}}]`)
	for _, doc := range docs {
		want, wantErr := matchByWalk([]byte(doc), paths)
		got, err := matchByMatcher([]byte(doc), paths)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || (err == nil && !slices.Equal(got, want)) {
			t.Errorf("Matcher on %q = %v, %v; Walk and Match give %v, %v", doc, got, err, want, wantErr)
		}
	}
}

func TestMatcherDoesNotAllocate(t *testing.T) {
	m := NewMatcher(mustPaths(t, "card.number", "card.cvv", "customer")...)
	n := 0
	fn := func(id, start, end int) { n++ }
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.Walk(benchDoc, fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Matcher.Walk allocates %v times per walk", allocs)
	}
	if n == 0 {
		t.Fatal("no match reported")
	}
}
