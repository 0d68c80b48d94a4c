// Package sourcetest holds what the tests of Kafka sources share, those of
// package kafkasource and those of `kpipe run` with a source block: the
// input they write, the read_committed reader of what a source wrote, and
// the check of that output against the input.
//
// The input is records 0 to n-1: record i has the key "k" + i%keys and a
// value that names i (Produce). A source's output must hold, for each input
// record it does not filter or fail, the record transformed into a value
// that is a prefix and i (CheckOutput).
package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
)

// Produce writes n records to topic, all before it returns: record i has
// the key "k" + i%keys and the value value(i). It fails the test if one is
// not written within testbroker.Timeout.
func Produce(tb testing.TB, brokers []string, topic string, n, keys int, value func(i int) string) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(value(i))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		tb.Fatalf("producing the input: %v", err)
	}
}

// ReadCommitted reads topic from its start as a read_committed reader,
// until it has at least want records and then a poll finds nothing for idle
// (so that records beyond want, duplicates, are read too), and returns what
// it read. A poll that finds nothing before want is reached does not end
// the read: on a busy machine a fetch may take longer than idle. It stops
// after limit, with what it has if that is fewer than want (the caller's
// check says what is missing), and fails the test if it still found
// records then, or a fetch fails.
func ReadCommitted(tb testing.TB, brokers []string, topic string, want int, idle, limit time.Duration) []*kgo.Record {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(limit)
	var out []*kgo.Record
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), idle)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				tb.Fatalf("reading %s[%d]: %v", t, p, err)
			}
		})
		recs := fs.Records()
		if len(recs) == 0 && len(out) >= want {
			return out
		}
		out = append(out, recs...)
	}
	if len(out) >= want {
		tb.Fatalf("reading %s did not end within %v (%d records, want %d)", topic, limit, len(out), want)
	}
	return out
}

// CheckOutput checks recs, a source's output of the input records 0 to n-1
// (Produce): it returns how many records are duplicates and the indexes of
// the records it misses. Each
// record's value must be prefix and the index of its input record, and
// with ordered the first copy of each must come after the first copies of
// the records before it with its key: otherwise CheckOutput fails the test.
// A record is missing if expected(i) and recs has no copy of it.
func CheckOutput(tb testing.TB, recs []*kgo.Record, n int, prefix string, ordered bool, expected func(i int) bool) (duplicates int, missing []int) {
	tb.Helper()
	seen := make([]int, n)
	last := map[string]int{}
	for _, r := range recs {
		v, ok := bytes.CutPrefix(r.Value, []byte(prefix))
		if !ok {
			tb.Fatalf("output record %q is not transformed", r.Value)
		}
		i, err := strconv.Atoi(string(v))
		if err != nil || i < 0 || i >= n {
			tb.Fatalf("output record %q is not %s and an input index", r.Value, prefix)
		}
		if seen[i]++; seen[i] > 1 {
			duplicates++
			continue
		}
		k := string(r.Key)
		if p, ok := last[k]; ok && p > i && ordered {
			tb.Fatalf("key %s: record %d after record %d", k, i, p)
		}
		last[k] = i
	}
	for i := range n {
		if seen[i] == 0 && expected(i) {
			missing = append(missing, i)
		}
	}
	return duplicates, missing
}

// Headers returns r's headers by key (the last value of a repeated one).
func Headers(r *kgo.Record) map[string]string {
	h := make(map[string]string, len(r.Headers))
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}
