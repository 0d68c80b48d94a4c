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
// stage linger (at most 1ms by default). A record sent alone runs the same
// path as a batch of one. Acknowledgements for an AckBatcher are batched by
// the pipeline (the only place they are): its records wait with their
// results, and at the latest after the stage linger, or on Flush and Close,
// the AckBatcher gets one OnAckBatch call, then the callbacks run. With only
// Go plugins that take no batches, nothing is queued: each Send runs the
// stages itself. SendBatch hands over records that come batched already
// (a Kafka client's record batch, in kpipe gateway): they run the stages as
// batches at once, without the linger.
//
// # Chains and Swap
//
// The plugins form a chain, an immutable version named by one atomic
// word, which also counts the records sent. Swap replaces the whole chain while records flow: a record runs
// every stage and its acknowledgements on the chain it entered, and
// Result.ChainVersion names it. A retired chain's plugins are closed once
// its last record settled. SetPartitioner is Swap with another
// partitioner.
//
// # Plugin failures
//
// A broken plugin never stops the stream. Every plugin call goes through one
// guard (guard.go), which turns a panic into an error, counts the records,
// logs the failure with the plugin's name and hook (at most once per second
// per plugin and hook; Stats has the exact counts) and feeds the plugin's
// circuit breaker. Then the plugin's failure policy (OnFailure) decides:
//
//   - an interceptor whose OnSend fails (error, WASM fault, panic of a Go
//     interceptor): SkipPlugin, the default, lets the record go on as it was
//     before that interceptor; FailRecord fails it (ErrPluginFailed, naming
//     the plugin and hook); DropRecord filters it;
//   - an OnAck failure is logged and counted, and changes nothing;
//   - a serializer failure fails that record alone, with an error wrapping
//     ErrSerialize; nothing half-serialized is sent;
//   - a partitioner failure or out-of-range partition: UseDefaultPartitioner,
//     the default, sends the record through the default partitioner;
//     FailRecord fails it;
//   - an interceptor or partitioner that fails on threshold consecutive
//     records is bypassed for a cool-down, its policy applying to each
//     bypassed record, and then exactly one call is tried (see
//     CircuitBreaker); bypassed records are counted;
//   - a batch call (see StageBatch) that fails for a record applies the
//     policy to that record; a WASM batch call that fails as a whole is run
//     again one record at a time, so only the records whose own call fails
//     are affected.
//
// # Partitioning
//
// franz-go fixes its partitioner when the client is created. The Producer
// gives it one stable partitioner that uses the partitioner of each
// record's chain, so a Swap changes partitioners while records flow. It is
// where each record's partition is decided, once.
// Partitions are always exact partition numbers, and a record that names its
// partition (plugins.Record.SetPartition, including partition 0) goes there
// without calling the partitioner.
//
// # Cost
//
// Send allocates one object of its own per record, batched or not: the
// envelope, the per-record state the Producer keeps while the client holds
// the record (recycling it cost more CPU than allocating it); stage batches
// reuse their buffers. Plugin latencies in Stats are
// sampled (one call in 64); every count is exact. docs/producer.md has
// figures from BenchmarkProduce.
//
// # Closing
//
// franz-go's Close fails buffered records; Producer.Close first flushes until
// its context ends, then closes, closes the plugins it owns, and reports the
// records left undelivered. docs/architecture.md follows one record through
// the files of this package.
//
// # The consume side
//
// Consumer runs consume-side plugins on the records a franz-go consumer
// fetches: the key and value deserializers (plugins.Deserializer), then the
// consume interceptors (plugins.ConsumeInterceptor, the Java client's
// onConsume) in order, in batches where they take them. They go through
// the same guard as the producer's plugins (OnFailure, circuit breakers,
// Stats), and every record fetched ends in exactly one of Consumed's
// Delivered, Filtered and Failed.
package pipeline
