package abi

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// The consume-side kinds of ABI version 2 (sdk/ABI.md section 10).

// ConsumeKinds are the kind bits that version 2 adds; a module that
// declares one must export the marker of version 2.
const ConsumeKinds = plugins.KindConsumeInterceptor | plugins.KindDeserializer

// ConsumeVersion is the ABI version that introduced ConsumeKinds.
const ConsumeVersion = 2

// Names of the consume-side hook exports.
const (
	ExportOnConsume   = "kpipe_on_consume"
	ExportDeserialize = "kpipe_deserialize"
)

// consumedFixed is the prefix of a consumed record before its record
// encoding: i64 offset.
const consumedFixed = 8

// ConsumedSize returns the number of bytes PutConsumed writes for r.
func ConsumedSize(r *kgo.Record) int {
	return consumedFixed + fieldsSize(r.Topic, r.Key, r.Value, r.Headers)
}

// PutConsumed encodes a consumed record (ABI section 10.1) into b, which
// must hold at least ConsumedSize(r) bytes, and returns the number of bytes
// written: i64 offset, then the record (section 4.1) with its partition
// (flag bit 0 always set) and its timestamp (bit 1 set unless r has the
// zero time).
func PutConsumed(b []byte, r *kgo.Record) int {
	flags := FlagPartition
	var ts int64
	if !r.Timestamp.IsZero() {
		flags |= FlagTimestamp
		ts = r.Timestamp.UnixMilli()
	}
	binary.LittleEndian.PutUint64(b, uint64(r.Offset))
	return consumedFixed + putFields(b[consumedFixed:], flags, r.Partition, ts, r.Topic, r.Key, r.Value, r.Headers)
}

// ConsumedView returns a record that shares r's topic, key, value, headers,
// partition and timestamp, for decoding a kpipe_on_consume result (a record,
// or an edit list applied to it) without copying r.
func ConsumedView(r *kgo.Record) plugins.Record {
	return plugins.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers,
		Timestamp: r.Timestamp, Partition: r.Partition, HasPartition: true}
}

// ApplyConsumed sets what a kpipe_on_consume result may change (key, value,
// headers and, if the result has one, the timestamp) from res to r. Topic,
// partition and offset say where r was read and stay as they are.
func ApplyConsumed(res *plugins.Record, r *kgo.Record) {
	r.Key, r.Value, r.Headers = res.Key, res.Value, res.Headers
	if !res.Timestamp.IsZero() {
		r.Timestamp = res.Timestamp
	}
}
