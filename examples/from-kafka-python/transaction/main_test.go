package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// TestTransaction runs the program against the in-process broker, or the
// cluster in KPIPE_TEST_BROKERS: the read_committed consumer sees the
// committed record only, while both were written.
func TestTransaction(t *testing.T) {
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	var out strings.Builder
	if err := run(ctx, brokers, topic, fmt.Sprintf("kpipe-example-%d", time.Now().UnixNano()), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `committed "committed message"
aborting "aborted message": something went wrong
read_committed consumer: {"message":"committed message"}
`
	if out.String() != want {
		t.Errorf("printed\n%swant\n%s", out.String(), want)
	}
	// A read_uncommitted consumer sees the aborted record too.
	recs := testbroker.ReadAll(t, brokers, topic, 2, false)
	if string(recs[1].Value) != `{"message":"aborted message"}` {
		t.Errorf("second record written: %q", recs[1].Value)
	}
}
