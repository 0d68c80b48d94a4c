// Package frompython holds the example programs of the two notes on the
// Kafka producer as kafka-python users see it, which kpipe started from,
// rewritten for kpipe's Go API. Each directory is one program; its comments
// show the Python it replaces, and docs/from-kafka-python.md maps every
// KafkaProducer argument and method onto kpipe. Each program's test runs it
// against the in-process broker, or against a real cluster when
// KPIPE_TEST_BROKERS is set.
package frompython
