package pipeline

import (
	"context"
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
// the record that started it).
//
// Each record gets a new envelope (admit: Send allocates one, SendBatch one
// array for its batch), held in turn by the Send goroutine, the stager, the
// client and the completion side, and left to the garbage collector.
// Recycling envelopes cost more CPU per record than allocating them
// (RATIONALE.md, "Envelopes are allocated").
type envelope struct {
	kr kgo.Record

	// What the completion side reads of every record (finish, ack, done)
	// comes right after kr, whose last cache line (Offset, Context) the
	// promise has just read, and what only the Send side and the stage
	// batches use comes last: the promise finds these fields on that
	// line or the next, and the order leaves no padding (240 bytes, a
	// size class below 256). BenchmarkProduce/builtin measures it
	// (RATIONALE.md, "Envelope layout").
	cb       func(*plugins.Record, Result)
	ch       *chain // the chain the record entered
	seen     uint64 // bit i: interceptor i of ch saw the record in OnSend and wants its OnAck
	explicit bool   // the record names its partition
	stored   bool   // the partitioner stored timestamp and partition in rec
	pre      bool   // see preN
	origPart int32  // the record's Partition when it was sent
	rec      *plugins.Record
	ctx      context.Context // the Send context

	// A stage batch asked the chain's partitioner beforehand (pre; see
	// Producer.precompute), for preN partitions: it answered prePart
	// (-1: the default partitioner), or failed the record (partErr).
	// topicPartitioner.partition uses the answer if the topic still has
	// preN partitions.
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
// goroutine of the client that keeps it after the record is complete reads
// nothing the pipeline may still change.
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

// envelopeOf returns the envelope holding kr, a record the producer
// produced: the kr field of an envelope opened with open. (The client of a
// ClientFactory may also see records its owner produced directly; only
// the partitioner meets those, and it tells them apart.)
func envelopeOf(kr *kgo.Record) *envelope {
	return (*envelope)(kr.Context.(*envHandle))
}

// recordOf returns kr's topic, key, value, headers and timestamp as a
// plugins.Record (no partition): what partitioners are given.
func recordOf(kr *kgo.Record) plugins.Record {
	return plugins.Record{Topic: kr.Topic, Key: kr.Key, Value: kr.Value, Headers: kr.Headers, Timestamp: kr.Timestamp}
}
