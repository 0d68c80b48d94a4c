package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// xerial frames blocks of data in the xerial snappy framing (header, then
// length-prefixed snappy blocks), as the Java client writes it.
func xerial(data []byte, chunk int) []byte {
	out := append([]byte{}, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for len(data) > 0 {
		n := min(chunk, len(data))
		block := snappy.Encode(nil, data[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		data = data[n:]
	}
	return out
}

func TestDecompress(t *testing.T) {
	d, err := newDecompressor(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	data := bytes.Repeat([]byte("kpipe gateway record bytes "), 1000)
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(data, nil)
	big := enc.EncodeAll(make([]byte, 2<<20), nil)
	enc.Close()
	for _, c := range []struct {
		name  string
		codec int16
		in    []byte
		want  error
	}{
		{"snappy raw", codecSnappy, snappy.Encode(nil, data), nil},
		{"snappy xerial, several chunks", codecSnappy, xerial(data, 4096), nil},
		{"snappy xerial, one chunk", codecSnappy, xerial(data, 1<<20), nil},
		{"snappy xerial, truncated", codecSnappy, xerial(data, 4096)[:100], errCorrupt},
		{"zstd", codecZstd, zs, nil},
		{"zstd over the limit", codecZstd, big, errTooLarge},
		{"unknown codec", 7, data, errCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.records(c.codec, c.in)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("error %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("decompressed %d bytes, want the %d sent", len(out), len(data))
			}
		})
	}
}

func TestSplitBatchesRejects(t *testing.T) {
	good := make([]byte, batchHeaderLen)
	binary.BigEndian.PutUint32(good[8:], batchHeaderLen-12)
	good[16] = 2
	crc := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[17:], crcOf(b[crcStart:]))
		return b
	}
	good = crc(good)
	if bs, err := splitBatches(append(append([]byte{}, good...), good...)); err != nil || len(bs) != 2 {
		t.Fatalf("two empty batches: %d, %v", len(bs), err)
	}
	badCRC := append([]byte{}, good...)
	badCRC[30] ^= 1
	magic1 := append([]byte{}, good...)
	magic1[16] = 1
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated", good[:40], errCorrupt},
		{"length past the end", append(append([]byte{}, good...), good[:20]...), errCorrupt},
		{"bad CRC", badCRC, errCorrupt},
		{"magic 1", crc(magic1), errMagic},
	} {
		if _, err := splitBatches(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
