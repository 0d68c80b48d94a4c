package abi

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// vectorOffset is the offset of the first consumed vector record; record i
// of records.txt has offset vectorOffset+i, above 2^32 so that a decoder
// that reads 32 bits of it fails.
const vectorOffset = 1<<40 + 7

// consumedVector returns vector record i as a consumer fetched it: its
// partition, or 0 if it has none, and its offset.
func consumedVector(i int, rec *plugins.Record) *kgo.Record {
	return &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: vectorOffset + int64(i),
		Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp}
}

// maskDigits returns v with every ASCII digit replaced by '*', as the
// masking example plugins do.
func maskDigits(v []byte) []byte {
	if v == nil {
		return nil
	}
	out := bytes.Clone(v)
	for i, c := range out {
		if c >= '0' && c <= '9' {
			out[i] = '*'
		}
	}
	return out
}

// consumedVectorFiles returns the consume-side vectors (ABI section 10):
// consumed/NAME.bin, each record of records.txt as kpipe_on_consume and
// kpipe_deserialize receive it, and results/mask_digits/NAME.bin, the
// record a masking kpipe_on_consume returns for it.
func consumedVectorFiles() map[string][]byte {
	files := map[string][]byte{}
	for i, vr := range vectorRecords() {
		r := consumedVector(i, &vr.rec)
		enc := make([]byte, ConsumedSize(r))
		PutConsumed(enc, r)
		files["consumed/"+vr.name+".bin"] = enc
		masked := ConsumedView(r)
		masked.Value = maskDigits(masked.Value)
		files["results/mask_digits/"+vr.name+".bin"] = encode(&masked)
	}
	return files
}

// TestConsumedEncoding checks the consumed record encoding field by field:
// the offset, then a record that decodes to the fetched one, with its
// partition always set.
func TestConsumedEncoding(t *testing.T) {
	for i, vr := range vectorRecords() {
		r := consumedVector(i, &vr.rec)
		b := make([]byte, ConsumedSize(r))
		if n := PutConsumed(b, r); n != len(b) {
			t.Fatalf("%s: PutConsumed wrote %d bytes, ConsumedSize says %d", vr.name, n, len(b))
		}
		if off := int64(binary.LittleEndian.Uint64(b)); off != r.Offset {
			t.Errorf("%s: offset %d, want %d", vr.name, off, r.Offset)
		}
		var got plugins.Record
		if err := DecodeRecord(b[8:], &got); err != nil {
			t.Fatalf("%s: %v", vr.name, err)
		}
		want := vr.rec
		want.HasPartition = true
		equalRecords(t, got, want)
	}
}

// TestApplyConsumed checks what a kpipe_on_consume result may change.
func TestApplyConsumed(t *testing.T) {
	ts := time.UnixMilli(5)
	r := &kgo.Record{Topic: "t", Partition: 3, Offset: 9, Key: []byte("k"), Value: []byte("v"), Timestamp: ts}
	res := plugins.Record{Topic: "other", Key: []byte("k2"), Value: nil, Headers: []plugins.Header{{Key: "a"}}}
	res.SetPartition(7)
	ApplyConsumed(&res, r)
	if r.Topic != "t" || r.Partition != 3 || r.Offset != 9 || !r.Timestamp.Equal(ts) {
		t.Errorf("topic, partition, offset or timestamp changed: %+v", r)
	}
	if string(r.Key) != "k2" || r.Value != nil || len(r.Headers) != 1 {
		t.Errorf("key, value, headers = %q %q %v", r.Key, r.Value, r.Headers)
	}
	res.Timestamp = time.UnixMilli(77)
	ApplyConsumed(&res, r)
	if r.Timestamp.UnixMilli() != 77 {
		t.Errorf("timestamp %v, want the result's", r.Timestamp)
	}
}
