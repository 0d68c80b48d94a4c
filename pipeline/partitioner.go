package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// kgoPartitioner is the partitioner franz-go sees. franz-go captures it once
// and caches its TopicPartitioners, so it never changes: each
// topicPartitioner uses the partitioner of the chain each record entered,
// which is how a Swap changes partitioners without a new client.
//
// This is where every record's partition is decided, once: franz-go calls
// it with the topic's partition count when it buffers the record (and once
// more, for the same record, right after it asks for a new batch).
type kgoPartitioner struct{ p *Producer }

func (k kgoPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	name := plugins.PartitionerDefault
	if k.p.ignoreKeys {
		// The default partitioner without its key hashing.
		name = plugins.PartitionerSticky
	}
	def, _ := plugins.NewPartitioner(name, nil)
	t := &topicPartitioner{ignoreKeys: k.p.ignoreKeys, fallback: def.(plugins.PerTopicPartitioner).ForTopic(topic)}
	k.p.topicsMu.Lock()
	k.p.topics[topic] = t
	k.p.topicsMu.Unlock()
	return t
}

// partitions returns how many partitions topic had when franz-go last
// partitioned one of its records, or 0 if it has not yet.
func (p *Producer) partitions(topic string) int32 {
	p.topicsMu.Lock()
	t := p.topics[topic]
	p.topicsMu.Unlock()
	if t == nil {
		return 0
	}
	return t.n.Load()
}

// topicPartitioner partitions one topic. franz-go calls it for one record at
// a time, so its fields need no locking.
type topicPartitioner struct {
	slot     *partitionerSlot         // the partitioner cur belongs to
	cur      plugins.Partitioner      // slot.p, or its TopicPartitioner
	batch    plugins.TopicPartitioner // cur, if it wants OnNewBatch
	fallback plugins.TopicPartitioner // the default partitioner
	// ignoreKeys: the default partitioner does not hash keys
	// (PartitionerIgnoreKeys); fallback is then the sticky one.
	ignoreKeys bool
	scratch    plugins.Record // what the plugin sees, reused

	// franz-go partitions a record again after OnNewBatch. A plugin that
	// keeps no per-topic state would answer the same, so the previous
	// answer is reused instead of calling it twice; either way the
	// record counts once in Stats.
	again   bool
	last    int         // the plugin's last answer, -1 if the default partitioner answered
	lastRec *kgo.Record // the last record; only compared, it may be complete since

	// n is the topic's partition count as franz-go last gave it, for
	// stage batches choosing partitions beforehand (Producer.precompute);
	// the only field read by other goroutines.
	n atomic.Int32
}

