// Package pipeline is kpipe's producer: a programmable pipeline around a
// franz-go Kafka client.
//
// Every record sent goes through these stages, in order:
//
//  1. the interceptors' OnSend, in the order they were given, each seeing the
//     previous one's output; an interceptor may change the record or drop it;
//  2. the key and value serializers (a null key or value stays null, so
//     tombstones stay tombstones);
//  3. the partitioner, unless the record names its partition;
//  4. the Kafka client, which batches, compresses, retries and sends;
//  5. the OnAck of every interceptor whose OnSend saw the record, for
//     success and failure alike (except interceptors that want no
//     acknowledgements, see plugins.AckObserver), then the record's
//     callback.
//
// Every record ends in exactly one Outcome, reported once to its callback:
// Delivered, Filtered (dropped by an interceptor) or Failed, with the reason.
//
// # Stage batching
//
// A WASM plugin call costs about 100ns whatever the plugin does, and a
// batch call serves many records for about the cost of one. When an
// interceptor or the partitioner can take batches (plugins.BatchInterceptor,
// plugins.BatchPartitioner, plugins.AckBatcher; WASM plugins can), Send
// queues the record, and stages 1 to 3 run for up to 64 records at a time
// (see StageBatch): each batch interceptor and the batch partitioner is
// called once per batch, other plugins once per record as before, and the
// records then go to the client in the order they were sent. The Send that
// fills a batch runs it; a timer runs a batch that does not fill within the
// stage linger (at most 1ms by default). Acknowledgements for an AckBatcher
// are queued and delivered in batches too, at the latest after the stage
// linger, or on Flush and Close. With only Go plugins that take no batches,
// nothing is queued: each Send runs the stages itself.
//
// # Plugin failures
//
// A broken plugin never stops the stream:
//
//   - an interceptor whose OnSend fails (error, WASM fault, panic of a Go
//     interceptor) is logged with its name and hook and counted; the record
//     goes on as it was before that interceptor;
//   - an OnAck failure is logged and counted, and changes nothing;
//   - a serializer failure fails that record alone, with an error wrapping
//     ErrSerialize; nothing half-serialized is sent;
//   - a partitioner failure or out-of-range partition is logged and counted,
//     and the record goes through the default partitioner;
//   - an interceptor or partitioner that keeps failing is bypassed for a
//     cool-down and then tried again (see CircuitBreaker); bypassed calls
//     are counted;
//   - a batch call (see StageBatch) that fails as a whole fails the call of
//     each of its records, with the consequences above, and counts once per
//     record.
//
// Failure logs are limited to one per plugin and hook per second; Stats has
// the exact counts.
//
// # Partitioning
//
// franz-go fixes its partitioner when the client is created. The Producer
// gives it one stable partitioner that reads the current plugin from an
// atomic pointer, so SetPartitioner swaps partitioners while records flow.
// Partitions are always exact partition numbers, and a record that names its
// partition (plugins.Record.SetPartition, including partition 0) goes there
// without calling the partitioner.
//
// # Cost
//
// Send allocates nothing of its own, batched or not: the per-record state
// the Producer keeps while the client holds a record is recycled once the
// record's OnAck calls, callback and counters are done, and stage batches
// reuse their buffers. Plugin latencies in Stats are
// sampled (one call in 64); every count is exact. docs/producer.md has
// figures from BenchmarkProduce.
//
// # Closing
//
// franz-go's Close fails buffered records; Producer.Close first flushes until
// its context ends, then closes, and reports the records left undelivered.
package pipeline
