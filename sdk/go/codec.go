package kpipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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

// Interning limits for topic and header names: short strings seen again are
// returned without allocating, and the table is reset when it is full so a
// plugin that sees many names cannot grow it without bound.
const (
	maxInternLen   = 128
	maxInternCount = 256
)

// headerSpare is how many headers a decoded record can gain without its
// header slice being reallocated.
const headerSpare = 4

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("kpipe: malformed input")

// decoder decodes the ABI encodings into a reused Record. The decoded
// record's byte slices point into the input; its header slice and its
// strings are reused from call to call.
type decoder struct {
	headers []Header
	names   map[string]string
}

// reader reads little-endian values from an input and records the first
// error; once it failed, every read returns zero.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
	}
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if n > len(r.b)-r.off {
		r.fail("%s at offset %d needs %d bytes, %d left", what, r.off, n, len(r.b)-r.off)
		return false
	}
	return true
}

func (r *reader) u32(what string) uint32 {
	if !r.need(4, what) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// length reads the u32 length of the field what. It is u32 with a message
// built only on failure, so that the hot path does not concatenate strings.
func (r *reader) length(what string) uint32 {
	if r.err == nil && len(r.b)-r.off < 4 {
		r.fail("%s length at offset %d needs 4 bytes, %d left", what, r.off, len(r.b)-r.off)
	}
	if r.err != nil {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// bytes reads n bytes. The result aliases the input and has its capacity
// clipped to n, so that appending to it never overwrites what follows.
func (r *reader) bytes(n int, what string) []byte {
	if !r.need(n, what) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// nullable reads an i32 length (-1 = null) and the bytes that follow.
func (r *reader) nullable(what string) []byte {
	n := int32(r.length(what))
	if r.err != nil {
		return nil
	}
	switch {
	case n == -1:
		return nil
	case n < 0:
		r.fail("%s length %d is negative", what, n)
		return nil
	}
	return r.bytes(int(n), what)
}

// str reads a u32 length and that many bytes as a string.
func (d *decoder) str(r *reader, what string) string {
	n := r.length(what)
	if n > math.MaxInt32 {
		r.fail("%s length %d is too large", what, n)
	}
	b := r.bytes(int(n), what)
	if r.err != nil || len(b) == 0 {
		return ""
	}
	return d.intern(b)
}

// intern returns b as a string, without allocating if the same short string
// was seen recently.
func (d *decoder) intern(b []byte) string {
	if len(b) > maxInternLen {
		return string(b)
	}
	if s, ok := d.names[string(b)]; ok { // the conversion does not allocate
		return s
	}
	if d.names == nil {
		d.names = make(map[string]string)
	} else if len(d.names) >= maxInternCount {
		clear(d.names)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// record decodes a record (ABI 4.1) from r into rec, which is overwritten.
func (d *decoder) record(r *reader, rec *Record) {
	flags := r.u32("flags")
	if flags&^flagsKnown != 0 {
		r.fail("reserved record flag bits %#x are set", flags&^flagsKnown)
	}
	partition := int32(r.u32("partition"))
	timestamp := int64(r.u64("timestamp"))
	topic := d.str(r, "topic")
	key := r.nullable("key")
	value := r.nullable("value")
	count := r.u32("header count")
	// Every header takes at least 8 bytes: refuse a count the input cannot
	// hold before allocating anything for it.
	if r.err == nil && uint64(count)*8 > uint64(len(r.b)-r.off) {
		r.fail("header count %d does not fit in the %d bytes left", count, len(r.b)-r.off)
	}
	if r.err != nil {
		return
	}
	hs := d.headers[:0]
	if cap(hs) < int(count)+headerSpare {
		// Leave room for the headers an interceptor adds, so that
		// AddHeader does not allocate on every record.
		hs = make([]Header, 0, int(count)+2*headerSpare)
	}
	for i := 0; i < int(count); i++ {
		name := d.str(r, "header name")
		hv := r.nullable("header value")
		if r.err != nil {
			return
		}
		hs = append(hs, Header{Key: name, Value: hv})
	}
	// Keep the grown slice for the next call, and drop references to old
	// values beyond the new length so they do not pin memory.
	clear(hs[len(hs):cap(hs)])
	d.headers = hs
	*rec = Record{
		Topic:        topic,
		Key:          key,
		Value:        value,
		Headers:      hs,
		Partition:    partition,
		HasPartition: flags&flagPartition != 0,
		Timestamp:    timestamp,
		HasTimestamp: flags&flagTimestamp != 0,
	}
	if !rec.HasPartition {
		rec.Partition = 0
	}
	if !rec.HasTimestamp {
		rec.Timestamp = 0
	}
}

// decodeRecord decodes in, which must hold exactly one record, into rec.
func (d *decoder) decodeRecord(in []byte, rec *Record) error {
	r := reader{b: in}
	d.record(&r, rec)
	if r.err == nil && r.off != len(in) {
		r.fail("%d trailing bytes after the record", len(in)-r.off)
	}
	return r.err
}

// decodeAck decodes in, an acknowledgement (ABI 4.2), into ack and rec.
func (d *decoder) decodeAck(in []byte, ack *Ack, rec *Record) error {
	r := reader{b: in}
	offset := int64(r.u64("offset"))
	n := r.length("error")
	if n > math.MaxInt32 {
		r.fail("error length %d is too large", n)
	}
	msg := r.bytes(int(n), "error")
	d.record(&r, rec)
	if r.err == nil && r.off != len(in) {
		r.fail("%d trailing bytes after the record", len(in)-r.off)
	}
	if r.err != nil {
		return r.err
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
	if cap(dst)-len(dst) < size {
		grown := make([]byte, len(dst), len(dst)+size)
		copy(grown, dst)
		dst = grown
	}
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
