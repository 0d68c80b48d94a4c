package abi

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// The ABI test vectors under sdk/testdata are the host's encodings of a fixed
// set of records, acknowledgements and batch frames, and the results a guest
// must produce for them. Every SDK's tests read them; TestVectors checks that
// the files are exactly what this package encodes and decodes, and rewrites
// them with -update (`make vectors`). sdk/testdata/README.md describes the
// files.

var updateVectors = flag.Bool("update", false, "rewrite the test vectors under sdk/testdata")

// vectorDir is sdk/testdata, relative to this package.
const vectorDir = "../../../sdk/testdata"

// Parameters of the vectors' expected results.
const (
	// vectorPartitions is the partition count of the partition batch
	// frames and of results/keyhash.bin.
	vectorPartitions = 7
	// vectorHeaderName and vectorHeaderValue are what results/set_header
	// sets on every record.
	vectorHeaderName  = "kpipe-stamp"
	vectorHeaderValue = "sdk"
	// vectorLargeSize is the encoded size of the "large" record: the
	// host's initial input buffer (64 KiB), so that one byte more would
	// make it ask the guest for a larger one.
	vectorLargeSize = 64 << 10
)

// vectorRecord is a named record of the vectors.
type vectorRecord struct {
	name string
	rec  plugins.Record
}

// vectorRecords returns the records of the vectors, in the order of
// sdk/testdata/records.txt and of the batch frames.
func vectorRecords() []vectorRecord {
	many := make([]plugins.Header, 40)
	for i := range many {
		many[i] = plugins.Header{Key: fmt.Sprintf("h%02d", i), Value: []byte(strings.Repeat("v", i))}
	}
	many[7].Value = nil
	large := plugins.Record{Topic: "large", Key: []byte("big")}
	// Fill the value so that the record is exactly vectorLargeSize bytes.
	large.Value = []byte{}
	large.Value = bytes.Repeat([]byte("0123456789abcdef"), vectorLargeSize/16)[:vectorLargeSize-RecordSize(&large)]
	return []vectorRecord{
		{"minimal", plugins.Record{}},
		{"full", plugins.Record{
			Topic:        "orders",
			Key:          []byte("user-1"),
			Value:        []byte(`{"id":1,"amount":12.5}`),
			Headers:      []plugins.Header{{Key: "trace", Value: []byte("abc")}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}},
			Timestamp:    time.UnixMilli(1_700_000_000_123),
			Partition:    3,
			HasPartition: true,
		}},
		{"null_key", plugins.Record{Topic: "events", Value: []byte("no key")}},
		{"tombstone", plugins.Record{Topic: "events", Key: []byte("gone")}},
		{"empty_value", plugins.Record{Topic: "events", Key: []byte("k"), Value: []byte{}}},
		{"empty_key", plugins.Record{Topic: "events", Key: []byte{}, Value: []byte("v")}},
		{"timestamp_only", plugins.Record{Topic: "events", Key: []byte("t"), Value: []byte("v"), Timestamp: time.UnixMilli(-5)}},
		{"partition_zero", plugins.Record{Topic: "events", Key: []byte("p"), Value: []byte("v"), HasPartition: true}},
		{"repeated_headers", plugins.Record{Topic: "events", Key: []byte("r"), Value: []byte("v"), Headers: []plugins.Header{
			{Key: "a", Value: []byte("1")}, {Key: vectorHeaderName, Value: []byte("old")}, {Key: "a", Value: []byte("2")}, {Key: vectorHeaderName, Value: nil},
		}}},
		{"many_headers", plugins.Record{Topic: "events", Key: []byte("many"), Value: []byte("v"), Headers: many}},
		{"utf8", plugins.Record{Topic: "thé", Key: []byte("ключ"), Value: []byte("値"), Headers: []plugins.Header{{Key: "ñ", Value: []byte("ü")}}}},
		{"binary", plugins.Record{Topic: "bin", Key: []byte{0, 0xff, 0x80, 1, 2, 3, 4}, Value: []byte{0xde, 0xad, 0xbe, 0xef}}},
		{"large", large},
	}
}

// vectorAck is a named acknowledgement of the vectors.
type vectorAck struct {
	name   string
	offset int64
	err    string
	rec    plugins.Record
}

