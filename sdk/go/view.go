package kpipe

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// ViewInterceptor is an interceptor that reads and changes records through a
// RecordView instead of a decoded Record. It sees the same records, in the
// same calls, with the same results as an Interceptor; what differs is the
// cost. A Record is decoded whole before OnSend runs and, when Changed,
// encoded whole again; a RecordView decodes only what OnSendView reads, and
// its setters send the host the changes alone (ABI section 8.2), so that
// stamping a header on a record costs about what passing it on unchanged
// costs. Register it with RegisterViewInterceptor; like an Interceptor it may
// implement AckObserver (with package ack) and Initializer.
type ViewInterceptor interface {
	// OnSendView inspects v and may change it through its setters. It
	// returns Unchanged (changes made through v are then ignored), Changed
	// (the changes made through v are applied) or Drop, and an error or a
	// panic fails the record exactly as in Interceptor's OnSend.
	OnSendView(v *RecordView) (Action, error)
}

// RegisterViewInterceptor makes p the plugin's interceptor. Like
// RegisterInterceptor, it must be called from an init function of package
// main, and panics if an interceptor (of either kind) is already registered
// or p is nil. If p implements AckObserver, the plugin must import package
// ack.
func RegisterViewInterceptor(p ViewInterceptor) {
	rt.registerInterceptor("RegisterViewInterceptor", p)
	rt.viewInterceptor = p
}

// RecordView is a Kafka record as a ViewInterceptor sees it: a view of the
// record's encoding in the plugin's input buffer, decoded field by field as
// the plugin reads it, and a log of the changes the plugin makes.
//
// Its getters return the record as changed so far by its setters. Byte
// slices it returns alias the input buffer or the slices given to its
// setters, and are valid only until OnSendView returns, as a Record's are.
// A RecordView is reused from record to record: do not keep it.
type RecordView struct {
	in  []byte // the record's encoding, ABI 4.1
	dec *decoder

	// Where the fields are in in, found by reset: the topic bytes, and the
	// length fields of the key, the value and the header count.
	topicOff, topicLen     int
	keyOff, valueOff, hOff int
	nheaders               int

	// The record as changed so far. The key, value and topic are read
	// from in until they are set.
	flags            uint32
	partition        int32
	timestamp        int64
	key, value       []byte
	topic            string
	keySet, valueSet bool
	topicSet         bool
	// headers holds the decoded headers once they are read whole or
	// changed (decoded says so); before that, Header scans in.
	headers []Header
	decoded bool

	// edits are the encoded changes (ABI 8.2, without the leading count),
	// nedits how many there are.
	edits  []byte
	nedits uint32
	// hedits counts the header edits among them.
	hedits int
}

// NewRecordView returns a view of a copy of r, as OnSendView is given one:
// it lets a ViewInterceptor be tested natively (go test). The view's
// getters then return the record with the changes made through its setters.
func NewRecordView(r *Record) (*RecordView, error) {
	in, err := appendRecord(nil, r)
	if err != nil {
		return nil, err
	}
	v := new(RecordView)
	dec := new(decoder)
	if !v.reset(in, dec) {
		return nil, dec.describe(in)
	}
	return v, nil
}

// Edit operations (ABI section 8.2).
const (
	editSetHeader      = 1
	editAppendHeader   = 2
	editRemoveHeader   = 3
	editSetKey         = 4
	editSetValue       = 5
	editSetPartition   = 6
	editClearPartition = 7
	editSetTimestamp   = 8
	editClearTimestamp = 9
	editSetTopic       = 10
)

// editListFlag marks an edit list: it is set in the first u32 of a result,
// where a record has its flags, whose bit 31 is reserved.
const editListFlag = 1 << 31

