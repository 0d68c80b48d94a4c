// Package plugins defines the three kinds of kpipe plugin that run around a
// producer (Interceptor, Serializer, Partitioner), the Record they work on,
// the two that run on consumed records (ConsumeInterceptor, Deserializer,
// which take the fetched *kgo.Record), and the native built-in
// implementations that a pipeline can mix with WASM plugins.
//
// # Built-ins
//
// NewSerializer and NewPartitioner create the built-ins by name, as kpipe's
// configuration file names them:
//
//	serializers:  bytes, string, json
//	partitioners: default, murmur2, round-robin, sticky, manual
//
// The "default" partitioner places keyed records exactly where the Java
// client's default partitioner does, (Murmur2(key) & 0x7fffffff) % n over
// all partitions of the topic, so kpipe, Java, franz-go's default
// partitioner for keyed records, librdkafka's murmur2_random and kafka-python
// agree on where a key lives.
//
// Partitioners that keep per-topic state (sticky batches, round robin)
// implement PerTopicPartitioner; a pipeline asks them for one
// TopicPartitioner per topic and tells it when a new batch starts.
//
// WASM-backed implementations live in package wasmhost; package pipeline runs
// them around a franz-go producer.
package plugins
