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
// topicPartitioner reads the producer's current partitioner from an atomic
// pointer on every call, which is how SetPartitioner swaps partitioners
// without a new client.
type kgoPartitioner struct{ p *Producer }

func (k kgoPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	name := plugins.PartitionerDefault
	if k.p.ignoreKeys {
		// The default partitioner without its key hashing.
		name = plugins.PartitionerSticky
	}
	def, _ := plugins.NewPartitioner(name, nil)
	t := &topicPartitioner{p: k.p, fallback: def.(plugins.PerTopicPartitioner).ForTopic(topic)}
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
	p        *Producer
	slot     *partitionerSlot         // the partitioner cur belongs to
	cur      plugins.Partitioner      // slot.p, or its TopicPartitioner
	batch    plugins.TopicPartitioner // cur, if it wants OnNewBatch
	fallback plugins.TopicPartitioner // the default partitioner
	scratch  plugins.Record           // what the plugin sees, reused

	// franz-go partitions a record again after OnNewBatch. A plugin that
	// keeps no per-topic state would answer the same, so the previous
	// answer is reused instead of calling it twice.
	again    bool
	last     int              // the plugin's last answer, -1 if the default partitioner answered
	lastSlot *partitionerSlot // the partitioner of the last record
	lastRec  *kgo.Record      // the last record; only compared, it may have been recycled since

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

func (t *topicPartitioner) Partition(kr *kgo.Record, n int) int {
	e := envelopeOf(kr)
	if int32(n) != t.n.Load() {
		t.n.Store(int32(n))
	}
	part := t.partition(e, kr, n)
	if e.cb != nil || e.seen != 0 {
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

func (t *topicPartitioner) partition(e *envelope, kr *kgo.Record, n int) int {
	if e.explicit {
		// Out of range fails the record in franz-go; finish explains.
		return int(kr.Partition)
	}
	s := t.p.part.Load()
	if s.isDef {
		// The built-in default is the fallback itself: no plugin
		// call, it cannot fail. A keyed record goes where its key
		// hashes (what the default partitioner does, without filling
		// in the scratch record: storing pointers costs while the
		// garbage collector marks).
		s.stats.calls.Add(1)
		if kr.Key != nil && !t.p.ignoreKeys {
			t.last = -1
			return int(plugins.KeyPartition(kr.Key, int32(n)))
		}
		t.scratch = plugins.Record{}
		return t.def(&t.scratch, n)
	}
	if e.preSlot == s && e.preN == int32(n) {
		// Chosen beforehand by a stage batch, and counted then: a
		// partition in range, or -1 for the default partitioner
		// (DefaultPartition, an error or a partition out of range).
		t.again, t.lastSlot, t.lastRec = false, s, kr
		if e.prePart >= 0 {
			t.last = int(e.prePart)
			return t.last
		}
		t.scratch = recordOf(kr)
		return t.def(&t.scratch, n)
	}
	again := t.again && t.lastSlot == s && t.lastRec == kr && t.batch == nil
	t.again, t.lastSlot, t.lastRec = false, s, kr
	if s != t.slot {
		t.slot, t.cur, t.batch = s, s.p, nil
		if s.perTopic != nil {
			tp := s.perTopic.ForTopic(kr.Topic)
			t.cur, t.batch = tp, tp
		}
	}
	r := &t.scratch
	*r = recordOf(kr)
	if again && t.last >= 0 {
		return t.last
	}
	if again || !s.br.allow() {
		if !again {
			s.stats.bypasses.Add(1)
		}
		return t.def(r, n)
	}
	part, err := t.call(kr.Context, r, int32(n))
	switch {
	case err == nil && part >= 0 && part < int32(n):
		s.br.success()
		t.last = int(part)
		return t.last
	case err == nil && part == plugins.DefaultPartition:
		s.br.success()
		return t.def(r, n)
	case err == nil:
		err = fmt.Errorf("partition %d out of range [0, %d)", part, n)
	}
	t.p.pluginFailed(s.name, HookPartition, s.stats, &s.br, err)
	return t.def(r, n)
}

// call calls the partitioner with the record's Send context.
func (t *topicPartitioner) call(ctx context.Context, r *plugins.Record, n int32) (part int32, err error) {
	st := t.slot.stats
	start := st.start()
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		st.end(start)
	}()
	return t.cur.Partition(ctx, r, n)
}

// def runs the default partitioner, which never fails.
func (t *topicPartitioner) def(r *plugins.Record, n int) int {
	part, _ := t.fallback.Partition(context.Background(), r, int32(n))
	t.last = -1
	return int(part)
}