// reset points v at the record encoded in in, which must be exactly one
// record, and forgets the previous record and its edits. It checks the
// whole structure (every length against what is left) but decodes nothing
// but the fixed part; it returns false if in is malformed, and the caller
// then decodes in with the decoder to say why.
//
// It is written flat, with the lengths checked as non-negative ints, for
// the same reason as the decoder: in Go compiled to WebAssembly every call
// and every branch taken costs, and it runs for every record
// (BenchmarkGoGuest in wasmhost, noop-view).
func (v *RecordView) reset(in []byte, dec *decoder) bool {
	le := binary.LittleEndian
	n := len(in)
	if n < recordFixedSize {
		return false
	}
	flags := le.Uint32(in)
	if flags&^flagsKnown != 0 {
		return false
	}
	tl := int(le.Uint32(in[16:]))
	off := 20 + tl
	if tl > n-recordFixedSize { // the topic, then three lengths
		return false
	}
	v.topicOff, v.topicLen, v.keyOff = 20, tl, off
	kl := int(int32(le.Uint32(in[off:])))
	off += 4
	if kl > 0 {
		if kl > n-off-8 {
			return false
		}
		off += kl
	} else if kl < -1 {
		return false
	}
	v.valueOff = off
	vl := int(int32(le.Uint32(in[off:])))
	off += 4
	if vl > 0 {
		if vl > n-off-4 {
			return false
		}
		off += vl
	} else if vl < -1 {
		return false
	}
	v.hOff = off
	count := int(le.Uint32(in[off:]))
	off += 4
	if count > (n-off)/8 {
		return false
	}
	for range count {
		if off > n-8 { // the name's and the value's lengths
			return false
		}
		nl := int(le.Uint32(in[off:]))
		off += 4
		if nl > n-off-4 {
			return false
		}
		off += nl
		hl := int(int32(le.Uint32(in[off:])))
		off += 4
		if hl > 0 {
			if hl > n-off {
				return false
			}
			off += hl
		} else if hl < -1 {
			return false
		}
	}
	if off != n {
		return false
	}
	v.in, v.nheaders = in, count
	if v.dec != dec {
		v.dec = dec
	}
	v.flags = flags
	v.partition, v.timestamp = 0, 0
	if flags&flagPartition != 0 {
		v.partition = int32(le.Uint32(in[4:]))
	}
	if flags&flagTimestamp != 0 {
		v.timestamp = int64(le.Uint64(in[8:]))
	}
	v.keySet, v.valueSet, v.topicSet, v.decoded = false, false, false, false
	if v.nedits != 0 {
		v.edits, v.nedits, v.hedits = v.edits[:0], 0, 0
	}
	return true
}

// nullableAt returns the nullable bytes whose i32 length is at off, which
// reset checked.
func (v *RecordView) nullableAt(off int) []byte {
	n := int(int32(binary.LittleEndian.Uint32(v.in[off:])))
	if n < 0 {
		return nil
	}
	end := off + 4 + n
	return v.in[off+4 : end : end]
}

// Topic returns the topic the record is written to. An empty topic in a
// changed record means the pipeline's default topic.
func (v *RecordView) Topic() string {
	if v.topicSet {
		return v.topic
	}
	tb := v.in[v.topicOff : v.topicOff+v.topicLen]
	d := v.dec
	if len(tb) != len(d.topic) || string(tb) != d.topic {
		d.topic = d.name(tb)
	}
	return d.topic
}

// Key returns the record key; nil is a null key, which is not the same as
// an empty, non-nil key.
func (v *RecordView) Key() []byte {
	if v.keySet {
		return v.key
	}
	return v.nullableAt(v.keyOff)
}

// Value returns the record value; nil is a null value (a tombstone on
// compacted topics), which is not the same as an empty, non-nil value.
func (v *RecordView) Value() []byte {
	if v.valueSet {
		return v.value
	}
	return v.nullableAt(v.valueOff)
}

// Partition returns the partition the record goes to, and whether it names
// one; a record without one is partitioned by the pipeline's partitioner.
func (v *RecordView) Partition() (int32, bool) {
	return v.partition, v.flags&flagPartition != 0
}

// Timestamp returns the record's create time in milliseconds since the Unix
// epoch, and whether it has one.
func (v *RecordView) Timestamp() (int64, bool) {
	return v.timestamp, v.flags&flagTimestamp != 0
}

