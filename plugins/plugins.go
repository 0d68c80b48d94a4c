package plugins

import "context"

// Kind is a bit set of plugin kinds. The values are the ones the WASM ABI uses
// in kpipe_kinds (see sdk/ABI.md).
type Kind uint32

// The plugin kinds.
const (
	KindInterceptor Kind = 1 << iota
	KindSerializer
	KindPartitioner
)

// Verdict is what an interceptor decided about a record in OnSend.
type Verdict uint8

const (
	// Continue passes the record, possibly modified, to the next stage.
	Continue Verdict = iota
	// Drop filters the record out: it is not sent, and its sender is told
	// that it was filtered, which is not an error.
	Drop
)

// Ack is the outcome of producing one record, given to OnAck.
type Ack struct {
	// Offset is the record's offset in its partition, or -1 if it failed.
	Offset int64
	// Err is why the record failed, or nil if it was delivered.
	Err error
}

// Interceptor sees every record before it is serialized (OnSend) and its
// outcome after the broker answered or the client gave up (OnAck). It is the
// analogue of Kafka's ProducerInterceptor.
//
// Implementations must be safe for concurrent use.
type Interceptor interface {
	// OnSend may change any field of r in place, or return Drop. If it
	// returns an error the pipeline restores r to what it was before the
	// call (a shallow copy: an interceptor must not write into the bytes of
	// r.Key or r.Value and then fail), logs and counts the failure, and goes
	// on with the record.
	OnSend(ctx context.Context, r *Record) (Verdict, error)
	// OnAck is called once for every record that went through OnSend and was
	// not dropped, with the record as it was produced (final topic, partition
	// and timestamp). Errors are logged and counted; they change nothing.
	// It is not called at all for an interceptor whose WantsAcks (see
	// AckObserver) returns false.
	OnAck(ctx context.Context, r *Record, ack Ack) error
}

// AckObserver is an optional interface of an Interceptor that may not care
// about acknowledgements. An interceptor that implements it and returns
// false from WantsAcks is never given OnAck: the pipeline asks once, when
// the interceptor is installed, and from then on skips the call (and its
// counters) for every record. An interceptor that does not implement it is
// given every acknowledgement. A WASM interceptor without the optional
// kpipe_on_ack export returns false (sdk/ABI.md section 2).
type AckObserver interface {
	// WantsAcks reports whether OnAck should be called. It must always
	// return the same answer.
	WantsAcks() bool
}

// Target says which part of a record a serializer is asked to serialize.
type Target uint8

// The serializer targets; the values are the ones the WASM ABI uses.
const (
	TargetKey Target = iota
	TargetValue
)

func (t Target) String() string {
	if t == TargetKey {
		return "key"
	}
	return "value"
}

// Serializer turns a record's key or value into the bytes sent to Kafka. It
// is called only for non-nil data: a null key or value stays null.
//
// Implementations must be safe for concurrent use.
type Serializer interface {
	// Serialize returns the serialized form of r.Key (TargetKey) or r.Value
	// (TargetValue). It must not modify r. A nil result with a nil error
	// makes the field null.
	Serialize(ctx context.Context, target Target, r *Record) ([]byte, error)
}

// Partitioner chooses the partition of a record that does not name one.
//
// Implementations must be safe for concurrent use; the pipeline calls
// Partition for one topic at a time.
type Partitioner interface {
	// Partition returns a partition in [0, numPartitions), or
	// DefaultPartition to let the default partitioner choose. An error or a
	// partition out of range also sends the record through the default
	// partitioner: a record is never lost because of its partitioner.
	Partition(ctx context.Context, r *Record, numPartitions int32) (int32, error)
}

// DefaultPartition is returned by a Partitioner to defer to the default
// partitioner for one record.
const DefaultPartition int32 = -1
