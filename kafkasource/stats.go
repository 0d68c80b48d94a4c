package kafkasource

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
)

// Stats are a source's counters at one moment.
type Stats struct {
	// Partitions are the input partitions this process has read or been
	// assigned, sorted by topic and partition.
	Partitions []PartitionStats
	// Commits counts the batches committed: transactions with
	// ExactlyOnce, offset commits with AtLeastOnce. Aborts counts the
	// transactions aborted (a rebalance, a stopped partition, an
	// interrupted batch); their records are read again.
	Commits, Aborts uint64
}

// PartitionStats are the counters of one input partition.
type PartitionStats struct {
	Topic     string
	Partition int32
	// Assigned says whether the group gives the partition to this
	// process now.
	Assigned bool
	// Read counts the records read from the partition, including those
	// read again after an aborted transaction or a rebalance.
	Read uint64
	// Delivered, Filtered and DeadLettered count the records whose
	// outcome was committed: produced to the output, dropped by a plugin,
	// or sent to the dead-letter topic. With ExactlyOnce each input record
	// counts once in one of them, in the process that committed it.
	Delivered, Filtered, DeadLettered uint64
	// Lag is how many offsets the partition holds after the last record
	// read (the last stable offset, records of open transactions and
	// transaction markers included), as of the last fetch that returned
	// records of it; -1 before that.
	Lag int64
	// Stopped says a record failed with no dead-letter topic to take it:
	// the partition is paused at offset StoppedAt, for StopReason, until
	// the process restarts or Source.ResumeStopped takes it up again.
	Stopped    bool
	StoppedAt  int64
	StopReason string
}

type topicPartition struct {
	topic     string
	partition int32
}

// stats holds a source's counters; Run updates them once per fetch and per
// batch, the admin endpoint reads them.
type stats struct {
	mu    sync.Mutex
	parts map[topicPartition]*PartitionStats
	// from is where each stopped partition is read again from if it is
	// resumed (stop.from).
	from      map[topicPartition]int64
	committed atomic.Uint64
	aborted   atomic.Uint64
}

// get returns the counters of tp; mu must be held.
func (st *stats) get(tp topicPartition) *PartitionStats {
	ps := st.parts[tp]
	if ps == nil {
		ps = &PartitionStats{Topic: tp.topic, Partition: tp.partition, Lag: -1}
		st.parts[tp] = ps
	}
	return ps
}

// noteFetch counts the records of a fetched partition and its lag. It
// reports whether the partition is stopped: its records are then not
// processed, nor counted.
func (st *stats) noteFetch(fp kgo.FetchTopicPartition) (stopped bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ps := st.get(topicPartition{fp.Topic, fp.Partition})
	if ps.Stopped {
		return true
	}
	ps.Read += uint64(len(fp.Records))
	end := fp.LastStableOffset
	if end <= 0 {
		end = fp.HighWatermark
	}
	ps.Lag = max(0, end-(fp.Records[len(fp.Records)-1].Offset+1))
	return false
}

// count adds the outcomes of a committed batch, except the records of the
// stopped partitions from the record that stopped them on.
func (st *stats) count(slots []slot, stops map[topicPartition]stop) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var ps *PartitionStats
	var stopAt int64 = -1
	for i := range slots {
		sl := &slots[i]
		if ps == nil || ps.Partition != sl.in.Partition || ps.Topic != sl.in.Topic {
			tp := topicPartition{sl.in.Topic, sl.in.Partition}
			ps, stopAt = st.get(tp), -1
			if s, ok := stops[tp]; ok {
				stopAt = s.in.Offset
			}
		}
		if stopAt >= 0 && sl.in.Offset >= stopAt {
			continue
		}
		switch sl.res.Outcome {
		case pipeline.Delivered:
			ps.Delivered++
		case pipeline.Filtered:
			ps.Filtered++
		default: // failed and dead-lettered: a stop otherwise
			ps.DeadLettered++
		}
	}
}

func (st *stats) stop(tp topicPartition, offset, from int64, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ps := st.get(tp)
	ps.Stopped, ps.StoppedAt, ps.StopReason = true, offset, err.Error()
	if st.from == nil {
		st.from = map[topicPartition]int64{}
	}
	st.from[tp] = from
}

// resume marks every stopped partition as running again and returns the
// offset each is to be read again from.
func (st *stats) resume() map[topicPartition]int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.from
	st.from = nil
	for tp := range out {
		ps := st.get(tp)
		ps.Stopped, ps.StoppedAt, ps.StopReason = false, 0, ""
	}
	return out
}

func (st *stats) assign(parts map[string][]int32, on bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			st.get(topicPartition{t, p}).Assigned = on
		}
	}
}

func (s *Source) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.stats.assign(parts, true)
}

func (s *Source) revoked(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.stats.assign(parts, false)
}

// Stats returns the source's counters. It is safe to call while Run runs.
func (s *Source) Stats() Stats {
	st := &s.stats
	st.mu.Lock()
	out := Stats{Partitions: make([]PartitionStats, 0, len(st.parts))}
	for _, ps := range st.parts {
		out.Partitions = append(out.Partitions, *ps)
	}
	st.mu.Unlock()
	out.Commits, out.Aborts = st.committed.Load(), st.aborted.Load()
	slices.SortFunc(out.Partitions, func(a, b PartitionStats) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out
}