// RequiresConsistency is always true: partitions are exact partition numbers
// (explicit partitions, plugins and Java-compatible key hashing all need
// them), never indexes into the currently writable partitions.
func (*topicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (t *topicPartitioner) OnNewBatch() {
	t.fallback.OnNewBatch()
	if t.batch != nil {
		t.batch.OnNewBatch()
	}
	t.again = true
}

// Partition returns the record's partition, or -1 to fail it: franz-go
// fails a record given a partition out of range, and finish reports
// e.partErr, the reason, instead of franz-go's error.
func (t *topicPartitioner) Partition(kr *kgo.Record, n int) int {
	h, ok := kr.Context.(*envHandle)
	if !ok {
		// Not a record of the producer's: one that the owner of a
		// client it was given (ClientFactory) produced with the client
		// directly, such as kafkasource's dead-letter records in the
		// source's transaction. It gets the default partitioner.
		r := recordOf(kr)
		part, _ := t.fallback.Partition(context.Background(), &r, int32(n))
		return int(part)
	}
	e := (*envelope)(h)
	if int32(n) != t.n.Load() {
		t.n.Store(int32(n))
	}
	again := t.again && t.lastRec == kr
	t.again, t.lastRec = false, kr
	part := t.partition(e, kr, n, again)
	if part >= 0 && (e.cb != nil || e.seen != 0) {
		// A callback or an OnAck will look at the record as produced.
		// Store the client's timestamp and the partition (final for
		// a delivered record: franz-go partitions a record again only
		// right after OnNewBatch, and never moves it once buffered)
		// now, while the caller's record is in this core's cache: by
		// the time the record completes it is not, and on another
		// core. finish puts the partition back if the record fails.
		r := e.rec
		r.Timestamp, r.Partition, r.HasPartition = kr.Timestamp, int32(part), true
		e.stored = true
	}
	return part
}

func (t *topicPartitioner) partition(e *envelope, kr *kgo.Record, n int, again bool) int {
	if e.explicit {
		if kr.Partition < 0 || int(kr.Partition) >= n {
			e.partErr = fmt.Errorf("%w: record names partition %d, which topic %q does not have (it has %d)", ErrUnknownPartition, kr.Partition, kr.Topic, n)
			return -1
		}
		return int(kr.Partition)
	}
	s := e.ch.part
	g := &s.g
	if s.p == nil {
		// The built-in default is the fallback itself: no plugin
		// call, it cannot fail. A keyed record goes where its key
		// hashes (what the default partitioner does, without filling
		// in the scratch record: storing pointers costs while the
		// garbage collector marks).
		if !again {
			g.st.calls.Add(1)
		}
		if kr.Key != nil && !t.ignoreKeys {
			t.last = -1
			return int(plugins.KeyPartition(kr.Key, int32(n)))
		}
		t.scratch = plugins.Record{}
		return t.def(&t.scratch, n)
	}
	if e.pre && e.preN == int32(n) {
		// Asked beforehand by a stage batch, and counted then.
		switch {
		case e.prePart >= 0:
			t.last = int(e.prePart)
			return t.last
		case e.partErr != nil:
			return -1 // failed under FailRecord
		}
		t.scratch = recordOf(kr)
		return t.def(&t.scratch, n)
	}
	e.partErr = nil // an answer from before the partition count changed
	if s != t.slot {
		t.slot, t.cur, t.batch = s, s.p, nil
		if s.perTopic != nil {
			tp := s.perTopic.ForTopic(kr.Topic)
			t.cur, t.batch = tp, tp
		}
	}
	r := &t.scratch
	*r = recordOf(kr)
	if again && (t.batch == nil || t.last < 0) {
		// The same record right after OnNewBatch: the plugin would
		// answer the same, or the default partitioner answered.
		if t.last >= 0 {
			return t.last
		}
		return t.def(r, n)
	}
	if !again && !g.allow(1) {
		return t.failed(e, kr, n, nil)
	}
	var part int32
	err := g.call(1, func() (err error) {
		part, err = t.cur.Partition(e.ctx, r, int32(n))
		return err
	})
	if again {
		// The call for the same record after OnNewBatch was counted
		// with the first.
		g.st.calls.Add(^uint64(0))
	}
	switch {
	case err == nil && part >= 0 && part < int32(n):
		if !again {
			g.ok()
		}
		t.last = int(part)
		return t.last
	case err == nil && part == plugins.DefaultPartition:
		if !again {
			g.ok()
		}
		return t.def(r, n)
	case err == nil:
		err = fmt.Errorf("partition %d out of range [0, %d)", part, n)
	}
	if !again {
		g.failed(err) // the record counts once
	}
	return t.failed(e, kr, n, err)
}

// failed applies the partitioner's failure policy to a record on which it
// failed with err, or was bypassed (err nil): the default partitioner
// chooses, or the record fails with e.partErr.
func (t *topicPartitioner) failed(e *envelope, kr *kgo.Record, n int, err error) int {
	g := &e.ch.part.g
	if g.policy == FailRecord {
		e.partErr = g.recordError(err)
		return -1
	}
	t.scratch = recordOf(kr)
	return t.def(&t.scratch, n)
}

// def runs the default partitioner, which never fails.
func (t *topicPartitioner) def(r *plugins.Record, n int) int {
	part, _ := t.fallback.Partition(context.Background(), r, int32(n))
	t.last = -1
	return int(part)
}
