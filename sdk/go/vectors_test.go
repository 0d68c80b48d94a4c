package kpipe

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The ABI test vectors (sdk/testdata, written from the host's encoder; see
// sdk/testdata/README.md) check the SDK's codec and batch loops against the
// bytes the host sends and expects.

const vectorDir = "../testdata"

func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorNames(t *testing.T, list string) []string {
	return strings.Fields(string(readVector(t, list)))
}

// vectorMurmur2 is Kafka's murmur2, for the key-hash results.
func vectorMurmur2(b []byte) uint32 {
	const m = 0x5bd1e995
	h := uint32(0x9747b28c) ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := binary.LittleEndian.Uint32(b) * m
		k ^= k >> 24
		h = h*m ^ k*m
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

func TestVectorRecords(t *testing.T) {
	for _, name := range vectorNames(t, "records.txt") {
		t.Run(name, func(t *testing.T) {
			in := readVector(t, "records/"+name+".bin")
			var d decoder
			var rec Record
			if err := d.decodeRecord(in, &rec); err != nil {
				t.Fatal(err)
			}
			out, err := appendRecord(nil, &rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Errorf("decoding and encoding changed the record")
			}
			rec.SetHeader("kpipe-stamp", []byte("sdk"))
			out, err = appendRecord(nil, &rec)
			if err != nil {
				t.Fatal(err)
			}
			if want := readVector(t, "results/set_header/"+name+".bin"); !bytes.Equal(out, want) {
				t.Errorf("SetHeader: encoding differs from results/set_header/%s.bin", name)
			}
		})
	}
}

func TestVectorBatches(t *testing.T) {
	names := vectorNames(t, "records.txt")
	p := &funcPlugin{
		onSend: func(r *Record) (Action, error) {
			r.SetHeader("kpipe-stamp", []byte("sdk"))
			return Changed, nil
		},
		partition: func(r *Record, n int32) (int32, error) {
			if r.Key == nil {
				return DefaultPartition, nil
			}
			return int32(vectorMurmur2(r.Key)&0x7fffffff) % n, nil
		},
		onAck: func(*Record, Ack) error { return nil },
	}

	in := readVector(t, "batch/on_send.bin")
	rt, n := batchRuntime(p, in)
	results, code := rt.onSendBatch(int32(len(names)), n)
	if code != statusOK {
		t.Fatalf("onSendBatch = %d", code)
	}
	_, outs := sendResults(t, rt, results, len(names))
	for i, name := range names {
		if want := readVector(t, "results/set_header/"+name+".bin"); !bytes.Equal(outs[i], want) {
			t.Errorf("on_send batch entry %d (%s) differs from results/set_header/%s.bin", i, name, name)
		}
	}

	rt, n = batchRuntime(p, readVector(t, "batch/partition.bin"))
	results, code = rt.partitionBatch(int32(len(names)), n)
	if code != statusOK {
		t.Fatalf("partitionBatch = %d", code)
	}
	if want := readVector(t, "results/keyhash.bin"); !bytes.Equal(results, want) {
		t.Errorf("partition batch results %x, want results/keyhash.bin %x", results, want)
	}

	acks := vectorNames(t, "acks.txt")
	rt, n = batchRuntime(p, readVector(t, "batch/on_ack.bin"))
	if code := rt.onAckBatch(int32(len(acks)), n); code != statusOK {
		t.Errorf("onAckBatch = %d", code)
	}
}

func TestVectorAcks(t *testing.T) {
	want := map[string]Ack{
		"delivered":          {Offset: 42},
		"failed":             {Offset: -1, Error: "broker unreachable"},
		"failed_partitioned": {Offset: -1, Error: "MESSAGE_TOO_LARGE"},
	}
	for _, name := range vectorNames(t, "acks.txt") {
		var d decoder
		var rec Record
		var ack Ack
		if err := d.decodeAck(readVector(t, "acks/"+name+".bin"), &ack, &rec); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ack != want[name] {
			t.Errorf("%s: ack %+v, want %+v", name, ack, want[name])
		}
		if rec.Topic != "orders" {
			t.Errorf("%s: topic %q, want orders", name, rec.Topic)
		}
	}
}
