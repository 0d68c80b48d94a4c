package jsonscan

import (
	"strings"
	"testing"
)

var benchDoc = []byte(`{"user_id":42,"region":"eu","ssn":"123-45-6789","card":{"number":"4111 1111 1111 1111","exp":"12/30"},"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"leave at the door"}`)

func BenchmarkAppendCompact(b *testing.B) {
	var buf []byte
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		var err error
		if buf, err = AppendCompact(buf[:0], benchDoc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWalk(b *testing.B) {
	n := 0
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		if err := Walk(benchDoc, func(*Value) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPaths are the paths the quickstart's redact plugin looks for.
var benchPaths = []string{"card.number", "card.cvv", "customer"}

// BenchmarkMatcher finds benchPaths in benchDoc with a Matcher.
func BenchmarkMatcher(b *testing.B) {
	m := NewMatcher(mustPaths(b, benchPaths...)...)
	n := 0
	fn := func(id, start, end int) { n++ }
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		if err := m.Walk(benchDoc, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalkMatch finds benchPaths in benchDoc with Walk and Path.Match.
func BenchmarkWalkMatch(b *testing.B) {
	paths := mustPaths(b, benchPaths...)
	n := 0
	b.SetBytes(int64(len(benchDoc)))
	for b.Loop() {
		err := Walk(benchDoc, func(v *Value) {
			for _, p := range paths {
				if p.Match(v.Path) {
					n++
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainRun scans a string body of 64 plain bytes.
func BenchmarkPlainRun(b *testing.B) {
	src := []byte(`"` + strings.Repeat("4111 1111 1111 1111 ", 3) + `abcd"`)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if plainRun(src, 1) != len(src)-1 {
			b.Fatal("wrong end")
		}
	}
}

// BenchmarkPlainRunBytes scans BenchmarkPlainRun's string body a byte at a
// time, the loop plainRun ends with.
func BenchmarkPlainRunBytes(b *testing.B) {
	src := []byte(`"` + strings.Repeat("4111 1111 1111 1111 ", 3) + `abcd"`)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		i := 1
		for i < len(src) && plain[src[i]] {
			i++
		}
		if i != len(src)-1 {
			b.Fatal("wrong end")
		}
	}
}
