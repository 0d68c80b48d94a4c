package gateway

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Kafka error codes the gateway answers with.
const (
	codeNone                     int16 = 0
	codeUnknownServerError       int16 = -1
	codeCorruptMessage           int16 = 2
	codeUnknownTopicOrPartition  int16 = 3
	codeLeaderNotAvailable       int16 = 5
	codeNotLeaderOrFollower      int16 = 6
	codeRequestTimedOut          int16 = 7
	codeMessageTooLarge          int16 = 10
	codeInvalidRequiredAcks      int16 = 21
	codeGroupAuthorizationFailed int16 = 30
	codeUnsupportedVersion       int16 = 35
	codeInvalidRequest           int16 = 42
	codeUnsupportedMessageFormat int16 = 43
	codeOutOfOrderSequence       int16 = 45
	codeDuplicateSequence        int16 = 46
	codeInvalidProducerEpoch     int16 = 47
	codeTxnIDAuthorizationFailed int16 = 53
	codeUnknownProducerID        int16 = 59
	codeInvalidRecord            int16 = 87
)

// dedupWindow is how many recent batches per producer and partition are
// remembered, as a broker does (the most a client keeps in flight).
const dedupWindow = 5

// producerStateIdle is how long the sequence state of a producer and
// partition is kept after its last batch.
const producerStateIdle = 15 * time.Minute

// producerStateBytes is what the state of one producer and partition is
// taken to cost, to bound how many are kept (see producers.max): the state
// and the results of its last batches, about 1.5KiB as measured with
// batches of one record.
const producerStateBytes = 2 << 10

// producers hands out producer ids and deduplicates the batches of
// idempotent clients by (producer id, topic, partition, sequence).
type producers struct {
	// base makes the ids of this process unlikely to meet those of
	// another gateway or an earlier run: the high bits are random.
	base int64

	// max bounds the states kept: the producer id of a batch is the
	// client's to choose, so without a bound a client sending batches
	// under ever new ids would grow the states for producerStateIdle.
	// Beyond it, a new state replaces an arbitrary one, whose producer
	// loses deduplication of a retry of its earlier batches. 0: no bound.
	max int

	mu        sync.Mutex
	next      int64
	states    map[seqKey]*seqState
	lastSweep time.Time
}

type seqKey struct {
	pid       int64
	topic     string
	partition int32
}

// seqState is what is known of one producer's batches to one partition.
type seqState struct {
	epoch int16
	// next is the sequence expected next; known is false until the
	// first batch, whose sequence is taken as it comes (the producer may
	// have written through another gateway, or this one restarted).
	next   int32
	known  bool
	recent [dedupWindow]seqEntry
	pos    int
	used   time.Time
}

type seqEntry struct {
	first, last int32
	res         *batchResult
}

func newProducers() *producers {
	return &producers{
		base:   int64(rand.Int32N(1<<30)+1) << 32,
		states: map[seqKey]*seqState{},
	}
}

// newID returns a new producer id, with epoch 0, for InitProducerId. As
// Kafka does for a producer without a transactional id, the id and epoch a
// client names (InitProducerId v3+, to bump its epoch after an error) are
// not used: a client could otherwise name another's id and fence it with
// the next epoch.
func (ps *producers) newID() (int64, int16) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.sweep()
	ps.next++
	return ps.base + ps.next, 0
}

// sweep forgets the states idle for longer than producerStateIdle; at most
// once a minute.
func (ps *producers) sweep() {
	now := time.Now()
	if now.Sub(ps.lastSweep) < time.Minute {
		return
	}
	ps.lastSweep = now
	for k, st := range ps.states {
		if now.Sub(st.used) > producerStateIdle {
			delete(ps.states, k)
		}
	}
}

// verdict is what check decided for a batch.
type verdict uint8

const (
	// sendAll: a new batch; send every record.
	sendAll verdict = iota
	// answered: res already holds (or will hold) the answer; send
	// nothing.
	answered
	// sendFailed: a retry of a batch that failed; send only the records
	// of prev that were not delivered or filtered.
	sendFailed
)

// check classifies a batch of an idempotent producer (pid >= 0) with
// sequences first..first+count-1. For sendAll and sendFailed, res is the
// caller's new result, now remembered for the batch; for answered, check
// returns the result to answer with: the earlier attempt's (pending or
// successful) or an error.
func (ps *producers) check(k seqKey, epoch int16, first int32, count int32, res *batchResult) (verdict, *batchResult, *batchResult) {
	last := first + count - 1
	if first+count-1 < first { // wrapped past MaxInt32
		last = count - 1 - (math.MaxInt32 - first) - 1
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := ps.states[k]
	if st == nil {
		if ps.max > 0 && len(ps.states) >= ps.max {
			for old := range ps.states {
				delete(ps.states, old)
				break
			}
		}
		st = &seqState{epoch: epoch}
		ps.states[k] = st
	}
	st.used = time.Now()
	switch {
	case epoch < st.epoch:
		return answered, failedResult(codeInvalidProducerEpoch, "producer epoch is older than one this gateway saw"), nil
	case epoch > st.epoch:
		*st = seqState{epoch: epoch, used: st.used}
	}
	for i := range st.recent {
		e := &st.recent[i]
		if e.res == nil || e.first != first {
			continue
		}
		if e.last != last {
			return answered, failedResult(codeInvalidRequest, "batch sequence range differs from an earlier batch with the same first sequence"), nil
		}
		if !e.res.isDone() || e.res.code == 0 {
			// The same batch again: the client did not get the
			// answer. It gets the first attempt's.
			return answered, e.res, nil
		}
		prev := e.res
		e.res = res
		return sendFailed, nil, prev
	}
	if st.known && first != st.next {
		if int32(first-st.next) < 0 {
			// Older than the window: written long ago.
			return answered, failedResult(codeDuplicateSequence, "batch is older than the last five this gateway remembers"), nil
		}
		return answered, failedResult(codeOutOfOrderSequence, "batch sequence is not the next one expected"), nil
	}
	st.known = true
	st.next = last + 1
	if st.next < 0 {
		st.next = 0
	}
	st.recent[st.pos] = seqEntry{first: first, last: last, res: res}
	st.pos = (st.pos + 1) % dedupWindow
	return sendAll, nil, nil
}
