package kpipe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestEnableFeatures checks that EnableFeatures keeps what the host granted,
// and only the features the SDK can decode.
func TestEnableFeatures(t *testing.T) {
	h := useFakeHost(t)
	defer func(saved Feature) { rt.features = saved }(rt.features)
	rt.features = 0
	if got := EnableFeatures(FeatureAckNoRecord); got != FeatureAckNoRecord || rt.features != FeatureAckNoRecord {
		t.Fatalf("EnableFeatures = %v, runtime has %v", got, rt.features)
	}
	h.features = 1 << 5 // a bit the SDK does not know, granted by a newer host
	EnableFeatures(FeaturePartitionKey)
	if rt.features != FeatureAckNoRecord|FeaturePartitionKey {
		t.Errorf("runtime features %v", rt.features)
	}
}

// TestVectorLeanAcks decodes every acknowledgement vector in both encodings:
// the record-less one gives the same Ack, and the partition and timestamp of
// the full one's record.
func TestVectorLeanAcks(t *testing.T) {
	for _, name := range vectorNames(t, "acks.txt") {
		t.Run(name, func(t *testing.T) {
			full := &runtime{}
			if err := full.decodeAckInput(readVector(t, "acks/"+name+".bin")); err != nil {
				t.Fatal(err)
			}
			lean := &runtime{features: FeatureAckNoRecord}
			if err := lean.decodeAckInput(readVector(t, "acks/"+name+".lean.bin")); err != nil {
				t.Fatal(err)
			}
			if lean.ack != full.ack {
				t.Errorf("lean ack %+v, full ack %+v", lean.ack, full.ack)
			}
			want := Record{Partition: full.rec.Partition, HasPartition: full.rec.HasPartition,
				Timestamp: full.rec.Timestamp, HasTimestamp: full.rec.HasTimestamp}
			if got := lean.rec; got.Topic != "" || got.Key != nil || got.Value != nil || got.Headers != nil ||
				got.Partition != want.Partition || got.HasPartition != want.HasPartition ||
				got.Timestamp != want.Timestamp || got.HasTimestamp != want.HasTimestamp {
				t.Errorf("lean record %+v, want %+v", got, want)
			}
			// A truncated or padded lean acknowledgement is malformed.
			b := readVector(t, "acks/"+name+".lean.bin")
			for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b...), 0)} {
				if err := lean.decodeAckInput(bad); err == nil {
					t.Errorf("%d-byte acknowledgement decoded", len(bad))
				}
			}
		})
	}
}

// TestVectorPartitionKeys partitions every record from its key alone
// (FeaturePartitionKey), one by one and in the key batch, and gets the
// key-hash results of the full records.
func TestVectorPartitionKeys(t *testing.T) {
	useFakeHost(t)
	names := vectorNames(t, "records.txt")
	var sawValue bool
	p := &funcPlugin{partition: func(r *Record, n int32) (int32, error) {
		if r.Value != nil || r.Topic != "" || r.Headers != nil {
			sawValue = true
		}
		if r.Key == nil {
			return DefaultPartition, nil
		}
		return int32(vectorMurmur2(r.Key)&0x7fffffff) % n, nil
	}}
	want := readVector(t, "results/keyhash.bin")
	for i, name := range names {
		in := readVector(t, "keys/"+name+".bin")
		r := &runtime{partitioner: p, features: FeaturePartitionKey}
		copy(r.buffer(int32(len(in))), in)
		code := r.partition(7, int32(len(in)))
		if w := int64(int32(binary.LittleEndian.Uint32(want[4*i:]))); code != w {
			t.Errorf("%s: partition %d, want %d", name, code, w)
		}
	}
	r, n := batchRuntime(p, readVector(t, "batch/partition_key.bin"))
	r.features = FeaturePartitionKey
	results, code := r.partitionBatch(int32(len(names)), n)
	if code != statusOK || !bytes.Equal(results, want) {
		t.Errorf("key batch: code %d, results %x, want %x", code, results, want)
	}
	if sawValue {
		t.Error("Partition saw more than the key")
	}
}

// TestVectorLeanAckBatch runs OnAck over the record-less acknowledgement
// batch.
func TestVectorLeanAckBatch(t *testing.T) {
	useFakeHost(t)
	acks := vectorNames(t, "acks.txt")
	var got []Ack
	p := &funcPlugin{onAck: func(_ *Record, a Ack) error { got = append(got, a); return nil }}
	r, n := batchRuntime(p, readVector(t, "batch/on_ack_lean.bin"))
	r.features = FeatureAckNoRecord
	if code := r.onAckBatch(int32(len(acks)), n); code != statusOK || len(got) != len(acks) {
		t.Fatalf("onAckBatch = %d with %d acks, want 0 and %d", code, len(got), len(acks))
	}
	if got[0].Offset != 42 || got[1].Error != "broker unreachable" {
		t.Errorf("acks %+v", got)
	}
}
