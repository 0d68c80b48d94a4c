// Package testbroker gives tests a Kafka broker and helpers to create topics
// and read records back.
//
// By default each test gets its own in-process franz-go kfake cluster. When
// the environment variable KPIPE_TEST_BROKERS holds a comma-separated list of
// host:port, the tests run against that real cluster instead (for example
// the Apache Kafka broker started by scripts/kafka.sh); tests that rely on
// kfake-only fault injection check IsFake and say why they skip.
package testbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the environment variable holding a real cluster's seed
// brokers.
const EnvBrokers = "KPIPE_TEST_BROKERS"

// IsFake reports whether tests run against in-process kfake clusters, that is
// whether KPIPE_TEST_BROKERS is unset or empty.
func IsFake() bool { return strings.TrimSpace(os.Getenv(EnvBrokers)) == "" }

// Timeout bounds every helper's wait: topic creation and reading back.
func Timeout() time.Duration {
	if IsFake() {
		return 20 * time.Second
	}
	return 60 * time.Second
}

// Brokers returns the seed brokers of the cluster the test should use: the
// ones in KPIPE_TEST_BROKERS, or those of a new single-broker kfake cluster
// that is shut down when the test ends.
func Brokers(tb testing.TB) []string {
	tb.Helper()
	if !IsFake() {
		var bs []string
		for _, b := range strings.Split(os.Getenv(EnvBrokers), ",") {
			if b = strings.TrimSpace(b); b != "" {
				bs = append(bs, b)
			}
		}
		return bs
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatalf("testbroker: start kfake cluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs()
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// CreateTopic creates a topic with the given number of partitions
// (replication factor 1) and a unique name derived from the test's name, and
// returns the name. Topics are not deleted afterwards, so a real broker
// keeps them for inspection.
func CreateTopic(tb testing.TB, brokers []string, partitions int32) string {
	tb.Helper()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := unsafeChars.ReplaceAllString(tb.Name(), "_")
	if len(name) > 180 {
		name = name[:180]
	}
	name = "kpipe-" + name + "-" + hex.EncodeToString(suffix[:])

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatalf("testbroker: client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout())
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("testbroker: create topic %s with %d partitions: %v", name, partitions, err)
	}
	// Wait until every partition has a leader that acts as one. Metadata
	// showing a leader is not enough: a KRaft broker publishes the leader
	// in its metadata cache before its replica manager has made the
	// partition leader, and a produce request in between gets
	// NOT_LEADER_OR_FOLLOWER for that partition. With acks=1 or all the
	// client retries; with acks=0 the broker closes the connection and
	// the records are lost without a word (seen in TestAcks/0 on Kafka
	// 3.9.1 on a busy machine: "Closing connection due to error during
	// produce request ... with ack=0", one of the two partitions
	// NotLeaderOrFollowerException). ListOffsets asks the same question
	// of the leader as a produce does, without writing anything.
	var last error
	for {
		last = partitionsReady(ctx, adm, name, int(partitions))
		if last == nil {
			return name
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("testbroker: topic %s not ready within %v: %v", name, Timeout(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// partitionsReady returns nil once the metadata shows topic with n
// partitions, each with a leader, and each leader answers ListOffsets for
// it without an error; otherwise it says what is not ready yet.
func partitionsReady(ctx context.Context, adm *kadm.Client, topic string, n int) error {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	t, ok := md.Topics[topic]
	switch {
	case !ok:
		return errors.New("metadata does not list the topic")
	case t.Err != nil:
		return fmt.Errorf("metadata: %w", t.Err)
	case len(t.Partitions) != n:
		return fmt.Errorf("metadata lists %d of %d partitions", len(t.Partitions), n)
	}
	for _, p := range t.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader yet (%v)", p.Partition, p.Err)
		}
	}
	offsets, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	var notReady error
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && notReady == nil {
			notReady = fmt.Errorf("partition %d: its leader does not act as one yet: %w", o.Partition, o.Err)
		}
	})
	if notReady == nil && len(offsets[topic]) != n {
		notReady = fmt.Errorf("list offsets answered for %d of %d partitions", len(offsets[topic]), n)
	}
	return notReady
}

// EndOffsets returns the end offset of each partition of topic: the number
// of records written to it, as there is no retention in tests. It fails the
// test on an error.
func EndOffsets(tb testing.TB, brokers []string, topic string) map[int32]int64 {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatalf("testbroker: client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout())
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		tb.Fatalf("testbroker: end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			tb.Fatalf("testbroker: end offset of %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// Total is the sum of offsets, for EndOffsets: a topic's record count.
func Total(offsets map[int32]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// ReadAll reads topic from the start until it has n records, and returns
// them in the order received (offset order within each partition). With
// readCommitted it reads as a read_committed consumer, which skips aborted
// transactions. It fails the test if fewer than n records arrive within
// Timeout; records beyond the first n are not read.
func ReadAll(tb testing.TB, brokers []string, topic string, n int, readCommitted bool) []*kgo.Record {
	tb.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		tb.Fatalf("testbroker: consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout())
	defer cancel()
	recs := make([]*kgo.Record, 0, n)
	for len(recs) < n {
		fs := cl.PollRecords(ctx, n-len(recs))
		if ctx.Err() != nil {
			tb.Fatalf("testbroker: read %s: got %d of %d records within %v", topic, len(recs), n, Timeout())
		}
		fs.EachError(func(t string, p int32, err error) {
			tb.Fatalf("testbroker: read %s partition %d: %v", t, p, err)
		})
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// Fake starts a single-broker kfake cluster for a test that injects faults
// through kfake's control functions, whatever KPIPE_TEST_BROKERS says, and
// logs that it does. The cluster is shut down when the test ends.
func Fake(tb testing.TB, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	tb.Helper()
	if !IsFake() {
		tb.Logf("testbroker: this test injects faults with kfake; it runs on kfake even though %s is set", EnvBrokers)
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		tb.Fatalf("testbroker: start kfake cluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c, c.ListenAddrs()
}
