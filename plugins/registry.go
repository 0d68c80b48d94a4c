package plugins

import (
	"bytes"
	"fmt"
	"strings"
)

// The names of the built-in serializers and partitioners, as used by
// NewSerializer, NewPartitioner and kpipe's configuration file.
const (
	// SerializerBytes sends the data unchanged.
	SerializerBytes = "bytes"
	// SerializerString sends the data unchanged and fails records whose
	// data is not valid UTF-8.
	SerializerString = "string"
	// SerializerJSON fails records whose data is not one valid JSON value
	// and sends the others compacted.
	SerializerJSON = "json"

	// PartitionerDefault places keyed records like the Java client,
	// (murmur2(key) & 0x7fffffff) % partitions over all partitions of the
	// topic, and sends unkeyed records in sticky batches: to one partition
	// until the client starts a new batch, then to another chosen at
	// random (KIP-480; Java's DefaultPartitioner from Kafka 2.4 to 3.2,
	// franz-go's StickyKeyPartitioner).
	PartitionerDefault = "default"
	// PartitionerMurmur2 places keyed records like PartitionerDefault and
	// spreads unkeyed records round robin, one record per partition in
	// turn (like librdkafka's murmur2_random, but deterministic).
	PartitionerMurmur2 = "murmur2"
	// PartitionerRoundRobin sends each record to the next partition in
	// turn, ignoring keys.
	PartitionerRoundRobin = "round-robin"
	// PartitionerSticky sends every record, keyed or not, in sticky
	// batches as PartitionerDefault does for unkeyed records.
	PartitionerSticky = "sticky"
	// PartitionerManual requires every record to name its partition
	// (Record.SetPartition); a record that does not is failed.
	PartitionerManual = "manual"
)

var serializers = map[string]func() Serializer{
	SerializerBytes:  func() Serializer { return bytesSerializer{} },
	SerializerString: func() Serializer { return stringSerializer{} },
	SerializerJSON:   func() Serializer { return jsonSerializer{} },
}

var partitioners = map[string]func() Partitioner{
	PartitionerDefault:    func() Partitioner { return defaultPartitioner{} },
	PartitionerMurmur2:    func() Partitioner { return new(murmur2Partitioner) },
	PartitionerRoundRobin: func() Partitioner { return new(roundRobinPartitioner) },
	PartitionerSticky:     func() Partitioner { return stickyPartitioner{} },
	PartitionerManual:     func() Partitioner { return manualPartitioner{} },
}

// BuiltinSerializers returns the names of the built-in serializers, sorted.
func BuiltinSerializers() []string {
	return []string{SerializerBytes, SerializerJSON, SerializerString}
}

// BuiltinPartitioners returns the names of the built-in partitioners, sorted.
func BuiltinPartitioners() []string {
	return []string{PartitionerDefault, PartitionerManual, PartitionerMurmur2, PartitionerRoundRobin, PartitionerSticky}
}

// NewSerializer returns a new instance of the built-in serializer called
// name. None of the built-ins has settings: config must be empty, "null" or
// an empty JSON object.
func NewSerializer(name string, config []byte) (Serializer, error) {
	f, ok := serializers[name]
	if !ok {
		return nil, fmt.Errorf("unknown serializer %q (built-in serializers: %s)", name, strings.Join(BuiltinSerializers(), ", "))
	}
	if err := noConfig("serializer", name, config); err != nil {
		return nil, err
	}
	return f(), nil
}

// NewPartitioner returns a new instance of the built-in partitioner called
// name. None of the built-ins has settings: config must be empty, "null" or
// an empty JSON object.
//
// Every built-in partitioner except "manual" also implements
// PerTopicPartitioner; "manual" implements ExplicitPartitioner.
func NewPartitioner(name string, config []byte) (Partitioner, error) {
	f, ok := partitioners[name]
	if !ok {
		return nil, fmt.Errorf("unknown partitioner %q (built-in partitioners: %s)", name, strings.Join(BuiltinPartitioners(), ", "))
	}
	if err := noConfig("partitioner", name, config); err != nil {
		return nil, err
	}
	return f(), nil
}

func noConfig(kind, name string, config []byte) error {
	c := bytes.TrimSpace(config)
	if len(c) == 0 || string(c) == "null" {
		return nil
	}
	if len(c) >= 2 && c[0] == '{' && c[len(c)-1] == '}' && len(bytes.TrimSpace(c[1:len(c)-1])) == 0 {
		return nil
	}
	return fmt.Errorf("built-in %s %q takes no configuration, got %q", kind, name, c)
}
