package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"unsafe"

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
	errMagic    = errors.New("not a record batch of magic 2")
	errTooLarge = errors.New("record batch too large for the gateway")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcOf is the CRC-32C of a batch's part from its attributes on.
func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// splitBatches splits the records field of a produce partition into its
// record batches, checking each one's length, magic and CRC.
func splitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		// The magic byte is at offset 16 in message sets of magic 0
		// and 1 too (offset, size, crc), which can be shorter than a
		// batch header: look at it first, for the clearer error.
		if len(b) > 16 && b[16] != 2 {
			if b[16] < 2 {
				return nil, fmt.Errorf("%w: a message set of magic %d (the format of Kafka before 0.11); the gateway reads record batches of magic 2 only, which every client since Kafka 0.11 writes", errMagic, b[16])
			}
			return nil, fmt.Errorf("%w: magic %d", errMagic, b[16])
		}
		if len(b) < batchHeaderLen {
			return nil, fmt.Errorf("%w: %d bytes left, shorter than a batch header", errCorrupt, len(b))
		}
		n := int(int32(binary.BigEndian.Uint32(b[8:12])))
		if n < batchHeaderLen-12 || 12+n > len(b) {
			return nil, fmt.Errorf("%w: batch length %d with %d bytes left", errCorrupt, n, len(b))
		}
		batch := b[:12+n]
		b = b[12+n:]
		if crcOf(batch[crcStart:]) != binary.BigEndian.Uint32(batch[17:21]) {
			return nil, fmt.Errorf("%w: CRC mismatch", errCorrupt)
		}
		out = append(out, batch)
	}
	return out, nil
}

// decompressor holds the codecs' reusable state; it is safe for concurrent
// use. The records it decompresses go into buffers of bufs, which the
// caller owns and gives back (see buffers.go).
type decompressor struct {
	// limit is the most bytes one batch may decompress to.
	limit int64
	bufs  *slicePool[byte]
	zstd  *zstd.Decoder
	gzips sync.Pool // *gzip.Reader
	lz4s  sync.Pool // *lz4.Reader
	zstds sync.Pool // *zstd.Decoder for streams (see zstdStream)
}

func newDecompressor(limit int64, bufs *slicePool[byte]) (*decompressor, error) {
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(limit)))
	if err != nil {
		return nil, err
	}
	return &decompressor{limit: limit, bufs: bufs, zstd: zd}, nil
}

func (d *decompressor) close() { d.zstd.Close() }

// records returns the records section of batch (everything after the
// header), decompressed, and the pooled buffer that holds them (nil when
// raw is not compressed). It decompresses at most limit bytes, itself at
// most d.limit, and returns errTooLarge beyond.
func (d *decompressor) records(codec int16, raw []byte, limit int64) ([]byte, *[]byte, error) {
	limit = min(limit, d.limit)
	switch codec {
	case codecNone:
		return raw, nil, nil
	case codecGzip:
		zr, _ := d.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(raw))
		} else {
			err = zr.Reset(bytes.NewReader(raw))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", errCorrupt, err)
		}
		buf, err := d.readAll(zr, len(raw), limit)
		d.gzips.Put(zr)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return *buf, buf, nil
	case codecSnappy:
		buf, err := d.snappy(raw, limit)
		if err != nil {
			return nil, nil, fmt.Errorf("snappy: %w", err)
		}
		return *buf, buf, nil
	case codecLZ4:
		zr, _ := d.lz4s.Get().(*lz4.Reader)
		if zr == nil {
			zr = lz4.NewReader(bytes.NewReader(raw))
		} else {
			zr.Reset(bytes.NewReader(raw))
		}
		buf, err := d.readAll(zr, len(raw), limit)
		zr.Reset(nil)
		d.lz4s.Put(zr)
		if err != nil {
			return nil, nil, fmt.Errorf("lz4: %w", err)
		}
		return *buf, buf, nil
	case codecZstd:
		// The frame header usually says how large the content is.
		var h zstd.Header
		if h.Decode(raw) != nil || !h.HasFCS {
			// A frame without its size (streaming writers make
			// them) is decoded as a stream, into buffers that grow
			// to the limit at most: DecodeAll grew its own to the
			// decoder's limit, allocating some 45MiB for a batch
			// over an 8MiB one.
			return d.zstdStream(raw, limit)
		}
		if h.FrameContentSize > uint64(limit) {
			return nil, nil, fmt.Errorf("zstd: %w", errTooLarge)
		}
		size := int(h.FrameContentSize)
		buf := d.bufs.get(min(size, int(limit)))
		out, err := d.zstd.DecodeAll(raw, (*buf)[:0])
		if err != nil {
			d.bufs.put(buf)
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return nil, nil, fmt.Errorf("zstd: %w", errTooLarge)
			}
			return nil, nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
		}
		if int64(len(out)) > limit {
			d.bufs.put(buf)
			return nil, nil, fmt.Errorf("zstd: %w", errTooLarge)
		}
		if cap(out) != cap(*buf) {
			// DecodeAll outgrew the buffer: keep what it made.
			d.bufs.put(buf)
			buf = &out
		}
		*buf = out
		return out, buf, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown compression codec %d", errCorrupt, codec)
}

