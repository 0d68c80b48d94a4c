package kpipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Record flag bits (ABI section 4.1).
const (
	flagPartition = 1 << 0
	flagTimestamp = 1 << 1
	flagsKnown    = flagPartition | flagTimestamp
)

// recordFixedSize is the size of a record with an empty topic, null key and
// value and no headers: flags, partition, timestamp, and the four lengths.
const recordFixedSize = 4 + 4 + 8 + 4 + 4 + 4 + 4

// ackFixedSize is the size of an acknowledgement's prefix: offset and error
// length.
const ackFixedSize = 8 + 4

// nameCacheSize is how many recently seen topic and header names a decoder
// keeps, so that decoding the same names again does not allocate. A small
// array scanned linearly is much cheaper than a map in WebAssembly, where
// hashing is slow, and cannot grow however many names a plugin sees.
const nameCacheSize = 16

// headerSpare is how many headers a decoded record can gain without its
// header slice being reallocated.
const headerSpare = 4

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("kpipe: malformed input")

// decoder decodes the ABI encodings into a reused Record. The decoded
// record's byte slices point into the input; its header slice and its
// strings are reused from call to call.
//
// The decoding functions are written flat, with few calls: a function call
// costs tens of nanoseconds in a Go program compiled to WebAssembly, and the
// decoder runs for every record.
type decoder struct {
	headers []Header
	topic   string // the previous record's topic
	names   [nameCacheSize]string
	next    int // the cache slot to replace on the next miss
}

// name returns b as a string, without allocating if it is one of the
// recently seen names.
func (d *decoder) name(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for i := range d.names {
		if len(d.names[i]) == len(b) && d.names[i] == string(b) { // no allocation
			return d.names[i]
		}
	}
	s := string(b)
	d.names[d.next] = s
	d.next = (d.next + 1) % nameCacheSize
	return s
}

// lenField reads the u32 or i32 length at b[off:]; ok is false if b is too
// short.
func lenField(b []byte, off int) (n int64, ok bool) {
	if len(b)-off < 4 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint32(b[off:])), true
}

// nullable reads an i32 length (-1 = null) at b[off:] and the bytes after it,
// and returns them with the offset of what follows, or next = -1 if the field
// is malformed. The result aliases b and has its capacity clipped, so that
// appending to it never overwrites what follows.
func nullable(b []byte, off int) (v []byte, next int) {
	if len(b)-off < 4 {
		return nil, -1
	}
	n := int(int32(binary.LittleEndian.Uint32(b[off:])))
	end := off + 4 + n
	if n == -1 {
		return nil, off + 4
	}
	if n < 0 || end > len(b) {
		return nil, -1
	}
	return b[off+4 : end : end], end
}

// fieldError describes why the field what at b[off:] does not decode; signed
// says whether its length is an i32 where -1 means null, rather than a u32.
// It is called only on failure, and re-reads the field to say why.
func fieldError(b []byte, off int, what string, signed bool) error {
	if len(b)-off < 4 {
		return malformed("%s length at offset %d needs 4 bytes, %d left", what, off, len(b)-off)
	}
	n := int32(binary.LittleEndian.Uint32(b[off:]))
	if signed && n < -1 {
		return malformed("%s length %d is negative", what, n)
	}
	return malformed("%s at offset %d needs %d bytes, %d left", what, off+4, uint32(n), len(b)-off-4)
}

// malformed returns an error wrapping errMalformed. It is kept out of line so
// that the decoding functions, which only call it on failure, keep small
// stack frames: in WebAssembly a large frame makes every call slower.
//
//go:noinline
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
}

