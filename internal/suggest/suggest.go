// Package suggest finds, among the names a setting or flag accepts, the one
// a misspelt name was most likely meant to be, for the "Did you mean"
// hints of kpipe's configuration errors and command line.
package suggest

import (
	"fmt"
	"strings"
)

// Closest returns the candidate that s was most likely meant to be, or ""
// if none is close enough to suggest. Case is ignored. A candidate is close
// if it starts with s (s of two characters or more: "gz" for "gzip"), or
// if s starts with it (a candidate of three characters or more: "zstd"
// for "zstd9"), or if it is at most a third of its length, and at most
// two, edits away from s, where an edit inserts, deletes or replaces a
// character or swaps two adjacent ones ("skp", "sikp" for "skip";
// "exactly-once" for "exactly_once"; nothing for "2" among "0" and "1").
// Of several close candidates, the one with the fewest edits wins, then
// the first.
func Closest(s string, candidates []string) string {
	ls := strings.ToLower(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		var d int
		switch {
		case lc == ls:
			return c
		case len(ls) >= 2 && strings.HasPrefix(lc, ls), len(lc) >= 3 && strings.HasPrefix(ls, lc):
			d = 0 // a prefix beats any edit
		default:
			d = distance(ls, lc)
			if d > min(2, len([]rune(lc))/3) {
				continue
			}
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Hint returns ` Did you mean X?`, with X the closest candidate to s
// formatted by format (such as "%q" or "--%s"), or "" if there is none.
func Hint(s string, candidates []string, format string) string {
	c := Closest(s, candidates)
	if c == "" {
		return ""
	}
	return " Did you mean " + fmt.Sprintf(format, c) + "?"
}

// Quoted lists the candidates quoted and separated by commas, the last by
// "or": `"a", "b" or "c"`.
func Quoted(candidates []string) string {
	q := make([]string, len(candidates))
	for i, c := range candidates {
		q[i] = fmt.Sprintf("%q", c)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// distance is the optimal string alignment distance between a and b: the
// fewest insertions, deletions, replacements and swaps of adjacent
// characters that turn a into b, no character edited twice.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the table: i-2, i-1, i.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
