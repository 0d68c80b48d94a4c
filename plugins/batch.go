package plugins

import "context"

// The batch interfaces are optional interfaces of plugins that can take many
// records in one call. A WASM plugin implements them (wasmhost.Plugin): one
// crossing into the guest, and one pool hold, then serve a whole batch, which
// is where most of the cost of a small plugin call goes. The pipeline uses
// them when it batches records (pipeline.StageBatch); a plugin that does not
// implement them is called one record at a time, as before.
//
// A batch call must behave as the single-record calls would, made one after
// the other in the order of the batch.

// BatchInterceptor is an Interceptor that can run OnSend on many records in
// one call.
type BatchInterceptor interface {
	Interceptor
	// OnSendBatch is OnSend for each record of rs, in order. verdicts and
	// errs have the length of rs; OnSendBatch sets verdicts[i] and errs[i]
	// for record i. A record whose errs[i] is not nil must be left exactly
	// as it was (the pipeline does not restore it), and its verdict is
	// ignored. A non-nil return means the whole call failed: every record
	// must be left as it was, and the error applies to each of them. A
	// panic counts as a failure of the whole call, but records the
	// implementation changed before it panicked stay changed: unlike
	// OnSend, a batch call is not preceded by a copy of every record.
	OnSendBatch(ctx context.Context, rs []*Record, verdicts []Verdict, errs []error) error
}

// BatchPartitioner is a Partitioner that can choose the partitions of many
// records in one call.
type BatchPartitioner interface {
	Partitioner
	// PartitionBatch is Partition for each record of rs, in order, with
	// numPartitions[i] partitions for record i's topic. It sets parts[i]
	// (a partition, or DefaultPartition) and errs[i]. A non-nil return
	// means the whole call failed and applies to each record. Records with
	// an error, a partition out of range or DefaultPartition go through the
	// default partitioner, as with Partition.
	PartitionBatch(ctx context.Context, rs []*Record, numPartitions []int32, parts []int32, errs []error) error
}

// AckBatcher is an Interceptor that takes acknowledgements in batches. The
// pipeline gives it QueueAck instead of OnAck, on the goroutine that
// completes records, and calls FlushAcks when acknowledgements have waited
// long enough, on Flush and on Close: OnAck is then seen by the plugin after
// the record's callback, by at most the batch linger.
//
// QueueAck and FlushAcks may be called concurrently. The pipeline counts
// every acknowledgement of a failed delivery as a failed OnAck in its
// statistics, and the delivery as one failure for the plugin's circuit
// breaker.
type AckBatcher interface {
	Interceptor
	// QueueAck copies what OnAck would be given (r and ack: the caller may
	// reuse r as soon as QueueAck returns) into the plugin's queue. When
	// the queue is full it delivers it, and returns how many
	// acknowledgements the delivery carried and its error (which applies
	// to each of them); otherwise it returns 0 and nil. An error that
	// keeps the acknowledgement from being queued at all is returned with
	// delivered = 1.
	QueueAck(ctx context.Context, r *Record, ack Ack) (delivered int, err error)
	// FlushAcks delivers the queued acknowledgements now, and returns how
	// many it delivered and the delivery's error.
	FlushAcks(ctx context.Context) (delivered int, err error)
}
