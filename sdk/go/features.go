package kpipe

import "encoding/binary"

// Feature is a set of the ABI's optional features (ABI section 8.1), which
// change what some hooks are given so that the host encodes, and the plugin
// decodes, less per record.
type Feature uint64

const (
	// FeaturePartitionKey gives Partition a Record whose only field is
	// the key (after serialization): for partitioners that route on the
	// key alone. KPIPE_FEATURE_PARTITION_KEY.
	FeaturePartitionKey Feature = 1 << 0
	// FeatureAckNoRecord gives OnAck a Record whose only fields are the
	// partition and timestamp the record was produced with (Partition and
	// HasPartition unset if it failed before it had one): for observers
	// that count outcomes. KPIPE_FEATURE_ACK_NO_RECORD.
	FeatureAckNoRecord Feature = 1 << 1
	// FeatureEdits lets OnSend hand the host a list of changes instead of
	// the whole changed record. The SDK asks for it itself when a
	// ViewInterceptor is registered, whose setters log the changes; it
	// makes no difference to other plugins. KPIPE_FEATURE_EDITS.
	FeatureEdits Feature = 1 << 2
)

// EnableFeatures asks the host for the features in f and returns those it
// enabled (a host that does not know a feature leaves it out, and the plugin
// then gets the full encodings, which the SDK decodes as before). Call it
// from Init or an init function: at any other time the host enables nothing
// and EnableFeatures returns the features already enabled. Every instance
// of a plugin must ask for the same features (decide from the
// configuration, never from time or chance); an instance that asks for a
// different set fails to start.
func EnableFeatures(f Feature) Feature {
	got := Feature(host.enableFeatures(uint64(f)))
	rt.features |= got & (FeaturePartitionKey | FeatureAckNoRecord)
	return got
}

// leanAckFixedSize is the size of a FeatureAckNoRecord acknowledgement
// without its error text: offset, error length, partition, timestamp.
const leanAckFixedSize = 8 + 4 + 4 + 8

// decodeAckInput decodes an acknowledgement in the encoding the enabled
// features select into rt.ack and rt.rec.
func (rt *runtime) decodeAckInput(in []byte) error {
	if rt.features&FeatureAckNoRecord == 0 {
		return rt.dec.decodeAck(in, &rt.ack, &rt.rec)
	}
	le := binary.LittleEndian
	if len(in) < leanAckFixedSize {
		return malformed("acknowledgement of %d bytes is shorter than its %d-byte fixed part", len(in), leanAckFixedSize)
	}
	n := int64(le.Uint32(in[8:]))
	if n != int64(len(in)-leanAckFixedSize) {
		return malformed("acknowledgement of %d bytes does not hold an error of %d bytes and its fixed part", len(in), n)
	}
	rt.ack.Offset, rt.ack.Error = int64(le.Uint64(in)), ""
	if n > 0 {
		rt.ack.Error = string(in[12 : 12+n])
	}
	rest := in[12+n:]
	partition, timestamp := int32(le.Uint32(rest)), int64(le.Uint64(rest[4:]))
	r := &rt.rec
	r.Topic, r.Key, r.Value, r.Headers = "", nil, nil, nil
	r.Partition, r.HasPartition = 0, false
	if partition >= 0 {
		r.Partition, r.HasPartition = partition, true
	}
	r.Timestamp, r.HasTimestamp = 0, false
	if timestamp != -1 {
		r.Timestamp, r.HasTimestamp = timestamp, true
	}
	return nil
}

// decodePartitionInput decodes a partitioner's input (a record, or its key
// alone with FeaturePartitionKey) into rt.rec.
func (rt *runtime) decodePartitionInput(in []byte) error {
	if rt.features&FeaturePartitionKey == 0 {
		return rt.dec.decodeRecord(in, &rt.rec)
	}
	key, next := nullable(in, 0)
	if next < 0 {
		return fieldError(in, 0, "key", true)
	}
	if next != len(in) {
		return malformed("%d trailing bytes after the key", len(in)-next)
	}
	r := &rt.rec
	r.Topic, r.Key, r.Value, r.Headers = "", key, nil, nil
	r.Partition, r.HasPartition, r.Timestamp, r.HasTimestamp = 0, false, 0, false
	return nil
}