// zstdStream decodes raw, zstd frames whose first does not say its size,
// as a stream: at most limit bytes, into a pooled buffer.
func (d *decompressor) zstdStream(raw []byte, limit int64) ([]byte, *[]byte, error) {
	zr, _ := d.zstds.Get().(*zstd.Decoder)
	if zr == nil {
		var err error
		// One decoder at a time decodes synchronously, without
		// goroutines of its own, so that a decoder dropped from the
		// pool leaves nothing running.
		if zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(d.limit))); err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
	}
	if err := zr.Reset(bytes.NewReader(raw)); err != nil {
		return nil, nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
	}
	buf, err := d.readAll(zr, len(raw), limit)
	d.zstds.Put(zr)
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			err = errTooLarge
		}
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return *buf, buf, nil
}

// readAll reads r to its end, at most limit bytes, into a pooled buffer.
func (d *decompressor) readAll(r io.Reader, hint int, limit int64) (*[]byte, error) {
	buf := d.bufs.get(int(min(int64(4*hint), limit)))
	b := (*buf)[:cap(*buf)]
	n := 0
	for {
		if n == len(b) {
			if int64(n) > limit {
				d.bufs.put(buf)
				return nil, errTooLarge
			}
			// Full: move to a buffer twice the size (at most one
			// byte over the limit, to tell that it is over).
			next := d.bufs.get(int(min(2*int64(len(b)), limit+1)))
			nb := (*next)[:cap(*next)]
			copy(nb, b[:n])
			d.bufs.put(buf)
			buf, b = next, nb
		}
		m, err := r.Read(b[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			d.bufs.put(buf)
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
	}
	if int64(n) > limit {
		d.bufs.put(buf)
		return nil, errTooLarge
	}
	*buf = b[:n]
	return buf, nil
}

// xerialMagic starts a snappy payload in the xerial framing the Java client
// writes: the magic, a version and a compatible version (int32 each), then
// chunks, each an int32 length and a snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// snappy decodes raw, a snappy block or xerial chunks of them, into a
// pooled buffer: the decoded length is known before decoding.
func (d *decompressor) snappy(raw []byte, limit int64) (*[]byte, error) {
	if !bytes.HasPrefix(raw, xerialMagic) {
		n, err := d.snappyLen(0, raw, limit)
		if err != nil {
			return nil, err
		}
		buf := d.bufs.get(n)
		if err := snappyInto(*buf, raw); err != nil {
			d.bufs.put(buf)
			return nil, err
		}
		return buf, nil
	}
	if len(raw) < 16 {
		return nil, fmt.Errorf("%w: short xerial header", errCorrupt)
	}
	raw = raw[16:]
	// First the chunks' lengths, then one buffer for all of them.
	total := 0
	for rest := raw; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: short xerial chunk header", errCorrupt)
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n < 0 || n > len(rest) {
			return nil, fmt.Errorf("%w: xerial chunk of %d bytes with %d left", errCorrupt, n, len(rest))
		}
		var err error
		if total, err = d.snappyLen(total, rest[:n], limit); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	buf := d.bufs.get(total)
	out := *buf
	for len(raw) > 0 {
		n := int(binary.BigEndian.Uint32(raw))
		block := raw[4 : 4+n]
		m, _ := snappy.DecodedLen(block) // checked above
		if err := snappyInto(out[:m], block); err != nil {
			d.bufs.put(buf)
			return nil, err
		}
		out = out[m:]
		raw = raw[4+n:]
	}
	return buf, nil
}

// snappyLen adds the decoded length of block to total, within limit.
func (d *decompressor) snappyLen(total int, block []byte, limit int64) (int, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if int64(total)+int64(n) > limit {
		return 0, errTooLarge
	}
	return total + n, nil
}

// snappyInto decodes block into dst, which is exactly its decoded length.
func snappyInto(dst, block []byte) error {
	out, err := snappy.Decode(dst, block)
	if err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
		return fmt.Errorf("%w: snappy block decodes to %d bytes, not the %d it says", errCorrupt, len(out), len(dst))
	}
	return nil
}

// batch is one parsed record batch of a produce request.
type batch struct {
	kmsg.RecordBatch
	// records is the records section, decompressed.
	records []byte
	// buf is the pooled buffer records is in, if it was compressed; the
	// caller owns it.
	buf *[]byte
}

// parseBatch parses the header of one record batch (from splitBatches) into
// b and decompresses its records, to at most limit bytes.
func (d *decompressor) parseBatch(b *batch, raw []byte, limit int64) error {
	if err := b.readHeader(raw); err != nil {
		return err
	}
	return d.decompress(b, limit)
}

// readHeader parses the header of one record batch (from splitBatches) into
// b; its records stay as they are, compressed or not.
func (b *batch) readHeader(raw []byte) error {
	// ReadFrom keeps Records as a sub-slice of raw; the header fields
	// are copied.
	if err := b.RecordBatch.ReadFrom(raw); err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if b.NumRecords < 0 {
		return fmt.Errorf("%w: %d records", errCorrupt, b.NumRecords)
	}
	return nil
}

// decompress decompresses the records of b, whose header readHeader
// parsed, to at most limit bytes.
func (d *decompressor) decompress(b *batch, limit int64) error {
	recs, buf, err := d.records(b.Attributes&codecMask, b.Records, limit)
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("%w: it decompresses to more than the %d bytes left of its memory limit", err, min(limit, d.limit))
	}
	if err != nil {
		return err
	}
	// The count sizes what the batch is given (the records handed to
	// the pipeline, its result): a count its bytes cannot hold is
	// refused before anything is allocated for it.
	if int64(b.NumRecords) > int64(len(recs))/minRecordLen {
		if buf != nil {
			d.bufs.put(buf)
		}
		return fmt.Errorf("%w: %d records claimed in %d bytes of records", errCorrupt, b.NumRecords, len(recs))
	}
	b.records, b.buf = recs, buf
	return nil
}

