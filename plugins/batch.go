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
// pipeline collects the acknowledgements of the records the interceptor saw
// and gives them to OnAckBatch in one call (when the batch fills, when the
// first has waited the stage linger, and on Flush and Close), before it
// reports those records to their callbacks. The pipeline is the only place
// acknowledgements are batched: an AckBatcher keeps no queue of its own.
type AckBatcher interface {
	Interceptor
	// OnAckBatch is OnAck for each record of rs, in order, with acks[i]
	// the acknowledgement of rs[i]. errs has the length of rs;
	// OnAckBatch sets errs[i] for record i. A non-nil return means the
	// whole call failed and applies to each record. rs must not be
	// retained after the call returns.
	OnAckBatch(ctx context.Context, rs []*Record, acks []Ack, errs []error) error
}

// Closer is implemented by plugins that hold resources (WASM plugins hold
// instances and a compiled module). A pipeline owns the plugins it is given:
// it closes a plugin when the last chain using it retires (after the last
// record that used it settled) and at its own Close.
type Closer interface {
	Close(ctx context.Context) error
}
