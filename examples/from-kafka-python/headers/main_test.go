package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// TestHeaders runs the program against the in-process broker, or the
// cluster in KPIPE_TEST_BROKERS, and reads both records back.
func TestHeaders(t *testing.T) {
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 1)
	asyncTopic := testbroker.CreateTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	var out strings.Builder
	if err := run(ctx, brokers, topic, asyncTopic, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := fmt.Sprintf("%s - 0 : 0\n%s\n0\n0\n", topic, asyncTopic)
	if out.String() != want {
		t.Errorf("printed\n%swant\n%s", out.String(), want)
	}
	r := testbroker.ReadAll(t, brokers, topic, 1, false)[0]
	if string(r.Value) != `"Hello, Kafka!"` || len(r.Headers) != 2 ||
		r.Headers[0].Key != "header_key1" || string(r.Headers[0].Value) != "header_value1" ||
		r.Headers[1].Key != "header_key2" || string(r.Headers[1].Value) != "header_value2" {
		t.Errorf("record: value %q headers %v", r.Value, r.Headers)
	}
	if r := testbroker.ReadAll(t, brokers, asyncTopic, 1, false)[0]; string(r.Value) != `"raw_bytes"` {
		t.Errorf("async record value %q", r.Value)
	}
}
