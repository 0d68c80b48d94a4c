package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record batch attributes (magic 2).
const (
	codecMask         = 0x07
	codecNone         = 0
	codecGzip         = 1
	codecSnappy       = 2
	codecLZ4          = 3
	codecZstd         = 4
	attrTransactional = 0x10
	attrControl       = 0x20

	// batchHeaderLen is the length of a magic 2 batch up to its records:
	// base offset (8), length (4), leader epoch (4), magic (1), crc (4),
	// attributes (2), last offset delta (4), first and max timestamps
	// (16), producer id (8), producer epoch (2), base sequence (4),
	// record count (4).
	batchHeaderLen = 61
	// crcStart is where the CRC-covered part of a batch begins (the
	// attributes).
	crcStart = 21
)

// errCorrupt, errMagic and errTooLarge are what a record batch can be wrong
// with; produce maps them to CORRUPT_MESSAGE, UNSUPPORTED_FOR_MESSAGE_FORMAT
// and MESSAGE_TOO_LARGE.
var (
	errCorrupt  = errors.New("corrupt record batch")
	errMagic    = errors.New("record batch is not magic 2 (Kafka 0.11+ format)")
	errTooLarge = errors.New("record batch decompresses to more than the limit")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcOf is the CRC-32C of a batch's part from its attributes on.
func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// splitBatches splits the records field of a produce partition into its
// record batches, checking each one's length, magic and CRC.
func splitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < batchHeaderLen {
			return nil, fmt.Errorf("%w: %d bytes left, shorter than a batch header", errCorrupt, len(b))
		}
		n := int(int32(binary.BigEndian.Uint32(b[8:12])))
		if n < batchHeaderLen-12 || 12+n > len(b) {
			return nil, fmt.Errorf("%w: batch length %d with %d bytes left", errCorrupt, n, len(b))
		}
		batch := b[:12+n]
		b = b[12+n:]
		if batch[16] != 2 {
			return nil, fmt.Errorf("%w: magic %d", errMagic, batch[16])
		}
		if crcOf(batch[crcStart:]) != binary.BigEndian.Uint32(batch[17:21]) {
			return nil, fmt.Errorf("%w: CRC mismatch", errCorrupt)
		}
		out = append(out, batch)
	}
	return out, nil
}

// decompressor holds the codecs' reusable state; it is safe for concurrent
// use.
type decompressor struct {
	// limit is the most bytes one batch may decompress to.
	limit int64
	zstd  *zstd.Decoder
	gzips sync.Pool // *gzip.Reader
}

func newDecompressor(limit int64) (*decompressor, error) {
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(limit)))
	if err != nil {
		return nil, err
	}
	return &decompressor{limit: limit, zstd: zd}, nil
}

func (d *decompressor) close() { d.zstd.Close() }

// records returns the records section of batch (everything after the
// header), decompressed.
func (d *decompressor) records(codec int16, raw []byte) ([]byte, error) {
	switch codec {
	case codecNone:
		return raw, nil
	case codecGzip:
		zr, _ := d.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(raw))
		} else {
			err = zr.Reset(bytes.NewReader(raw))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", errCorrupt, err)
		}
		out, err := d.readAll(zr, len(raw))
		d.gzips.Put(zr)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return out, nil
	case codecSnappy:
		out, err := d.snappy(raw)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		return out, nil
	case codecLZ4:
		out, err := d.readAll(lz4.NewReader(bytes.NewReader(raw)), len(raw))
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return out, nil
	case codecZstd:
		out, err := d.zstd.DecodeAll(raw, nil)
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return nil, fmt.Errorf("zstd: %w", errTooLarge)
			}
			return nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
		}
		if int64(len(out)) > d.limit {
			return nil, fmt.Errorf("zstd: %w", errTooLarge)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", errCorrupt, codec)
}

// readAll reads r to its end, at most d.limit bytes.
func (d *decompressor) readAll(r io.Reader, hint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(min(4*hint, int(d.limit)))
	n, err := buf.ReadFrom(io.LimitReader(r, d.limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if n > d.limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// xerialMagic starts a snappy payload in the xerial framing the Java client
// writes: the magic, a version and a compatible version (int32 each), then
// chunks, each an int32 length and a snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func (d *decompressor) snappy(raw []byte) ([]byte, error) {
	if !bytes.HasPrefix(raw, xerialMagic) {
		return d.snappyBlock(nil, raw)
	}
	if len(raw) < 16 {
		return nil, fmt.Errorf("%w: short xerial header", errCorrupt)
	}
	raw = raw[16:]
	var out []byte
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil, fmt.Errorf("%w: short xerial chunk header", errCorrupt)
		}
		n := int(binary.BigEndian.Uint32(raw))
		raw = raw[4:]
		if n < 0 || n > len(raw) {
			return nil, fmt.Errorf("%w: xerial chunk of %d bytes with %d left", errCorrupt, n, len(raw))
		}
		var err error
		if out, err = d.snappyBlock(out, raw[:n]); err != nil {
			return nil, err
		}
		raw = raw[n:]
	}
	return out, nil
}

// snappyBlock appends the decoded snappy block to dst.
func (d *decompressor) snappyBlock(dst, block []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if int64(len(dst)+n) > d.limit {
		return nil, errTooLarge
	}
	out := make([]byte, n)
	if out, err = snappy.Decode(out, block); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if dst == nil {
		return out, nil
	}
	return append(dst, out...), nil
}

// batch is one parsed record batch of a produce request.
type batch struct {
	kmsg.RecordBatch
	// records is the records section, decompressed.
	records []byte
}

// parseBatch parses the header of one record batch (from splitBatches) and
// decompresses its records.
func (d *decompressor) parseBatch(raw []byte) (*batch, error) {
	b := &batch{}
	// ReadFrom keeps Records as a sub-slice of raw; the header fields
	// are copied.
	if err := b.RecordBatch.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if b.NumRecords < 0 {
		return nil, fmt.Errorf("%w: %d records", errCorrupt, b.NumRecords)
	}
	recs, err := d.records(b.Attributes&codecMask, b.Records)
	if err != nil {
		return nil, err
	}
	b.records = recs
	return b, nil
}

// eachRecord calls fn with every record of b, in order. The record's
// slices and header keys point into b's memory; fn must not keep rec
// itself, which is reused.
func (b *batch) eachRecord(fn func(i int, rec *kmsg.Record) error) error {
	var rec kmsg.Record
	src := b.records
	for i := 0; i < int(b.NumRecords); i++ {
		l, n := binary.Varint(src)
		if n <= 0 || l < 0 || int64(len(src)-n) < l {
			return fmt.Errorf("%w: record %d: bad length", errCorrupt, i)
		}
		end := n + int(l)
		if err := rec.UnsafeReadFrom(src[:end]); err != nil {
			return fmt.Errorf("%w: record %d: %v", errCorrupt, i, err)
		}
		if err := fn(i, &rec); err != nil {
			return err
		}
		src = src[end:]
	}
	if len(src) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", errCorrupt, len(src))
	}
	return nil
}
