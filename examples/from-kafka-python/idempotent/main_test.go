package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// TestIdempotent runs the program against the in-process broker, or the
// cluster in KPIPE_TEST_BROKERS: three records, in order, each once.
func TestIdempotent(t *testing.T) {
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 3)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	var out strings.Builder
	if err := run(ctx, brokers, topic, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	recs := testbroker.ReadAll(t, brokers, topic, 3, false)
	var want strings.Builder
	for i, r := range recs {
		if string(r.Key) != "order-1" || string(r.Value) != fmt.Sprintf(`{"message":"test message","n":%d}`, i) {
			t.Errorf("record %d: key %q value %q", i, r.Key, r.Value)
		}
		fmt.Fprintf(&want, "%s - %d : %d\n", topic, r.Partition, r.Offset)
	}
	if out.String() != want.String() {
		t.Errorf("printed\n%swant\n%s", out.String(), want.String())
	}
}