// vectorAcks returns the acknowledgements of the vectors.
func vectorAcks() []vectorAck {
	delivered := plugins.Record{Topic: "orders", Key: []byte("user-1"), Value: []byte("v"),
		Headers: []plugins.Header{{Key: "trace", Value: []byte("abc")}}, Timestamp: time.UnixMilli(1_700_000_000_123)}
	delivered.SetPartition(2)
	return []vectorAck{
		{"delivered", 42, "", delivered},
		{"failed", -1, "broker unreachable", plugins.Record{Topic: "orders", Key: []byte("user-2"), Value: []byte("v")}},
		{"failed_partitioned", -1, "MESSAGE_TOO_LARGE", plugins.Record{Topic: "orders", Value: []byte("v"), HasPartition: true, Partition: 5, Timestamp: time.UnixMilli(1)}},
	}
}

// murmur2 is Kafka's murmur2 hash (the Java client's Utils.murmur2).
func murmur2(b []byte) uint32 {
	const seed, m = 0x9747b28c, 0x5bd1e995
	h := uint32(seed) ^ uint32(len(b))
	for len(b) >= 4 {
		k := binary.LittleEndian.Uint32(b) * m
		k ^= k >> 24
		h = h*m ^ k*m
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	return h ^ h>>15
}

// keyhash is the expected partition of a key-hash partitioner: Kafka's
// (murmur2(key) & 0x7fffffff) % n, and the default partitioner for a null key.
func keyhash(key []byte, n int32) int32 {
	if key == nil {
		return int32(StatusDefaultPartition)
	}
	return int32((murmur2(key) & 0x7fffffff) % uint32(n))
}

// setHeader is SetHeader as every SDK implements it: the first header named
// name gets value, later ones of that name are removed; without one, the
// header is appended.
func setHeader(r plugins.Record, name string, value []byte) plugins.Record {
	var hs []plugins.Header
	found := false
	for _, h := range r.Headers {
		if h.Key != name {
			hs = append(hs, h)
			continue
		}
		if !found {
			hs = append(hs, plugins.Header{Key: name, Value: value})
			found = true
		}
	}
	if !found {
		hs = append(hs, plugins.Header{Key: name, Value: value})
	}
	r.Headers = hs
	return r
}

// vectorFiles returns every file of the vectors, by path under sdk/testdata.
func vectorFiles(t *testing.T) map[string][]byte {
	files := map[string][]byte{}
	recs := vectorRecords()
	var names strings.Builder
	var sendBatch, partBatch, keyBatch, keyhashes []byte
	le := binary.LittleEndian
	for _, vr := range recs {
		fmt.Fprintln(&names, vr.name)
		enc := encode(&vr.rec)
		files["records/"+vr.name+".bin"] = enc
		stamped := setHeader(vr.rec, vectorHeaderName, []byte(vectorHeaderValue))
		files["results/set_header/"+vr.name+".bin"] = encode(&stamped)

		sendBatch = le.AppendUint32(sendBatch, uint32(len(enc)))
		sendBatch = append(sendBatch, enc...)
		partBatch = le.AppendUint32(partBatch, vectorPartitions)
		partBatch = le.AppendUint32(partBatch, uint32(len(enc)))
		partBatch = append(partBatch, enc...)
		key := make([]byte, KeySize(vr.rec.Key))
		PutKey(key, vr.rec.Key)
		files["keys/"+vr.name+".bin"] = key
		keyBatch = le.AppendUint32(keyBatch, vectorPartitions)
		keyBatch = le.AppendUint32(keyBatch, uint32(len(key)))
		keyBatch = append(keyBatch, key...)
		keyhashes = le.AppendUint32(keyhashes, uint32(keyhash(vr.rec.Key, vectorPartitions)))
	}
	files["records.txt"] = []byte(names.String())
	files["results/edit_set_header.bin"] = new(EditList).SetHeader(vectorHeaderName, []byte(vectorHeaderValue)).Bytes()
	files["batch/on_send.bin"] = sendBatch
	files["batch/partition.bin"] = partBatch
	files["batch/partition_key.bin"] = keyBatch
	files["results/keyhash.bin"] = keyhashes

	var ackNames strings.Builder
	var ackBatch, leanBatch []byte
	for _, va := range vectorAcks() {
		fmt.Fprintln(&ackNames, va.name)
		full := make([]byte, AckSize(va.err, &va.rec))
		if n := PutAck(full, va.offset, va.err, &va.rec); n != len(full) {
			t.Fatalf("PutAck wrote %d bytes, AckSize says %d", n, len(full))
		}
		lean := make([]byte, LeanAckSize(va.err))
		if n := PutLeanAck(lean, va.offset, va.err, &va.rec); n != len(lean) {
			t.Fatalf("PutLeanAck wrote %d bytes, LeanAckSize says %d", n, len(lean))
		}
		files["acks/"+va.name+".bin"] = full
		files["acks/"+va.name+".lean.bin"] = lean
		ackBatch = le.AppendUint32(ackBatch, uint32(len(full)))
		ackBatch = append(ackBatch, full...)
		leanBatch = le.AppendUint32(leanBatch, uint32(len(lean)))
		leanBatch = append(leanBatch, lean...)
	}
	for name, b := range consumedVectorFiles() {
		files[name] = b
	}
	files["acks.txt"] = []byte(ackNames.String())
	files["batch/on_ack.bin"] = ackBatch
	files["batch/on_ack_lean.bin"] = leanBatch
	return files
}

// TestVectors checks that the files under sdk/testdata are the encodings of
// the vectors, that each record decodes to its vector and encodes back to
// the same bytes, and that no stale file is left; with -update it rewrites
// them.
func TestVectors(t *testing.T) {
	files := vectorFiles(t)
	if *updateVectors {
		for _, sub := range []string{"records", "keys", "acks", "batch", "results", "consumed"} {
			if err := os.RemoveAll(filepath.Join(vectorDir, sub)); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range files {
			path := filepath.Join(vectorDir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Errorf("%v (run make vectors)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sdk/testdata/%s differs from what the host encodes (run make vectors)", name)
		}
	}
	// No file the generator does not write.
	err := filepath.WalkDir(vectorDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" {
			return err
		}
		rel, _ := filepath.Rel(vectorDir, path)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("sdk/testdata/%s is not a vector (run make vectors)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Every record decodes to its vector and encodes back to its bytes.
	for _, vr := range vectorRecords() {
		b, err := os.ReadFile(filepath.Join(vectorDir, "records", vr.name+".bin"))
		if err != nil {
			continue // reported above
		}
		var got plugins.Record
		if err := DecodeRecord(b, &got); err != nil {
			t.Errorf("records/%s.bin: %v", vr.name, err)
			continue
		}
		equalRecords(t, got, vr.rec)
		if again := encode(&got); !bytes.Equal(again, b) {
			t.Errorf("records/%s.bin: decoding and encoding again changes the bytes", vr.name)
		}
		// The edit list of results/edit_set_header.bin has the effect of
		// results/set_header.
		if err := new(Applier).ApplyEdits(files["results/edit_set_header.bin"], &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encode(&got), files["results/set_header/"+vr.name+".bin"]) {
			t.Errorf("records/%s.bin: the set_header edit list differs from results/set_header", vr.name)
		}
	}
	if n := len(files["records/large.bin"]); n != vectorLargeSize {
		t.Errorf("records/large.bin is %d bytes, want %d", n, vectorLargeSize)
	}
	// The acknowledgement vectors carry what they claim.
	for _, va := range vectorAcks() {
		b := files["acks/"+va.name+".bin"]
		if off := int64(binary.LittleEndian.Uint64(b)); off != va.offset {
			t.Errorf("acks/%s.bin: offset %d, want %d", va.name, off, va.offset)
		}
		var got plugins.Record
		if err := DecodeRecord(b[ackFixed+len(va.err):], &got); err != nil {
			t.Errorf("acks/%s.bin: record: %v", va.name, err)
		}
	}
}

// The key hash of the vectors is Kafka's: franz-go's key partitioner, which
// places keyed records as the Java client does, agrees on every vector key.
func TestVectorKeyhash(t *testing.T) {
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, vr := range vectorRecords() {
		if vr.rec.Key == nil {
			continue
		}
		want := int32(part.Partition(&kgo.Record{Key: vr.rec.Key}, vectorPartitions))
		if got := keyhash(vr.rec.Key, vectorPartitions); got != want {
			t.Errorf("%s: keyhash(%q) = %d, franz-go says %d", vr.name, vr.rec.Key, got, want)
		}
	}
}
