// Package crossclient checks kpipe against Kafka clients that share no code
// with it: kcat (librdkafka, C) and kafka-python. It holds the readers that run
// those clients and turn what they consumed into Records, and the tests that
// produce through kpipe's pipeline and compare.
//
// The tests run against the broker named by KPIPE_TEST_BROKERS when it is set
// (scripts/kafka.sh starts a real Apache Kafka for that), and against an
// in-process kfake broker otherwise. They need kcat, python3 and the
// kafka-python package: without them a test is skipped, or fails under
// CI=true (see internal/testenv).
package crossclient
