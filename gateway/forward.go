package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/pipeline"
)

// Forwarding: when nothing in the pipeline reads or changes records, a
// client's record batch goes upstream as it is, in a Produce request of the
// gateway's own, instead of being decoded into records and produced again.
// RATIONALE.md ("Forward batches when nothing reads them") says why each
// rule here is what it is.

// Passer is what a Sender also is when batches may bypass it:
// *pipeline.Producer. Passthrough reports whether its current chain passes
// records as they are, and the settings a batch sent past it must keep.
type Passer interface {
	Passthrough() (pipeline.Passthrough, bool)
}

// ForwardBatches makes the gateway forward each client record batch
// upstream as it is, without decoding its records, when the Sender is a
// Passer whose current chain passes records as they are (no interceptor,
// bytes serializers, the default partitioner), the client's partition is
// kept (KeepPartition), and the batch is what the upstream producer would
// write too: its codec is the producer's compression (or the producer sets
// none) and it is no larger than the producer's largest batch. Other
// batches take the record path, through the Sender. Default: off.
func ForwardBatches(on bool) Option {
	return optionFunc(func(g *Gateway) { g.forwardOn = on })
}

// ForwardMinRecords makes a client batch of fewer than n records take the
// record path even where ForwardBatches would forward it. Each forwarded
// batch is an upstream request of its own, and a partition's forwarded
// batches go at most five at a time, in order; on the record path the
// records of many client batches share the pipeline's upstream batches.
// A client that sends small batches fast (a low linger at a moderate rate)
// therefore waits longer for forwarded batches, and the broker works more
// per record, while the CPU forwarding saves the gateway is per record, so
// it matters for large batches, which a client sends when it is busy.
// Default: 1 (every batch that may be forwarded is).
func ForwardMinRecords(n int) Option {
	return optionFunc(func(g *Gateway) { g.forwardMin = int32(max(n, 1)) })
}

// CheckForwardedRecords makes the gateway read every record of a batch it
// forwards (decompressing it if need be) and refuse the batch with
// CORRUPT_MESSAGE when one is malformed, as the record path does. Apache
// Kafka checks the records of every batch it is sent, so a gateway in
// front of it need not; an upstream that checks only a batch's header and
// CRC, such as the embedded broker (kfake), would store a malformed record
// and hand it to every consumer. Default: off.
func CheckForwardedRecords(on bool) Option {
	return optionFunc(func(g *Gateway) { g.checkForwarded = on })
}

// Bounds of a forwarded batch's retries upstream. Every wait is also
// bounded by the client request's timeout_ms.
const (
	forwardAttempts   = 10
	forwardBackoff    = 10 * time.Millisecond
	forwardMaxBackoff = time.Second
	// forwardMetaAge is how long the upstream leaders of a topic are
	// used before they are asked for again (an error refreshes them at
	// once).
	forwardMetaAge = time.Minute
)

// forwarder sends forwarded batches upstream and keeps the records of each
// partition in order across the two paths: a lane per partition counts the
// batches in flight on each path, and a batch waits until the other path
// has none in the lane before it starts (see enter).
type forwarder struct {
	g   *Gateway
	src Passer

	mu    sync.Mutex
	lanes map[laneKey]*lane
	meta  map[string]*topicMeta
	// seqs are the partitions' upstream producer ids and sequences
	// (acks=all); kept for the gateway's life, one per partition.
	seqs map[laneKey]*upstreamSeq
	// sending counts the lanes with a goroutine sending their batches;
	// Shutdown waits for them.
	sending sync.WaitGroup
}

type laneKey struct {
	topic     string
	partition int32
}