// minRecordLen is the fewest bytes a record takes: its length and six
// fields (attributes, timestamp delta, offset delta, key length, value
// length, header count) of one byte each.
const minRecordLen = 7

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
		if err := readRecord(&rec, src[n:end]); err != nil {
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

// readRecord reads one record's body (what follows its length) into rec,
// reusing rec's header slice. It holds the body to what a broker accepts:
// a key or value length below -1 (null), a negative header count or
// header key length, more headers than the bytes could hold, and bytes
// left over after the last header are all errors, where a lenient reader
// would take a negative length for null or a negative count for none.
// rec's slices and header keys point into body.
func readRecord(rec *kmsg.Record, body []byte) error {
	r := recordReader{b: body}
	rec.Attributes = int8(r.byte())
	rec.TimestampDelta64 = r.varint("timestamp delta")
	rec.TimestampDelta = int32(rec.TimestampDelta64)
	rec.OffsetDelta = int32(r.varint("offset delta"))
	rec.Key = r.bytes("key", true)
	rec.Value = r.bytes("value", true)
	count := r.varint("header count")
	switch {
	case r.err != nil:
	case count < 0:
		r.fail("header count %d", count)
	case count > int64(len(r.b))/2:
		// A header takes two bytes at least: its key and value lengths.
		r.fail("%d headers in %d bytes", count, len(r.b))
	}
	rec.Headers = rec.Headers[:0]
	for i := int64(0); i < count && r.err == nil; i++ {
		k := r.bytes("header key", false)
		v := r.bytes("header value", true)
		rec.Headers = append(rec.Headers, kmsg.Header{Key: unsafe.String(unsafe.SliceData(k), len(k)), Value: v})
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the last header", len(r.b))
	}
	return r.err
}

// recordReader reads the fields of a record's body; after the first error
// every read returns a zero value and the error stays.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *recordReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("short record: no attributes")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recordReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a length-prefixed field: -1 is null where nullable says so,
// any other negative length is an error.
func (r *recordReader) bytes(what string, nullable bool) []byte {
	if r.err != nil {
		return nil
	}
	n, l := binary.Varint(r.b)
	if l <= 0 {
		r.fail("bad %s length", what)
		return nil
	}
	r.b = r.b[l:]
	switch {
	case n == -1 && nullable:
		return nil
	case n < 0:
		r.fail("%s length %d", what, n)
		return nil
	case n > int64(len(r.b)):
		r.fail("%s of %d bytes with %d left in the record", what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
