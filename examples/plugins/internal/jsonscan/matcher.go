package jsonscan

import (
	"bytes"
	"slices"
)

// Matcher finds the values at a fixed set of paths in one pass over a
// document. It follows the paths member by member as it parses, so it
// builds no path and compares no member name inside a value that no path
// leads into: such values are only validated. Matching this way, rather than
// with Walk and Path.Match, keeps a walk free of allocations
// (BenchmarkMatcher against BenchmarkWalkMatch).
//
// A Matcher is not safe for concurrent use.
type Matcher struct {
	paths   []Path // sorted by steps, a prefix before longer paths
	ids     []int  // ids[i] is the index of paths[i] in NewMatcher's arguments
	scratch []byte // an escaped member name, unescaped
}

// NewMatcher returns a Matcher of paths; a value's id in Walk's callback is
// its path's index in paths. The paths are not copied and must not change.
func NewMatcher(paths ...Path) *Matcher {
	m := &Matcher{ids: make([]int, len(paths))}
	for i := range m.ids {
		m.ids[i] = i
	}
	slices.SortStableFunc(m.ids, func(a, b int) int { return comparePaths(paths[a], paths[b]) })
	for _, id := range m.ids {
		m.paths = append(m.paths, paths[id])
	}
	return m
}

// comparePaths orders paths by their steps, a path before the paths it is a
// prefix of.
func comparePaths(a, b Path) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := bytes.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// Walk checks src as the function Walk does and calls fn for every value
// whose path is one of the Matcher's, with the path's id and the value's range
// src[start:end]: the values, and in the order, that Walk would report with a
// Value whose Path p.Match accepts. So a value comes after the values inside
// it, and before any value that starts after it ends. A value at several of
// the paths (a path given twice) is reported once for each.
func (m *Matcher) Walk(src []byte, fn func(id, start, end int)) error {
	w := walker{src: src, m: m, mfn: fn}
	c := cand{hi: len(m.paths)}
	for c.mid < c.hi && len(m.paths[c.mid]) == 0 {
		c.mid++
	}
	return w.document(c)
}

// step returns the candidates of the member named by the string literal raw
// of a value whose candidates are c.
func (m *Matcher) step(c cand, raw []byte, escaped bool) cand {
	name := raw[1 : len(raw)-1]
	if escaped {
		m.scratch = AppendUnquoted(m.scratch[:0], raw)
		name = m.scratch
	}
	lo := c.mid
	for lo < c.hi && string(m.paths[lo][c.d]) != string(name) {
		lo++
	}
	if lo == c.hi {
		return cand{}
	}
	hi := lo + 1
	for hi < c.hi && string(m.paths[hi][c.d]) == string(name) {
		hi++
	}
	mid := lo
	for mid < hi && len(m.paths[mid]) == c.d+1 {
		mid++
	}
	return cand{lo: lo, mid: mid, hi: hi, d: c.d + 1}
}
