package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// TestSend runs the program against the in-process broker, or the cluster
// in KPIPE_TEST_BROKERS, and reads its record back.
func TestSend(t *testing.T) {
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	var out strings.Builder
	if err := run(ctx, brokers, topic, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if want := "Message sent to " + topic + " partition 0\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	r := testbroker.ReadAll(t, brokers, topic, 1, false)[0]
	if string(r.Value) != `{"message":"test message"}` || r.Key != nil {
		t.Errorf("record key %q value %q, want a null key and the JSON value", r.Key, r.Value)
	}
}