// Time returns the record's timestamp, or the zero time if it has none.
func (v *RecordView) Time() time.Time {
	if v.flags&flagTimestamp == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v.timestamp)
}

// Header returns the value of the first header named name, and whether there
// is one. It decodes no other header.
func (v *RecordView) Header(name string) ([]byte, bool) {
	if v.decoded || v.hedits > 0 {
		v.decode()
		for i := range v.headers {
			if v.headers[i].Key == name {
				return v.headers[i].Value, true
			}
		}
		return nil, false
	}
	le := binary.LittleEndian
	off := v.hOff + 4
	for range v.nheaders {
		nl := int(le.Uint32(v.in[off:]))
		nb := v.in[off+4 : off+4+nl]
		off += 4 + nl
		if string(nb) == name {
			return v.nullableAt(off), true
		}
		if hl := int(int32(le.Uint32(v.in[off:]))); hl > 0 {
			off += hl
		}
		off += 4
	}
	return nil, false
}

// Headers returns the record's headers, in order; names may repeat. The
// slice is the view's: read it, and change the headers through SetHeader,
// AddHeader and RemoveHeader only.
func (v *RecordView) Headers() []Header {
	v.decode()
	return v.headers
}

// decode decodes the headers into v.headers, once, and applies the header
// edits made so far. Until then the header setters only log their edits:
// a plugin that sets headers without reading them back (a stamp) never pays
// for decoding them (BenchmarkGoGuest in wasmhost, stamp).
func (v *RecordView) decode() {
	if v.decoded {
		return
	}
	v.decoded = true
	hs := v.headers[:0]
	le := binary.LittleEndian
	off := v.hOff + 4
	for range v.nheaders {
		nl := int(le.Uint32(v.in[off:]))
		name := v.dec.name(v.in[off+4 : off+4+nl])
		off += 4 + nl
		val := v.nullableAt(off)
		off += 4 + len(val)
		hs = append(hs, Header{Key: name, Value: val})
	}
	if v.hedits > 0 {
		hs = v.replayHeaderEdits(hs)
	}
	v.headers = hs
}

// replayHeaderEdits applies the header edits of v.edits to hs, in order,
// and returns the headers. The values alias v.edits.
func (v *RecordView) replayHeaderEdits(hs []Header) []Header {
	le := binary.LittleEndian
	e := v.edits
	for off := 0; off < len(e); {
		op := e[off]
		off++
		switch op {
		case editSetHeader, editAppendHeader, editRemoveHeader:
			nl := int(le.Uint32(e[off:]))
			name := v.dec.name(e[off+4 : off+4+nl])
			off += 4 + nl
			if op == editRemoveHeader {
				hs = removeHeaders(hs, name, 0)
				continue
			}
			val, next := nullable(e, off)
			off = next
			if op == editSetHeader {
				hs = setHeader(hs, name, val)
			} else {
				hs = append(hs, Header{Key: name, Value: val})
			}
		case editSetKey, editSetValue:
			_, off = nullable(e, off)
		case editSetPartition:
			off += 4
		case editSetTimestamp:
			off += 8
		case editSetTopic:
			off += 4 + int(le.Uint32(e[off:]))
		}
	}
	return hs
}

// SetHeader gives the first header named name the value value and removes
// the others of that name, or appends the header if there is none.
func (v *RecordView) SetHeader(name string, value []byte) {
	if v.decoded {
		v.headers = setHeader(v.headers, name, value)
	}
	v.headerEdit(editSetHeader, name, value)
}

// AddHeader appends a header, keeping any other header of the same name.
func (v *RecordView) AddHeader(name string, value []byte) {
	if v.decoded {
		v.headers = append(v.headers, Header{Key: name, Value: value})
	}
	v.headerEdit(editAppendHeader, name, value)
}

// RemoveHeader removes every header named name and reports whether there
// was one.
func (v *RecordView) RemoveHeader(name string) bool {
	v.decode()
	n := len(v.headers)
	v.headers = removeHeaders(v.headers, name, 0)
	if len(v.headers) == n {
		return false
	}
	v.headerEdit(editRemoveHeader, name, nil)
	return true
}

