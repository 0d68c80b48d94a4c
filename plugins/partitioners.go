package plugins

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
)

// TopicPartitioner is the state of a PerTopicPartitioner for one topic. The
// pipeline calls its methods for one record at a time, never concurrently, so
// it needs no locking.
type TopicPartitioner interface {
	Partitioner
	// OnNewBatch is called when the record just partitioned would start
	// a new batch on the partition returned; Partition is then called
	// again for the same record. Sticky partitioners switch partition
	// here (Kafka KIP-480).
	OnNewBatch()
}

// PerTopicPartitioner is implemented by partitioners that keep state per
// topic, such as sticky partitioners. A pipeline calls ForTopic once per topic
// (and again after the partitioner is swapped in) and then uses the returned
// TopicPartitioner instead of Partition.
type PerTopicPartitioner interface {
	Partitioner
	ForTopic(topic string) TopicPartitioner
}

// ExplicitPartitioner is implemented by partitioners, such as the built-in
// "manual", that accept only records naming their partition. A pipeline
// fails a record that names no partition before producing it instead of
// calling the partitioner.
type ExplicitPartitioner interface {
	Partitioner
	RequiresExplicitPartition() bool
}

// ErrNoPartition is returned by the built-in "manual" partitioner for a record
// that does not name a partition.
var ErrNoPartition = errors.New("record names no partition and the partitioner is \"manual\"")

// sticky is the per-topic state of a partitioner that keeps sending to one
// partition until the client starts a new batch, then moves to another one
// at random (never the previous one if there is a choice).
type sticky struct{ on, last int32 }

func newSticky() sticky { return sticky{on: -1, last: -1} }

func (s *sticky) pick(n int32) int32 {
	if s.on < 0 || s.on >= n {
		p := rand.Int32N(n)
		if p == s.last && n > 1 {
			p = (p + 1) % n
		}
		s.on = p
	}
	return s.on
}

func (s *sticky) OnNewBatch() { s.last, s.on = s.on, -1 }

// defaultPartitioner is "default": murmur2 for keyed records, sticky batches
// for unkeyed ones. This is the Java client's DefaultPartitioner from Kafka
// 2.4 to 3.2, franz-go's StickyKeyPartitioner(nil).
type defaultPartitioner struct{}

func (defaultPartitioner) Partition(_ context.Context, r *Record, n int32) (int32, error) {
	if r.Key != nil {
		return KeyPartition(r.Key, n), nil
	}
	return rand.Int32N(n), nil
}

func (defaultPartitioner) ForTopic(string) TopicPartitioner {
	return &defaultTopic{newSticky()}
}

type defaultTopic struct{ sticky }

func (t *defaultTopic) Partition(_ context.Context, r *Record, n int32) (int32, error) {
	if r.Key != nil {
		return KeyPartition(r.Key, n), nil
	}
	return t.pick(n), nil
}

// stickyPartitioner is "sticky": sticky batches for every record, keyed or
// not.
type stickyPartitioner struct{}

func (stickyPartitioner) Partition(_ context.Context, _ *Record, n int32) (int32, error) {
	return rand.Int32N(n), nil
}

func (stickyPartitioner) ForTopic(string) TopicPartitioner { return &stickyTopic{newSticky()} }

type stickyTopic struct{ sticky }

func (t *stickyTopic) Partition(_ context.Context, _ *Record, n int32) (int32, error) {
	return t.pick(n), nil
}

// roundRobinPartitioner is "round-robin": every record goes to the next
// partition, keys are ignored.
type roundRobinPartitioner struct{ next atomic.Uint32 }

func (p *roundRobinPartitioner) Partition(_ context.Context, _ *Record, n int32) (int32, error) {
	return int32((p.next.Add(1) - 1) % uint32(n)), nil
}

func (*roundRobinPartitioner) ForTopic(string) TopicPartitioner { return new(roundRobinTopic) }

type roundRobinTopic struct{ next uint32 }

func (t *roundRobinTopic) Partition(_ context.Context, _ *Record, n int32) (int32, error) {
	p := int32(t.next % uint32(n))
	t.next++
	return p, nil
}

func (*roundRobinTopic) OnNewBatch() {}

// murmur2Partitioner is "murmur2": murmur2 for keyed records like "default",
// round robin for unkeyed ones.
type murmur2Partitioner struct{ rr roundRobinPartitioner }

func (p *murmur2Partitioner) Partition(ctx context.Context, r *Record, n int32) (int32, error) {
	if r.Key != nil {
		return KeyPartition(r.Key, n), nil
	}
	return p.rr.Partition(ctx, r, n)
}

func (*murmur2Partitioner) ForTopic(string) TopicPartitioner { return new(murmur2Topic) }

type murmur2Topic struct{ roundRobinTopic }

func (t *murmur2Topic) Partition(ctx context.Context, r *Record, n int32) (int32, error) {
	if r.Key != nil {
		return KeyPartition(r.Key, n), nil
	}
	return t.roundRobinTopic.Partition(ctx, r, n)
}

// manualPartitioner is "manual": every record must name its partition.
type manualPartitioner struct{}

func (manualPartitioner) Partition(context.Context, *Record, int32) (int32, error) {
	return DefaultPartition, ErrNoPartition
}

func (manualPartitioner) RequiresExplicitPartition() bool { return true }