// lane is one upstream partition's batches in flight, on both paths.
type lane struct {
	// records counts the batches on the record path not done yet.
	records int
	// queue holds the forwarded batches not done yet, in the order they
	// were read; the first is being sent. At most one Produce request
	// per partition is in flight: a forwarded batch is not idempotent
	// upstream, and a retry behind a later batch would reorder them.
	queue []*forwarded
	// waiting counts the batches waiting to enter, by path; turn is the
	// path the first of them waits for, noTurn if none: while a batch
	// waits for the other path to empty, no more enter that path, or a
	// steady stream on it could keep the waiter out until its timeout.
	waiting [2]int
	turn    path
	// wake is closed when something a waiter waits for changed; nil if
	// no one waits.
	wake chan struct{}
}

// path is the way a batch goes upstream.
type path int8

const (
	recordPath path = iota
	forwardPath
	noTurn path = -1
)

// inFlight is how many batches of p are in l.
func (l *lane) inFlight(p path) int {
	if p == forwardPath {
		return len(l.queue)
	}
	return l.records
}

func (l *lane) idle() bool {
	return l.records == 0 && len(l.queue) == 0 && l.waiting == [2]int{}
}

// broadcast wakes every waiter of l.
func (l *lane) broadcast() {
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// forwarded is a batch on its way upstream. Only its lane's goroutine
// uses the fields after br.
type forwarded struct {
	ctx  context.Context
	key  laneKey
	raw  []byte
	n    int32 // records
	pass pipeline.Passthrough
	br   *batchResult

	// pid, epoch and seq are what raw was last written with (see
	// sequence).
	pid   int64
	epoch int16
	seq   int32
	gen   int
	// answer is the outcome once done.
	answer answer
	done   bool
	// attempts counts the failures; refresh asks for the partition's
	// leader again before the next attempt.
	attempts int
	refresh  bool
}

// topicMeta is what the forwarder knows of a topic upstream.
type topicMeta struct {
	id      [16]byte
	leaders []int32 // by partition; -1 when it has none
	at      time.Time
}

func newForwarder(g *Gateway) *forwarder {
	src, ok := g.producer.(Passer)
	if !ok || !g.forwardOn {
		return nil
	}
	return &forwarder{g: g, src: src, lanes: map[laneKey]*lane{}, meta: map[string]*topicMeta{}, seqs: map[laneKey]*upstreamSeq{}}
}

// forwardable reports whether client batch b (raw) may go upstream as it
// is, and the settings it must be sent with: the one place of the rule
// ForwardBatches states.
func (f *forwarder) forwardable(b *batch, raw []byte, keep bool) (pipeline.Passthrough, bool) {
	if f == nil || !keep || b.Attributes&(attrTransactional|attrControl) != 0 || b.NumRecords < f.g.forwardMin {
		return pipeline.Passthrough{}, false
	}
	pass, ok := f.src.Passthrough()
	if !ok {
		return pipeline.Passthrough{}, false
	}
	// The codec numbers of batch attributes are pipeline.Codec's.
	if pass.Codec != pipeline.NoCompression && pipeline.Codec(b.Attributes&codecMask) != pass.Codec {
		return pipeline.Passthrough{}, false
	}
	if len(raw) > int(pass.BatchMaxBytes) {
		return pipeline.Passthrough{}, false
	}
	return pass, true
}

// enter waits until lane k has no batch in flight on the other path than
// fw's (a forwarded batch, or nil for one of the record path), and counts
// one more on its own: records of one partition never overtake each other
// across a switch of path (a reload, or a batch the rule sends the other
// way). A forwarded batch is queued; a batch of the record path counts
// until leave. It fails if ctx ends or the gateway gives up answering
// first.
func (f *forwarder) enter(ctx context.Context, k laneKey, fw *forwarded) error {
	p := recordPath
	if fw != nil {
		p = forwardPath
	}
	f.mu.Lock()
	l := f.lanes[k]
	if l == nil {
		l = &lane{turn: noTurn}
		f.lanes[k] = l
	}
	waited := false
	for l.inFlight(1-p) > 0 || (l.turn != noTurn && l.turn != p) {
		if !waited {
			waited = true
			l.waiting[p]++
		}
		if l.turn == noTurn {
			l.turn = p
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		w := l.wake
		f.mu.Unlock()
		var err error
		select {
		case <-w:
		case <-ctx.Done():
			err = ctx.Err()
		case <-f.g.stopWrite:
			err = errStopping
		}
		f.mu.Lock()
		if err != nil {
			// l stays in f.lanes while anyone waits in it.
			l.waiting[p]--
			if l.waiting[p] == 0 && l.turn == p {
				l.turn = noTurn
				l.broadcast()
			}
			f.settleLane(k, l)
			f.mu.Unlock()
			return err
		}
	}
	if waited {
		l.waiting[p]--
	}
	if l.turn == p {
		l.turn = noTurn
	}
	if fw == nil {
		l.records++
		f.mu.Unlock()
		return nil
	}
	l.queue = append(l.queue, fw)
	start := len(l.queue) == 1
	if start {
		f.sending.Add(1)
	}
	f.mu.Unlock()
	if start {
		go f.drain(l)
	}
	return nil
}

// errStopping is why a batch fails that waited when the gateway gave up
// answering.
var errStopping = errors.New("the gateway is stopping")

// leave ends a batch of the record path in lane k.
func (f *forwarder) leave(k laneKey) {
	f.mu.Lock()
	l := f.lanes[k]
	l.records--
	f.settleLane(k, l)
	f.mu.Unlock()
}

// settleLane wakes the waiters of l when a path has emptied, and forgets l
// when nothing is in it or waits for it; under f.mu.
func (f *forwarder) settleLane(k laneKey, l *lane) {
	if l.records == 0 || len(l.queue) == 0 {
		l.broadcast()
	}
	if l.idle() {
		delete(f.lanes, k)
	}
}

// drain sends the batches of lane l until it is empty, in rounds: up to
// forwardWindow batches from the head of the queue at once when they are
// idempotent upstream (acks=all), one otherwise. A round's batches are
// answered in queue order; a failure keeps its batch and those after it
// at the head for the next round, sent again with the same sequences, so
// that the upstream writes each once and in order.
func (f *forwarder) drain(l *lane) {
	defer f.sending.Done()
	var round []*forwarded
	for {
		f.mu.Lock()
		w := 1
		if st := f.seqs[l.queue[0].key]; st != nil && time.Since(st.written) < forwardStateFresh {
			w = forwardWindow
		}
		round = append(round[:0], l.queue[:min(w, len(l.queue))]...)
		f.mu.Unlock()
		n := f.sendRound(round)
		f.mu.Lock()
		clear(l.queue[:n])
		l.queue = l.queue[n:]
		empty := len(l.queue) == 0
		f.settleLane(round[0].key, l)
		f.mu.Unlock()
		// Answered after they left the lane: the client's next
		// batch, sent once it has this answer, finds the lane as it
		// is now.
		for _, fw := range round[:n] {
			fw.br.settleForwarded(fw.answer)
		}
		if empty {
			return
		}
	}
}

// forwardWindow is how many idempotent forwarded batches of one partition
// are on their way at once: the most a broker remembers per producer and
// partition to recognise one sent again.
const forwardWindow = 5

// forwardStateFresh: a partition's batches go forwardWindow at a time only
// while the upstream surely knows the producer id's last sequence for it,
// that is within this time of its last batch written. A broker takes the
// first batch of a producer it has no state for whatever its sequence
// (Kafka 2.5+), so batches sent at once then could be written in the
// order they arrive; one at a time until one is written, they cannot.
// Brokers keep the state for far longer (producer.id.expiration.ms, a day
// by default).
const forwardStateFresh = time.Minute

// sendRound sends the batches of round that have no answer yet, at once,
// and returns how many of round, from the first, have their answer now
// (fw.done); the others stay for the next round, which comes after a
// backoff when a batch failed.
func (f *forwarder) sendRound(round []*forwarded) (answered int) {
	if round[0].pass.Acks == pipeline.AcksAll {
		if err := f.sequence(round); err != nil {
			f.failed(round[0], err)
			return leadingDone(round)
		}
	} else {
		setProducer(round[0].raw, -1, -1, -1)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(round))
	for i, fw := range round {
		if fw.done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fw.answer, errs[i] = f.sendOnce(fw)
		}()
	}
	wg.Wait()
	// With idempotence, a batch is written only after every batch ahead
	// of it: each written one is done, even behind one that failed.
	var written int64 = -2 // the producer id of a batch written, if any
	for i, fw := range round {
		if !fw.done && errs[i] == nil && (fw.answer.code == codeNone || fw.answer.code == codeDuplicateSequence) {
			if fw.answer.code == codeDuplicateSequence {
				// Written by an earlier attempt whose answer
				// was lost; its offset is not known.
				fw.answer = answer{base: -1, appendTime: -1}
			}
			fw.done = true
			written = fw.pid
		}
	}
	if written >= 0 {
		f.mu.Lock()
		if st := f.seqs[round[0].key]; st != nil && st.pid == written {
			st.written = time.Now()
		}
		f.mu.Unlock()
	}
	for i, fw := range round {
		if fw.done {
			continue
		}
		// The first batch without an answer. Out of order behind a
		// batch of the same round, it was written to the connection
		// first or follows one that failed: sent again, in order.
		if !(i > 0 && errs[i] == nil && fw.answer.code == codeOutOfOrderSequence) {
			f.failed(fw, errs[i])
		}
		break
	}
	return leadingDone(round)
}

// answer is the outcome of a forwarded batch: the Kafka error code and
// message (0 when written), the records the upstream named as the cause,
// and the upstream base offset and log append time (-1 when unknown).
type answer struct {
	code             int16
	msg              string
	failures         []recordFailure
	base, appendTime int64
}

// failedAnswer is the answer of a batch that failed with code for msg.
func failedAnswer(code int16, msg string) answer {
	return answer{code: code, msg: msg, base: -1, appendTime: -1}
}

// leadingDone is how many batches of round, from the first, are done.
func leadingDone(round []*forwarded) int {
	n := 0
	for n < len(round) && round[n].done {
		n++
	}
	return n
}

// failed handles the failure of fw, the first batch of its lane without
// an answer (err when no answer came, else fw.answer): a retriable one is
// sent again after a backoff, within its attempts and context; any other
// answers fw. The batches after one the upstream refused take its
// sequences; after one that may have been written (no answer), the
// partition goes on under a new producer id.
func (f *forwarder) failed(fw *forwarded, err error) {
	a := fw.answer
	var ke *kerr.Error
	// An error without an answer (no connection, no leader known) is
	// retried as the upstream's retriable codes are.
	retriable := err != nil && !errors.As(err, &ke)
	if err != nil {
		a = failedAnswer(errorCode(err))
	} else if a.msg == "" {
		a.msg = "kpipe gateway: upstream: " + kerr.ErrorForCode(a.code).Error()
	}
	switch a.code {
	case codeOutOfOrderSequence, codeUnknownProducerID, codeInvalidProducerEpoch:
		// The upstream does not have this producer's state for the
		// partition as the gateway does: go on under a new one.
		f.resetSequence(fw.key)
		retriable = true
	}
	retriable = retriable || kerr.IsRetriable(kerr.ErrorForCode(a.code))
	if errors.Is(err, pipeline.ErrUnknownPartition) {
		retriable = false // the upstream's partitions were read just now
	}
	fw.attempts++
	fw.refresh = true
	if retriable && fw.attempts < forwardAttempts && fw.ctx.Err() == nil {
		select {
		case <-time.After(min(forwardBackoff<<(fw.attempts-1), forwardMaxBackoff)):
			return
		case <-fw.ctx.Done():
			a = failedAnswer(codeRequestTimedOut, "kpipe gateway: "+fw.ctx.Err().Error()+" after "+a.msg)
		}
	}
	refused := err == nil && !retriable // the upstream answered: not written
	fw.answer, fw.done = a, true
	if fw.pass.Acks != pipeline.AcksAll {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.seqs[fw.key]; refused && st != nil && st.pid == fw.pid && st.gen == fw.gen {
		// Its sequences were not used: the batches after it take
		// them.
		st.next = fw.seq
		st.gen++
		return
	}
	// It may have been written: go on under a new producer id.
	delete(f.seqs, fw.key)
}

// upstreamSeq is the producer id and epoch a partition's forwarded batches
// are written with when they are idempotent upstream, and the sequence of
// the next.
type upstreamSeq struct {
	pid   int64
	epoch int16
	next  int32
	// gen counts the times next went back, to the sequence of a batch
	// the upstream refused: the batches sequenced before take new ones.
	gen int
	// written is when a batch was last written under pid.
	written time.Time
}

// sequence gives the batches of round that have none under the partition's
// current producer id their producer id, epoch and sequences, in order,
// getting a producer id from the upstream for a partition without one.
func (f *forwarder) sequence(round []*forwarded) error {
	k := round[0].key
	f.mu.Lock()
	st := f.seqs[k]
	f.mu.Unlock()
	if st == nil {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.ProducerID, req.ProducerEpoch = -1, -1
		req.TransactionTimeoutMillis = 60_000
		resp, err := req.RequestWith(round[0].ctx, round[0].pass.Client)
		if err != nil {
			return fmt.Errorf("upstream producer id: %w", err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("upstream producer id: %w", err)
		}
		st = &upstreamSeq{pid: resp.ProducerID, epoch: resp.ProducerEpoch}
		f.mu.Lock()
		f.seqs[k] = st
		f.mu.Unlock()
	}
	for _, fw := range round {
		if fw.done || (fw.pid == st.pid && fw.epoch == st.epoch && fw.gen == st.gen) {
			continue
		}
		fw.pid, fw.epoch, fw.seq, fw.gen = st.pid, st.epoch, st.next, st.gen
		setProducer(fw.raw, fw.pid, fw.epoch, fw.seq)
		// Sequences wrap from the largest int32 to 0, as a broker's.
		st.next = int32((int64(st.next) + int64(fw.n)) % (math.MaxInt32 + 1))
	}
	return nil
}

// resetSequence makes the partition of k go on under a new producer id.
func (f *forwarder) resetSequence(k laneKey) {
	f.mu.Lock()
	delete(f.seqs, k)
	f.mu.Unlock()
}

// sendOnce sends fw to its partition's leader once; err is set when no
// answer came (or the leader is unknown).
func (f *forwarder) sendOnce(fw *forwarded) (answer, error) {
	leader, id, err := f.leader(fw.ctx, fw.pass.Client, fw.key, fw.refresh)
	if err != nil {
		return answer{}, err
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = int16(fw.pass.Acks)
	req.TimeoutMillis = int32(fw.pass.RequestTimeout.Milliseconds())
	rt := kmsg.NewProduceRequestTopic()
	// The name for Produce up to v12, the id from v13 on: franz-go picks
	// the version.
	rt.Topic, rt.TopicID = fw.key.topic, id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = fw.key.partition, fw.raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := fw.pass.Client.Broker(int(leader)).Request(fw.ctx, req)
	if err != nil {
		return answer{}, err
	}
	resp := kresp.(*kmsg.ProduceResponse)
	if fw.pass.Acks == pipeline.AcksNone {
		return answer{base: -1, appendTime: -1}, nil // written; no answer comes
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return failedAnswer(codeUnknownServerError, "kpipe gateway: upstream answered a produce request for another partition"), nil
	}
	p := &resp.Topics[0].Partitions[0]
	a := answer{code: p.ErrorCode, base: p.BaseOffset, appendTime: p.LogAppendTime}
	if p.ErrorMessage != nil {
		a.msg = "kpipe gateway: upstream: " + *p.ErrorMessage
	}
	for _, er := range p.ErrorRecords {
		msg := a.msg
		if er.ErrorMessage != nil {
			msg = "kpipe gateway: upstream: " + *er.ErrorMessage
		}
		a.failures = append(a.failures, recordFailure{index: er.RelativeOffset, msg: msg})
	}
	return a, nil
}

// leader returns the upstream leader and the topic id of k's partition,
// from what the forwarder knows unless refresh or it is older than
// forwardMetaAge.
func (f *forwarder) leader(ctx context.Context, cl kmsg.Requestor, k laneKey, refresh bool) (int32, [16]byte, error) {
	f.mu.Lock()
	m := f.meta[k.topic]
	f.mu.Unlock()
	fresh := m == nil || refresh || time.Since(m.at) > forwardMetaAge
	if !fresh && (int(k.partition) >= len(m.leaders) || k.partition < 0) {
		fresh = true // partitions may have been added since
	}
	if fresh {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(k.topic)
		req.Topics = append(req.Topics, rt)
		mctx, cancel := context.WithTimeout(ctx, metadataTimeout)
		resp, err := req.RequestWith(mctx, cl)
		cancel()
		if err != nil {
			return -1, [16]byte{}, fmt.Errorf("upstream metadata: %w", err)
		}
		m = nil
		for _, t := range resp.Topics {
			if t.Topic == nil || *t.Topic != k.topic {
				continue
			}
			if t.ErrorCode != codeNone {
				return -1, [16]byte{}, kerr.ErrorForCode(t.ErrorCode)
			}
			m = &topicMeta{id: t.TopicID, at: time.Now()}
			for _, p := range t.Partitions {
				for int(p.Partition) >= len(m.leaders) {
					m.leaders = append(m.leaders, -1)
				}
				if p.Partition >= 0 {
					m.leaders[p.Partition] = p.Leader
				}
			}
		}
		if m == nil {
			return -1, [16]byte{}, kerr.UnknownTopicOrPartition
		}
		f.mu.Lock()
		f.meta[k.topic] = m
		f.mu.Unlock()
	}
	if int(k.partition) >= len(m.leaders) || k.partition < 0 {
		// Asked of the upstream just now: the client named a
		// partition the topic does not have, and is told at once, as
		// the record path tells it.
		return -1, m.id, fmt.Errorf("%w: topic %q has %d partitions upstream, the batch names partition %d", pipeline.ErrUnknownPartition, k.topic, len(m.leaders), k.partition)
	}
	if l := m.leaders[k.partition]; l >= 0 {
		return l, m.id, nil
	}
	return -1, m.id, kerr.LeaderNotAvailable
}

// setProducer sets the producer id, epoch and base sequence of batch raw
// and computes its CRC again. A forwarded batch is written upstream under
// the gateway's producer id for its partition (acks=all), or as one of a
// producer without idempotence (all -1): the upstream does not know the
// producer id the gateway gave the client, and the gateway's own
// deduplication guards against the client's retries.
func setProducer(raw []byte, pid int64, epoch int16, seq int32) {
	const pidAt, epochAt, seqAt = 43, 51, 53
	if int64(binary.BigEndian.Uint64(raw[pidAt:])) == pid && int16(binary.BigEndian.Uint16(raw[epochAt:])) == epoch &&
		int32(binary.BigEndian.Uint32(raw[seqAt:])) == seq {
		return
	}
	binary.BigEndian.PutUint64(raw[pidAt:], uint64(pid))
	binary.BigEndian.PutUint16(raw[epochAt:], uint16(epoch))
	binary.BigEndian.PutUint32(raw[seqAt:], uint32(seq))
	binary.BigEndian.PutUint32(raw[17:21], crcOf(raw[crcStart:]))
}