// headerEdit logs a header edit: op, name, and for a set or append the
// value.
func (v *RecordView) headerEdit(op byte, name string, value []byte) {
	e := slices.Grow(v.edits, 1+4+len(name)+4+len(value))
	e = append(e, op)
	e = binary.LittleEndian.AppendUint32(e, uint32(len(name)))
	e = append(e, name...)
	if op != editRemoveHeader {
		e = appendNullable(e, value)
	}
	v.edits = e
	v.nedits++
	v.hedits++
}

// SetKey replaces the key; nil makes it null.
func (v *RecordView) SetKey(key []byte) {
	v.key, v.keySet = key, true
	v.edits = append(v.edits, editSetKey)
	v.edits = appendNullable(v.edits, key)
	v.nedits++
}

// SetValue replaces the value; nil makes it null (a tombstone).
func (v *RecordView) SetValue(value []byte) {
	v.value, v.valueSet = value, true
	v.edits = append(v.edits, editSetValue)
	v.edits = appendNullable(v.edits, value)
	v.nedits++
}

// SetTopic sends the record to topic; "" means the pipeline's default topic.
func (v *RecordView) SetTopic(topic string) {
	v.topic, v.topicSet = topic, true
	v.edits = append(v.edits, editSetTopic)
	v.edits = binary.LittleEndian.AppendUint32(v.edits, uint32(len(topic)))
	v.edits = append(v.edits, topic...)
	v.nedits++
}

// SetPartition sends the record to partition p, bypassing the partitioner.
func (v *RecordView) SetPartition(p int32) {
	v.partition, v.flags = p, v.flags|flagPartition
	v.edits = append(v.edits, editSetPartition)
	v.edits = binary.LittleEndian.AppendUint32(v.edits, uint32(p))
	v.nedits++
}

// ClearPartition lets the partitioner choose the record's partition.
func (v *RecordView) ClearPartition() {
	v.partition, v.flags = 0, v.flags&^flagPartition
	v.edits = append(v.edits, editClearPartition)
	v.nedits++
}

// SetTimestamp sets the record's timestamp, in milliseconds since the Unix
// epoch.
func (v *RecordView) SetTimestamp(ms int64) {
	v.timestamp, v.flags = ms, v.flags|flagTimestamp
	v.edits = append(v.edits, editSetTimestamp)
	v.edits = binary.LittleEndian.AppendUint64(v.edits, uint64(ms))
	v.nedits++
}

// ClearTimestamp removes the record's timestamp: the Kafka client stamps it
// when it is produced.
func (v *RecordView) ClearTimestamp() {
	v.timestamp, v.flags = 0, v.flags&^flagTimestamp
	v.edits = append(v.edits, editClearTimestamp)
	v.nedits++
}

// SetTime sets the record's timestamp to t, truncated to milliseconds. The
// zero time clears it.
func (v *RecordView) SetTime(t time.Time) {
	if t.IsZero() {
		v.ClearTimestamp()
		return
	}
	v.SetTimestamp(t.UnixMilli())
}

// appendResult appends what OnSendView's Changed hands the host to dst: the
// edit list if the host takes edits, else the whole record as changed. It
// reports false, appending nothing, if nothing was changed.
func (v *RecordView) appendResult(dst []byte, edits bool) ([]byte, bool, error) {
	if v.nedits == 0 {
		return dst, false, nil
	}
	if edits {
		if len(v.edits) > math.MaxInt32-4 {
			return dst, false, fmt.Errorf("kpipe: the edits of a record take %d bytes, too many to encode", len(v.edits))
		}
		dst = binary.LittleEndian.AppendUint32(dst, editListFlag|v.nedits)
		return append(dst, v.edits...), true, nil
	}
	v.decode()
	r := Record{Topic: v.Topic(), Key: v.Key(), Value: v.Value(), Headers: v.headers}
	r.Partition, r.HasPartition = v.Partition()
	r.Timestamp, r.HasTimestamp = v.Timestamp()
	dst, err := appendRecord(dst, &r)
	return dst, err == nil, err
}