// record decodes a record (ABI 4.1) at the start of b into rec, which is
// overwritten, and returns its length.
func (d *decoder) record(b []byte, rec *Record) (int, error) {
	le := binary.LittleEndian
	if len(b) < 16 {
		return 0, malformed("record of %d bytes is shorter than its 16-byte fixed part", len(b))
	}
	flags := le.Uint32(b)
	if flags&^flagsKnown != 0 {
		return 0, malformed("reserved record flag bits %#x are set", flags&^flagsKnown)
	}
	partition := int32(le.Uint32(b[4:]))
	timestamp := int64(le.Uint64(b[8:]))
	off := 16

	n, ok := lenField(b, off)
	if !ok || n > int64(len(b)-off-4) {
		return 0, fieldError(b, off, "topic", false)
	}
	off += 4
	topic := d.topic
	if tb := b[off : off+int(n)]; len(tb) != len(topic) || string(tb) != topic {
		topic = d.name(tb)
		d.topic = topic
	}
	off += int(n)

	key, next := nullable(b, off)
	if next < 0 {
		return 0, fieldError(b, off, "key", true)
	}
	off = next
	value, next := nullable(b, off)
	if next < 0 {
		return 0, fieldError(b, off, "value", true)
	}
	off = next

	count, ok := lenField(b, off)
	if !ok {
		return 0, fieldError(b, off, "header count", false)
	}
	off += 4
	// Every header takes at least 8 bytes: refuse a count the input cannot
	// hold before allocating anything for it.
	if count*8 > int64(len(b)-off) {
		return 0, malformed("header count %d does not fit in the %d bytes left", count, len(b)-off)
	}
	hs := d.headers[:0]
	if cap(hs) < int(count)+headerSpare {
		// Leave room for the headers an interceptor adds, so that
		// AddHeader does not allocate on every record.
		hs = make([]Header, 0, int(count)+2*headerSpare)
	}
	for i := int64(0); i < count; i++ {
		n, ok := lenField(b, off)
		if !ok || n > int64(len(b)-off-4) {
			return 0, fieldError(b, off, "header name", false)
		}
		// Records tend to carry the same headers in the same order: try the
		// name the previous record had at this position (still in the
		// reused slice) before the cache.
		nb := b[off+4 : off+4+int(n)]
		var name string
		if int(i) < cap(hs) {
			name = hs[:i+1][i].Key
		}
		if len(nb) != len(name) || string(nb) != name {
			name = d.name(nb)
		}
		off += 4 + int(n)
		hv, next := nullable(b, off)
		if next < 0 {
			return 0, fieldError(b, off, "header value", true)
		}
		off = next
		hs = append(hs, Header{Key: name, Value: hv})
	}
	// Keep the slice for the next call. Entries beyond its length are not
	// cleared: they point into the input buffer or at headers a plugin
	// added, and clearing them costs more than the call itself in
	// WebAssembly.
	d.headers = hs

	// Set every field of rec one by one: assigning a whole Record, which
	// holds pointers, to the heap is a typedmemmove call, which costs some
	// 50 ns per record in WebAssembly. TestDecodeSetsEveryField fails if a
	// field is added to Record and not here.
	rec.Topic, rec.Key, rec.Value, rec.Headers = topic, key, value, hs
	rec.Partition, rec.HasPartition = 0, false
	if flags&flagPartition != 0 {
		rec.Partition, rec.HasPartition = partition, true
	}
	rec.Timestamp, rec.HasTimestamp = 0, false
	if flags&flagTimestamp != 0 {
		rec.Timestamp, rec.HasTimestamp = timestamp, true
	}
	return off, nil
}

// decodeRecord decodes in, which must hold exactly one record, into rec.
func (d *decoder) decodeRecord(in []byte, rec *Record) error {
	n, err := d.record(in, rec)
	if err == nil && n != len(in) {
		err = malformed("%d trailing bytes after the record", len(in)-n)
	}
	return err
}

// describe returns the error that says why in, which RecordView.reset
// refused, is not a record.
func (d *decoder) describe(in []byte) error {
	var rec Record
	if err := d.decodeRecord(in, &rec); err != nil {
		return err
	}
	return malformed("record of %d bytes does not decode", len(in))
}

// decodeAck decodes in, an acknowledgement (ABI 4.2), into ack and rec.
func (d *decoder) decodeAck(in []byte, ack *Ack, rec *Record) error {
	if len(in) < ackFixedSize {
		return malformed("acknowledgement of %d bytes is shorter than its %d-byte fixed part", len(in), ackFixedSize)
	}
	offset := int64(binary.LittleEndian.Uint64(in))
	n, _ := lenField(in, 8)
	if n > int64(len(in)-ackFixedSize) {
		return malformed("error at offset %d needs %d bytes, %d left", ackFixedSize, n, len(in)-ackFixedSize)
	}
	msg := in[ackFixedSize : ackFixedSize+int(n)]
	if err := d.decodeRecord(in[ackFixedSize+int(n):], rec); err != nil {
		return fmt.Errorf("%w (in the record after byte %d)", err, ackFixedSize+int(n))
	}
	*ack = Ack{Offset: offset}
	if len(msg) > 0 {
		ack.Error = string(msg)
	}
	return nil
}

// appendRecord appends the encoding of rec (ABI 4.1) to dst.
func appendRecord(dst []byte, rec *Record) ([]byte, error) {
	size := recordFixedSize + len(rec.Topic) + len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		size += 8 + len(h.Key) + len(h.Value)
	}
	// A record must fit the 32-bit lengths of the encoding and the 2 GiB of
	// guest memory; this can only fail for absurd records, but a wrapped
	// length would corrupt the output silently.
	if size > math.MaxInt32 || size < 0 {
		return dst, fmt.Errorf("kpipe: record of %d bytes is too large to encode", size)
	}
	// Grow once, by at least the whole record, and geometrically: a batch
	// appends many records to one buffer.
	dst = slices.Grow(dst, size)
	var flags uint32
	if rec.HasPartition {
		flags |= flagPartition
	}
	if rec.HasTimestamp {
		flags |= flagTimestamp
	}
	var partition int32
	var timestamp int64
	if rec.HasPartition {
		partition = rec.Partition
	}
	if rec.HasTimestamp {
		timestamp = rec.Timestamp
	}
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, flags)
	dst = le.AppendUint32(dst, uint32(partition))
	dst = le.AppendUint64(dst, uint64(timestamp))
	dst = le.AppendUint32(dst, uint32(len(rec.Topic)))
	dst = append(dst, rec.Topic...)
	dst = appendNullable(dst, rec.Key)
	dst = appendNullable(dst, rec.Value)
	dst = le.AppendUint32(dst, uint32(len(rec.Headers)))
	for _, h := range rec.Headers {
		dst = le.AppendUint32(dst, uint32(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendNullable(dst, h.Value)
	}
	return dst, nil
}

// appendNullable appends an i32 length (-1 for nil) and the bytes of b.
func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return binary.LittleEndian.AppendUint32(dst, math.MaxUint32) // -1
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
