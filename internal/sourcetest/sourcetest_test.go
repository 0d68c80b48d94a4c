package sourcetest

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCheckOutput counts duplicates and finds the missing records, leaving
// out those not expected.
func TestCheckOutput(t *testing.T) {
	rec := func(k, v string) *kgo.Record { return &kgo.Record{Key: []byte(k), Value: []byte(v)} }
	recs := []*kgo.Record{rec("k0", "T:0"), rec("k1", "T:1"), rec("k0", "T:2"), rec("k1", "T:1"), rec("k0", "T:4")}
	dups, missing := CheckOutput(t, recs, 6, "T:", true, func(i int) bool { return i != 5 })
	if dups != 1 || !slices.Equal(missing, []int{3}) {
		t.Errorf("CheckOutput = %d duplicates, missing %v; want 1, [3]", dups, missing)
	}
	if h := Headers(&kgo.Record{Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}); h["a"] != "2" {
		t.Errorf("Headers: %v", h)
	}
}
