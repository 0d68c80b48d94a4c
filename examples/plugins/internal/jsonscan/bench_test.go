package jsonscan

import "testing"

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
