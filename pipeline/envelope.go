package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// envelope carries one record through the client: the kgo.Record produced,
// the caller's record, context and callback, and which interceptors saw it.
//
// The kgo.Record's Context is the envelope's handle (see envelopeOf), and
// the Send context is what the client is given with the record
// (kgo.Client.Produce's ctx), so that it fails the record if that context
// ends. franz-go may keep both after the record is complete (its goroutine
// waiting for an unknown topic's metadata, for one, outlives the promise of
// the record that started it): the Send context is the caller's, and the
// handle reads nothing from the envelope, which is why envelopes can be
// recycled; see envPool for who holds one when.
type envelope struct {
	kr       kgo.Record
	ctx      context.Context // the Send context
	rec      *plugins.Record
	cb       func(*plugins.Record, Result)
	ch       *chain // the chain the record entered
	seen     uint64 // bit i: interceptor i of ch saw the record in OnSend and wants its OnAck
	explicit bool   // the record names its partition
	stored   bool   // the partitioner stored timestamp and partition in rec
	origPart int32  // the record's Partition when it was sent

	// A stage batch asked the chain's partitioner beforehand (see
	// Producer.precompute), for preN partitions: it answered prePart
	// (-1: the default partitioner), or failed the record (partErr).
	// topicPartitioner.partition uses the answer if the topic still has
	// preN partitions.
	pre     bool
	preN    int32
	prePart int32
	// partErr is why the partitioner failed the record (FailRecord, or an
	// explicit partition the topic does not have); the record's outcome
	// reports it instead of the client's error.
	partErr error
}

// envHandle is an envelope seen as the context.Context of its kgo.Record,
// through which franz-go's partitioner and promise, which see only the
// kgo.Record, find the envelope (envelopeOf). As a context it never ends
// and holds no values, and its methods read nothing from the envelope: a
// goroutine of the client that keeps it after the record is complete never
// reads a recycled envelope.
type envHandle envelope

func (*envHandle) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*envHandle) Done() <-chan struct{}       { return nil }
func (*envHandle) Err() error                  { return nil }
func (*envHandle) Value(any) any               { return nil }

// open gives e a record to carry: the caller's r, sent with ctx and cb.
func (e *envelope) open(ctx context.Context, r *plugins.Record, cb func(*plugins.Record, Result)) {
	e.kr.Context = (*envHandle)(e)
	e.ctx, e.rec, e.cb = ctx, r, cb
}

// envelopeOf returns the envelope holding kr. Every record the producer's
// client sees is the kr field of an envelope opened with open (the client
// is private, and only the producer's envelopes are produced with it).
func envelopeOf(kr *kgo.Record) *envelope {
	return (*envelope)(kr.Context.(*envHandle))
}

// recordOf returns kr's topic, key, value, headers and timestamp as a
// plugins.Record (no partition): what partitioners are given.
func recordOf(kr *kgo.Record) plugins.Record {
	return plugins.Record{Topic: kr.Topic, Key: kr.Key, Value: kr.Value, Headers: kr.Headers, Timestamp: kr.Timestamp}
}

// magazineSize is how many envelopes move between the completion side and
// the Send side at once.
const magazineSize = 128

// A magazine is a stack of recycled envelopes.
type magazine struct {
	n    int
	envs [magazineSize]*envelope
}

// fullMagazines holds magazines with envelopes in them, emptyMagazines used
// up ones. They are shared by every producer's envPool (envelopes belong to
// no producer). Being sync.Pools, they give the Send goroutines a per-P
// magazine without a lock, and let the garbage collector reclaim envelopes
// that are not used any more, after a burst or once a producer is idle.
var fullMagazines, emptyMagazines sync.Pool

// envPool recycles the envelopes of the records sent with Send, so that a
// record costs kpipe no allocation. Only envelopes whose record completed
// through the promise come back: those that fail or are filtered before
// they reach the client, and those of SendSync, are left to the garbage
// collector.
//
// An envelope is held, in turn, by:
//
//   - the Send goroutine, from getEnvelope until it hands &kr to the
//     client;
//   - the client, until it calls the promise (franz-go reads and writes the
//     kgo.Record until then, and only the partitioner, called in between,
//     looks into the envelope);
//   - the promise, which runs the OnAck calls, the callback and the
//     counters, and only then calls put. The callback and OnAck receive the
//     caller's Record and a Result value, nothing that points into the
//     envelope, so they cannot hold on to it.
//
// The envelopes travel in magazines. getEnvelope takes one from the
// magazine of the current P (sync.Pool's private slot: no lock, no atomic
// operation) and puts the magazine back; put fills a magazine of its own
// and hands it over when full. The two sides meet in a sync.Pool once per
// magazineSize records. (A sync.Pool of envelopes costs about as much as
// allocating them, as every Get steals from the promise goroutine's P; a
// mutex-guarded magazine costs a lock per record.)
type envPool struct {
	// ret is the magazine put fills. franz-go calls the promises of a
	// client one at a time (kgo.Client.Produce documents it), so it needs
	// no lock.
	ret *magazine
}

// getEnvelope returns a zeroed envelope.
func getEnvelope() *envelope {
	m, _ := fullMagazines.Get().(*magazine)
	if m == nil {
		return new(envelope)
	}
	m.n--
	e := m.envs[m.n]
	m.envs[m.n] = nil
	// Zeroed here rather than in put: the Send side writes the
	// envelope's cache lines next anyway, while zeroing them on the
	// promise's side made the Send side fetch every line from the other
	// core (RATIONALE.md, "Envelopes").
	*e = envelope{}
	if m.n > 0 {
		fullMagazines.Put(m)
	} else {
		emptyMagazines.Put(m)
	}
	return e
}

// put recycles e, whose record is complete. Only the promise may call it.
// e keeps its references to the record's data until getEnvelope reuses it
// or the garbage collector clears the pools (at most two collections).
func (p *envPool) put(e *envelope) {
	m := p.ret
	if m == nil {
		if m, _ = emptyMagazines.Get().(*magazine); m == nil {
			m = new(magazine)
		}
		p.ret = m
	}
	m.envs[m.n] = e
	m.n++
	if m.n == magazineSize {
		fullMagazines.Put(m)
		p.ret = nil
	}
}
