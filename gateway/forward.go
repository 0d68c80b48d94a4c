package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// forwarded is a batch on its way upstream.
type forwarded struct {
	ctx  context.Context
	key  laneKey
	raw  []byte
	pass pipeline.Passthrough
	br   *batchResult
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
	return &forwarder{g: g, src: src, lanes: map[laneKey]*lane{}, meta: map[string]*topicMeta{}}
}

// forwardable reports whether client batch b (raw) may go upstream as it
// is, and the settings it must be sent with: the one place of the rule
// ForwardBatches states.
func (f *forwarder) forwardable(b *batch, raw []byte, keep bool) (pipeline.Passthrough, bool) {
	if f == nil || !keep || b.Attributes&(attrTransactional|attrControl) != 0 {
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

// drain sends the batches of lane l one after the other until it is empty.
func (f *forwarder) drain(l *lane) {
	defer f.sending.Done()
	for {
		f.mu.Lock()
		fw := l.queue[0]
		f.mu.Unlock()
		a := f.send(fw)
		f.mu.Lock()
		l.queue[0] = nil
		l.queue = l.queue[1:]
		empty := len(l.queue) == 0
		f.settleLane(fw.key, l)
		f.mu.Unlock()
		// Done after it left the lane: the client's next batch, sent
		// once it has this answer, finds the lane as it is now.
		fw.br.settleForwarded(a)
		if empty {
			return
		}
	}
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

// send writes fw upstream, retrying what is retriable, and returns its
// answer.
func (f *forwarder) send(fw *forwarded) answer {
	asNonIdempotent(fw.raw)
	backoff := forwardBackoff
	refresh := false
	for attempt := 1; ; attempt++ {
		a, err := f.sendOnce(fw, refresh)
		if err == nil && a.code == codeNone {
			return a
		}
		// An error without an answer (no connection, no leader known)
		// is retried as the upstream's retriable codes are.
		var ke *kerr.Error
		retriable := err != nil && !errors.As(err, &ke)
		if err != nil {
			a = failedAnswer(errorCode(err))
		} else if a.msg == "" {
			a.msg = "kpipe gateway: upstream: " + kerr.ErrorForCode(a.code).Error()
		}
		retriable = retriable || kerr.IsRetriable(kerr.ErrorForCode(a.code))
		if !retriable || attempt == forwardAttempts || fw.ctx.Err() != nil {
			return a
		}
		refresh = true
		select {
		case <-time.After(backoff):
		case <-fw.ctx.Done():
			return failedAnswer(codeRequestTimedOut, "kpipe gateway: "+fw.ctx.Err().Error()+" after "+a.msg)
		}
		backoff = min(2*backoff, forwardMaxBackoff)
	}
}

// sendOnce sends fw to its partition's leader once; err is set when no
// answer came (or the leader is unknown).
func (f *forwarder) sendOnce(fw *forwarded, refresh bool) (answer, error) {
	leader, id, err := f.leader(fw.ctx, fw.pass.Client, fw.key, refresh)
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
	if m == nil || refresh || time.Since(m.at) > forwardMetaAge {
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
		return -1, m.id, kerr.UnknownTopicOrPartition
	}
	if l := m.leaders[k.partition]; l >= 0 {
		return l, m.id, nil
	}
	return -1, m.id, kerr.LeaderNotAvailable
}

// asNonIdempotent makes batch raw one of a producer without idempotence
// (producer id, epoch and base sequence -1) and computes its CRC again: the
// upstream does not know the producer id the gateway gave the client, and
// the gateway's own deduplication guards against the client's retries.
func asNonIdempotent(raw []byte) {
	const pidAt, epochAt, seqAt = 43, 51, 53
	if int64(binary.BigEndian.Uint64(raw[pidAt:])) == -1 && int16(binary.BigEndian.Uint16(raw[epochAt:])) == -1 &&
		int32(binary.BigEndian.Uint32(raw[seqAt:])) == -1 {
		return
	}
	binary.BigEndian.PutUint64(raw[pidAt:], ^uint64(0))
	binary.BigEndian.PutUint16(raw[epochAt:], ^uint16(0))
	binary.BigEndian.PutUint32(raw[seqAt:], ^uint32(0))
	binary.BigEndian.PutUint32(raw[17:21], crcOf(raw[crcStart:]))
}
