package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// gzipped and lz4ed compress data with those codecs.
func gzipped(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func lz4ed(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := lz4.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecompress decodes every codec twice, giving the pooled buffer back
// in between, so that the second decode writes into a recycled one.
func TestDecompress(t *testing.T) {
	pl := newPools(8 << 20)
	d, err := newDecompressor(1<<20, pl.bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	data := bytes.Repeat([]byte("kpipe gateway record bytes "), 1000)
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(data, nil)
	big := enc.EncodeAll(make([]byte, 2<<20), nil)
	enc.Close()
	// A zstd frame without its content size, as streaming writers make.
	var zsb bytes.Buffer
	zw, _ := zstd.NewWriter(&zsb)
	_, _ = zw.Write(data)
	_ = zw.Close()
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
		{"zstd, streamed", codecZstd, zsb.Bytes(), nil},
		{"zstd over the limit", codecZstd, big, errTooLarge},
		{"gzip", codecGzip, gzipped(t, data), nil},
		{"gzip over the limit", codecGzip, gzipped(t, make([]byte, 2<<20)), errTooLarge},
		{"gzip, truncated", codecGzip, gzipped(t, data)[:50], errCorrupt},
		{"lz4", codecLZ4, lz4ed(t, data), nil},
		{"lz4 over the limit", codecLZ4, lz4ed(t, make([]byte, 2<<20)), errTooLarge},
		{"unknown codec", 7, data, errCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 2 {
				out, buf, err := d.records(c.codec, c.in, d.limit)
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
				if buf == nil || len(*buf) != len(out) || &(*buf)[0] != &out[0] {
					t.Fatal("the records are not in the buffer returned for them")
				}
				pl.bytes.put(buf)
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
		// One message of magic 0 and one of magic 1 (offset, size,
		// crc, magic, attributes, [timestamp,] key and value of
		// length -1): shorter than a batch header.
		{"magic 0 message set", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}, errMagic},
		{"magic 1 message set", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 22, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}, errMagic},
	} {
		_, err := splitBatches(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if strings.HasSuffix(c.name, "message set") && !strings.Contains(err.Error(), "before 0.11") {
			t.Errorf("%s: %q does not say which format it is", c.name, err)
		}
	}
}

// FuzzBatches feeds arbitrary bytes, as a produce partition's records, and
// arbitrary request headers through the parsing a client's request goes
// through: nothing may panic, and a batch that parses yields its records
// within its bounds.
func FuzzBatches(f *testing.F) {
	pl := newPools(8 << 20)
	d, err := newDecompressor(1<<20, pl.bytes)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.close)
	f.Add(validBatch(f, 3))
	f.Add(validBatch(f, 0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _ = parseHeader(b)
		if _, err := splitBatches(b); err != nil && len(b) >= batchHeaderLen {
			// Make it one batch with a right length, magic and CRC,
			// so that the fuzzer reaches decompression and records.
			b = append([]byte(nil), b...)
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
			b[16] = 2
			binary.BigEndian.PutUint32(b[17:], crcOf(b[crcStart:]))
		}
		raws, err := splitBatches(b)
		if err != nil {
			return
		}
		for _, raw := range raws {
			var bt batch
			if err := d.parseBatch(&bt, raw, d.limit); err != nil {
				continue
			}
			if bt.buf != nil {
				defer pl.bytes.put(bt.buf)
			}
			_ = bt.eachRecord(func(i int, rec *kmsg.Record) error {
				if i >= int(bt.NumRecords) {
					t.Fatalf("record %d of %d", i, bt.NumRecords)
				}
				return nil
			})
		}
	})
}

// validBatch is an uncompressed batch of n records with keys and headers.
func validBatch(tb testing.TB, n int) []byte {
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Key: []byte{byte(i)}, Value: []byte("v"), Headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(n - 1), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crcOf(raw[crcStart:]))
	if _, err := splitBatches(raw); err != nil {
		tb.Fatalf("seed batch: %v", err)
	}
	return raw
}

// TestReadRecord reads records built field by field: the valid ones give
// their fields back (a -1 length is null, 0 is empty), and every length or
// count a broker refuses is an error naming the field, where kmsg's lenient
// reader would take it for null or none.
func TestReadRecord(t *testing.T) {
	// body is a record body: attributes 0, timestamp delta 5, offset
	// delta 1, then the varints and bytes given.
	body := func(fields ...any) []byte {
		b := []byte{0}
		b = binary.AppendVarint(b, 5)
		b = binary.AppendVarint(b, 1)
		for _, f := range fields {
			switch f := f.(type) {
			case int:
				b = binary.AppendVarint(b, int64(f))
			case string:
				b = append(b, f...)
			}
		}
		return b
	}
	valid := []struct {
		name       string
		in         []byte
		key, value []byte
		headers    []kmsg.Header
	}{
		{"null key and value", body(-1, -1, 0), nil, nil, nil},
		{"empty key and value", body(0, 0, 0), []byte{}, []byte{}, nil},
		{"key, value, two headers", body(1, "k", 2, "vv", 2, 1, "a", 1, "x", 1, "b", -1), []byte("k"), []byte("vv"),
			[]kmsg.Header{{Key: "a", Value: []byte("x")}, {Key: "b"}}},
	}
	for _, c := range valid {
		var rec kmsg.Record
		if err := readRecord(&rec, c.in); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if rec.TimestampDelta64 != 5 || rec.OffsetDelta != 1 {
			t.Errorf("%s: timestamp delta %d, offset delta %d, want 5 and 1", c.name, rec.TimestampDelta64, rec.OffsetDelta)
		}
		if (rec.Key == nil) != (c.key == nil) || !bytes.Equal(rec.Key, c.key) || (rec.Value == nil) != (c.value == nil) || !bytes.Equal(rec.Value, c.value) {
			t.Errorf("%s: key %q value %q, want %q %q", c.name, rec.Key, rec.Value, c.key, c.value)
		}
		if len(rec.Headers) != len(c.headers) {
			t.Errorf("%s: headers %v, want %v", c.name, rec.Headers, c.headers)
			continue
		}
		for i, h := range rec.Headers {
			w := c.headers[i]
			if h.Key != w.Key || !bytes.Equal(h.Value, w.Value) || (h.Value == nil) != (w.Value == nil) {
				t.Errorf("%s: header %d %q=%q, want %q=%q", c.name, i, h.Key, h.Value, w.Key, w.Value)
			}
		}
	}
	invalid := []struct {
		name, in, want string
	}{
		{"empty body", "", "no attributes"},
		{"key length -2", string(body(-2, -1, 0)), "key length -2"},
		{"value length -7", string(body(-1, -7, 0)), "value length -7"},
		{"key past the end", string(body(9, "k")), "key of 9 bytes"},
		{"negative header count", string(body(-1, -1, -1)), "header count -1"},
		{"header count beyond the bytes", string(body(-1, -1, 1000, 1, "a", 0)), "1000 headers"},
		{"null header key", string(body(-1, -1, 1, -1, 0)), "header key length -1"},
		{"header value length -3", string(body(-1, -1, 1, 1, "a", -3)), "header value length -3"},
		{"bytes after the headers", string(body(-1, -1, 0, "junk")), "4 bytes after the last header"},
		{"truncated varint", string([]byte{0, 0x80}), "bad timestamp delta"},
	}
	for _, c := range invalid {
		var rec kmsg.Record
		err := readRecord(&rec, []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
