// Package kafkasource runs kpipe pipelines fed by Kafka: it reads topics
// through a consumer group, runs every record through a pipeline.Producer
// (its interceptors, serializers and partitioner, with their failure
// policies) and produces it, committing the consumed offsets as the chosen
// Delivery says. `kpipe run --config FILE` runs it for a pipeline with a
// source "kafka" block (docs/kafka-source.md).
//
//	s, err := kafkasource.New(ctx,
//		kafkasource.Topics("orders"),
//		kafkasource.Group("orders-enrich"),
//		kafkasource.Guarantee(kafkasource.ExactlyOnce),
//		kafkasource.DeadLetter("orders-dead", pipeline.Brokers(brokers...)),
//		kafkasource.Sink(pipeline.Brokers(brokers...), pipeline.DefaultTopic("orders-enriched"),
//			pipeline.Interceptor("enrich", enrich, pipeline.OnFailure(pipeline.FailRecord))))
//	...
//	err = s.Run(ctx)          // until ctx ends
//	rep, err := s.Close(ctx2) // leaves the group
//
// # One poll, one commit
//
// Run polls up to MaxPollRecords records, sends each through the Producer in
// the order read, flushes the Producer (every record then has its outcome),
// and commits: with ExactlyOnce the records are produced inside a
// transaction of franz-go's GroupTransactSession, which commits the polled
// offsets in the same transaction, so a poll's output and its offsets
// become visible to read_committed readers together or not at all; with
// AtLeastOnce the offsets are committed after the records were delivered.
// Records a plugin filters advance the offsets like the others.
//
// The Producer runs inside the session: New gives pipeline.New the option
// pipeline.ClientFactory, whose client is the session's (franz-go fixes a
// client's partitioner, and the session wraps the group callbacks, when the
// client is created, so the Producer's client has to be the session's).
// The per-record path of the Producer is the same as anywhere else; the
// source drives the transactions through the session, never through the
// Producer's transaction methods.
//
// # Failures
//
// Every input record ends delivered, filtered, dead-lettered, or stops its
// partition; none is skipped. A record that fails (a plugin with
// on_failure "fail" or a serializer failed on it, or the produce failed)
// goes to the dead-letter topic when there is one (DeadLetter), with the
// input record's key, value, headers and timestamp and these headers:
// kpipe.error (the error), kpipe.plugin and kpipe.hook (when a plugin
// failed it, see pipeline.PluginError), kpipe.source.topic,
// kpipe.source.partition and kpipe.source.offset. A dead-letter record is
// in the dead-letter topic before its input record's offset is committed.
// With ExactlyOnce it is produced in the poll's transaction, by the
// transactional client (DeadLetter's options are not used; the topic must
// exist, or the cluster create topics on demand, when New runs): it is
// committed or aborted with the output, so a read_committed reader finds
// it once. With AtLeastOnce the dead-letter producer is a plain idempotent
// producer, and a record may be there twice if the poll is read again.
//
// Without a dead-letter topic (or when the dead-letter produce fails too)
// the record stops its partition: the source logs an error naming the
// partition, offset and reason, pauses the partition, and commits nothing
// from that record on (with ExactlyOnce the poll's transaction is aborted
// and the other partitions' records are read again and produced in the
// next one). Stats reports the partition as stopped; the other partitions
// go on. A restarted process, or the member the partition moves to in a
// rebalance, reads the record again and stops there too until the cause
// is fixed (a plugin reloaded, a dead-letter topic configured).
//
// # Rebalances and crashes
//
// Processes with the same Group share the partitions. With ExactlyOnce a
// rebalance or a crash aborts the transactions in flight (GroupTransactSession
// aborts any transaction during which the group rebalanced); the session
// rewinds to the committed offsets, and whoever owns a partition then reads
// its records again: read_committed readers see every input record's
// result once. With AtLeastOnce the records delivered since the last
// commit are produced again by the partition's next owner.
//
// # Order
//
// Records of one input partition are sent in offset order, and the
// producer is idempotent, so records of one input partition that go to one
// output partition keep their order there, also across a rebalance
// (the next owner starts after the last commit, whose records are all
// produced). The default partitioner sends records with the same key to
// the same partition, so per key the order holds. Records of one input
// partition that the partitioner spreads over several output partitions
// (unkeyed records, sticky batches) keep their order within each output
// partition only; records of different input partitions interleave.
package kafkasource
