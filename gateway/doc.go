// Package gateway is a Kafka-protocol endpoint for producers that runs every
// record it receives through a kpipe pipeline: any Kafka client, in any
// language, gets kpipe's plugins by pointing its bootstrap servers at the
// gateway.
//
// The gateway answers ApiVersions, Metadata (the upstream cluster's topics
// and partitions, with the gateway as the leader of every partition),
// InitProducerId and Produce (record batches of magic 2, uncompressed or
// gzip, snappy — raw or in the xerial framing of the Java client —, lz4 or
// zstd). The records of each record batch go through the pipeline
// together (pipeline.Producer.SendBatch: plugins that take batches get
// them in batch calls), each with its own outcome; the client's answer
// for a partition is sent once every record of it has an outcome upstream:
// no error if all were delivered or filtered, otherwise the first failure's
// Kafka error code (see errorCode) and, in error_records, the index and
// reason of each record that failed. Clients with acks=0 get no answer.
// The records point into the request's memory rather than being copied;
// buffers.go gives the rule by which it is reused.
//
// With ForwardBatches, a batch whose records nothing in the pipeline would
// read or change (pipeline.Producer.Passthrough) is not decoded: it goes
// upstream as it is, under a producer id and sequence of the gateway's
// (acks=all) or none, in a Produce request of the gateway's own to its
// partition's leader, and its answer carries the upstream's offsets.
// forward.go keeps each partition's records in order, across the two
// paths too, and RATIONALE.md gives the reasons for each rule.
//
// Idempotent producers get producer ids from the gateway, which remembers
// the last five batches of each producer and partition like a broker: a
// batch sent again (the client did not get the answer) is answered with
// the first attempt's outcome, waiting for it if need be, and is not sent
// upstream again; a batch sent again after it failed sends only its records
// that were not delivered. Transactions are refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, consumer groups with
// GROUP_AUTHORIZATION_FAILED; any other API gets a well-formed response with
// UNSUPPORTED_VERSION in its error codes, and a log line.
//
// Memory is bounded (MemoryLimit): a request is read only when the bytes of
// the requests in flight allow it, so a fast client waits and is told so
// with throttle_time_ms. Shutdown stops reading, answers what was read, and
// then closes the connections.
//
// docs/gateway.md describes what clients see, how to run several gateways
// and the figures.
package gateway
