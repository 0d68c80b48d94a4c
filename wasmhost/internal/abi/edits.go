package abi

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/kpipe/kpipe/plugins"
)

// The edit encoding (ABI section 8.2, KPIPE_FEATURE_EDITS): instead of the
// whole changed record, kpipe_on_send may return a short list of edits to
// apply to the record the host sent. Records start with their flags, whose
// bit 31 is reserved, so a result whose first u32 has bit 31 set is an edit
// list and anything else is a record.

// FeatureEdits lets kpipe_on_send (and each result of kpipe_on_send_batch)
// return an edit list (PutEdits) instead of a record.
const FeatureEdits uint64 = 1 << 2

// editListFlag marks the first u32 of an edit list; its other bits are the
// number of edits.
const editListFlag = 1 << 31

// Edit operations.
const (
	EditSetHeader      byte = 1 // u32 name length, name, i32 value length (-1 null), value
	EditAppendHeader   byte = 2 // as EditSetHeader
	EditRemoveHeader   byte = 3 // u32 name length, name
	EditSetKey         byte = 4 // i32 length (-1 null), key
	EditSetValue       byte = 5 // i32 length (-1 null), value
	EditSetPartition   byte = 6 // i32 partition
	EditClearPartition byte = 7 // nothing
	EditSetTimestamp   byte = 8 // i64 milliseconds since the Unix epoch
	EditClearTimestamp byte = 9 // nothing
	EditSetTopic       byte = 10
)

// IsEditList reports whether a kpipe_on_send result's bytes are an edit
// list rather than a record.
func IsEditList(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b)&editListFlag != 0
}

// editLayout is what validation learns about an edit list: how many headers
// its edits add at most.
type editLayout struct {
	added int
}

// checkEdits validates an edit list and measures it, without allocating.
func checkEdits(b []byte) (editLayout, error) {
	var l editLayout
	if !IsEditList(b) {
		return l, &DecodeError{Offset: 0, Problem: "not an edit list"}
	}
	count := binary.LittleEndian.Uint32(b) &^ editListFlag
	i := 4
	// Every edit takes at least one byte.
	if uint64(count) > uint64(len(b)-i) {
		return l, &DecodeError{Offset: 0, Problem: fmt.Sprintf("edit count %d does not fit in %d remaining bytes", count, len(b)-i)}
	}
	for range count {
		if i >= len(b) {
			return l, errShort(i, "edit")
		}
		op := b[i]
		i++
		var err error
		switch op {
		case EditSetHeader, EditAppendHeader:
			if _, i, err = checkString(b, i, "header name"); err != nil {
				return l, err
			}
			if _, i, err = checkBytes(b, i, "header value"); err != nil {
				return l, err
			}
			l.added++
		case EditRemoveHeader:
			if _, i, err = checkString(b, i, "header name"); err != nil {
				return l, err
			}
		case EditSetKey, EditSetValue:
			if _, i, err = checkBytes(b, i, "key or value"); err != nil {
				return l, err
			}
		case EditSetTopic:
			if _, i, err = checkString(b, i, "topic"); err != nil {
				return l, err
			}
		case EditSetPartition:
			if len(b)-i < 4 {
				return l, errShort(i, "partition")
			}
			i += 4
		case EditSetTimestamp:
			if len(b)-i < 8 {
				return l, errShort(i, "timestamp")
			}
			i += 8
		case EditClearPartition, EditClearTimestamp:
		default:
			return l, &DecodeError{Offset: i - 1, Problem: fmt.Sprintf("unknown edit operation %d", op)}
		}
	}
	if i != len(b) {
		return l, &DecodeError{Offset: i, Problem: fmt.Sprintf("%d trailing bytes after the edits", len(b)-i)}
	}
	return l, nil
}

// ValidateEdits reports whether b is exactly one valid edit list.
func ValidateEdits(b []byte) error {
	_, err := checkEdits(b)
	return err
}

// ValidateResult validates a kpipe_on_send result of a guest that enabled
// FeatureEdits: an edit list or a record.
func ValidateResult(b []byte) error {
	if IsEditList(b) {
		return ValidateEdits(b)
	}
	return ValidateRecord(b)
}

// An Applier applies the kpipe_on_send results of a guest that enabled
// FeatureEdits to records: edit lists (ApplyEdits) and records
// (DecodeRecord). It hands out the memory that edited records keep (a new
// header list, the bytes of new header values, keys and values) from blocks
// that it allocates blockHeaders headers and blockBytes bytes at a time, so
// that applying a short edit list costs a fraction of an allocation instead
// of two: BenchmarkApplyEdits shows 0 allocations per record, and took about
// 0.62 of the time of allocating per record in an interleaved comparison;
// wasmhost's BenchmarkSDKStampRatios measures the stamps that use it. A
// block stays reachable while any record that took memory from it does,
// which bounds what one long-lived record keeps to one block of each kind.
//
// Header names and topics are strings, which nobody can change, so the
// Applier remembers the last few it copied (names) and gives a later edit
// with the same bytes the same string: a stamp that sets one header on every
// record copies its name once. A list of one edit that sets or appends a
// header, a stamp's list, is checked and applied in one pass by DecodeResult
// itself, the host's one call into the Applier, which first tries the name
// it returned last. With that, the blocks' positions kept as indices (no
// pointer written to the Applier per record), names of 8 to 16 bytes
// compared as two words (sameBytes) and header lists copied header by
// header, BenchmarkApplyEdits ran 235 instructions per record without
// headers and 414 with three, where validating the list first and applying
// it with a call per step ran 366 and 501 (scripts/callgrind_per_op.sh with
// GOGC=off, which leaves out the collector's share, 200,000 and 600,000
// iterations).
//
// An Applier is not safe for concurrent use: the host keeps one per
// instance, which runs one call at a time. The zero value is ready to use.
type Applier struct {
	headers   []plugins.Header // the current block of headers
	headersAt int              // its first unused header
	bytes     []byte           // the current block of bytes
	bytesAt   int              // its first unused byte
	names     [nameCache]string
	nameLast  int // the entry of names that str returned last
	nameNext  int // the entry of names to replace next
}

// Block sizes: a request larger than a quarter of a block gets memory of its
// own, so that a block is never mostly wasted.
const (
	blockHeaders = 64
	blockBytes   = 4096
)

// The strings the Applier remembers: nameCache of them, each at most
// nameCacheMax bytes long, so that what they keep alive stays small.
const (
	nameCache    = 4
	nameCacheMax = 64
)

// headerList returns a new header list holding hs, with room for add more.
func (a *Applier) headerList(hs []plugins.Header, add int) []plugins.Header {
	n := len(hs) + add
	var out []plugins.Header
	if n > blockHeaders/4 {
		out = make([]plugins.Header, len(hs), n)
	} else {
		if len(a.headers)-a.headersAt < n {
			a.headers, a.headersAt = make([]plugins.Header, blockHeaders), 0
		}
		out = a.headers[a.headersAt : a.headersAt+len(hs) : a.headersAt+n]
		a.headersAt += n
	}
	// Header by header: for a few headers cheaper than copy's call
	// (BenchmarkApplyEdits/3-headers: 414 against 428 instructions).
	for k := range hs {
		out[k] = hs[k]
	}
	return out
}

// take returns a copy of src over memory of its own, capped at its length.
func (a *Applier) take(src []byte) []byte {
	n := len(src)
	var d []byte
	if n > blockBytes/4 {
		d = make([]byte, n)
	} else {
		if len(a.bytes)-a.bytesAt < n {
			a.bytes, a.bytesAt = make([]byte, blockBytes), 0
		}
		d = a.bytes[a.bytesAt : a.bytesAt+n : a.bytesAt+n]
		a.bytesAt += n
	}
	copy(d, src)
	return d
}

// takeBytes returns the validated nullable field at b[i:], copied, and the
// offset after it.
func (a *Applier) takeBytes(b []byte, i int) ([]byte, int) {
	n32 := int32(binary.LittleEndian.Uint32(b[i:]))
	i += 4
	switch n32 {
	case nullLen:
		return nil, i
	case 0:
		return emptyBytes, i
	}
	n := int(n32)
	return a.take(b[i : i+n]), i + n
}

// takeString returns the validated string field at b[i:] (see str) and the
// offset after it.
func (a *Applier) takeString(b []byte, i int) (string, int) {
	n := int(binary.LittleEndian.Uint32(b[i:]))
	i += 4
	return a.str(b[i : i+n]), i + n
}

// str returns a string with the bytes of src: one the Applier remembers, or
// else a copy, which it then remembers if it is short.
func (a *Applier) str(src []byte) string {
	for k := range a.names {
		if s := a.names[k]; len(s) == len(src) && sameBytes(s, src) {
			a.nameLast = k
			return s
		}
	}
	return a.newStr(src)
}

// newStr is str for bytes the Applier does not remember.
func (a *Applier) newStr(src []byte) string {
	if len(src) == 0 {
		return ""
	}
	d := a.take(src)
	// The bytes are never reachable as a []byte: the string is immutable.
	s := unsafe.String(&d[0], len(d))
	if len(d) <= nameCacheMax {
		a.names[a.nameNext] = s
		a.nameLast, a.nameNext = a.nameNext, (a.nameNext+1)%nameCache
	}
	return s
}

// sameBytes reports whether s and b, of the same length, hold the same
// bytes. A name of 8 to 16 bytes (kpipe-stamp, traceparent, content-type)
// is compared as two words that may overlap, without a call: 18 fewer
// instructions per record than ==, which calls memequal, in
// BenchmarkSDKStampParts/c-stamp.
func sameBytes(s string, b []byte) bool {
	if n := len(b); n >= 8 && n <= 16 {
		t := unsafe.Slice(unsafe.StringData(s), n)
		return binary.LittleEndian.Uint64(t) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(t[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
	}
	return s == string(b)
}

// DecodeResult applies a kpipe_on_send result to r: with edits (the guest
// enabled FeatureEdits) an edit list (ApplyEdits) or a record
// (DecodeRecord), without, a record. A list of one edit that sets or
// appends a header, a header stamp's list, is checked and applied in one
// pass, here, without the calls the general path makes (see Applier); it
// leaves any other list, valid or not, to applyList, which validates a
// whole list before it applies any of it.
func (a *Applier) DecodeResult(b []byte, r *plugins.Record, edits bool) error {
	// The count, the operation, the name's length, the value's length.
	const fixed = 4 + 1 + 4 + 4
	if !edits || len(b) < fixed || binary.LittleEndian.Uint32(b) != editListFlag|1 {
		return a.decodeResult(b, r, edits)
	}
	op := b[4]
	n := uint64(binary.LittleEndian.Uint32(b[5:]))
	if op != EditSetHeader && op != EditAppendHeader || n > uint64(len(b)-fixed) {
		return a.decodeResult(b, r, edits)
	}
	// The value must end the list: its length is what is left, or it is
	// null and nothing is left.
	rest := len(b) - fixed - int(n)
	v := int32(binary.LittleEndian.Uint32(b[9+n:]))
	if int(v) != rest && (v != nullLen || rest != 0) {
		return a.decodeResult(b, r, edits)
	}
	var value []byte
	switch {
	case v == nullLen:
	case v == 0:
		value = emptyBytes
	default:
		value = a.take(b[fixed+int(n):])
	}
	// A stamp sets the same header on every record: try the name str
	// returned last before calling it.
	src := b[9 : 9+n]
	name := a.names[a.nameLast]
	if len(name) != len(src) || !sameBytes(name, src) {
		name = a.str(src)
	}
	if len(r.Headers) > 0 {
		r.Headers = putHeader(a.headerList(r.Headers, 1), op, name, value)
		return nil
	}
	// No headers yet: setting and appending are the same, and the new
	// list is one header.
	if a.headersAt == len(a.headers) {
		a.headers, a.headersAt = make([]plugins.Header, blockHeaders), 0
	}
	hs := a.headers[a.headersAt : a.headersAt+1 : a.headersAt+1]
	a.headersAt++
	hs[0].Key, hs[0].Value = name, value
	r.Headers = hs
	return nil
}

// decodeResult is DecodeResult for anything but a single header edit.
func (a *Applier) decodeResult(b []byte, r *plugins.Record, edits bool) error {
	if edits && IsEditList(b) {
		return a.applyList(b, r)
	}
	return DecodeRecord(b, r)
}

// ApplyEdits applies the edit list b to r, in order. It validates all of b
// first and leaves r untouched if b is invalid. Like DecodeRecord, it copies
// what it keeps and shares nothing with b: the new topic, key, value and
// header names and values are over memory of their own, each slice capped
// at its length; a changed header list is a new slice, so r's old one is
// never written. Header names and topics may be strings earlier edits
// returned (see Applier).
func (a *Applier) ApplyEdits(b []byte, r *plugins.Record) error {
	if !IsEditList(b) {
		return &DecodeError{Offset: 0, Problem: "not an edit list"}
	}
	return a.DecodeResult(b, r, true)
}

// applyList is ApplyEdits for any list: it validates all of b, then
// applies it.
func (a *Applier) applyList(b []byte, r *plugins.Record) error {
	l, err := checkEdits(b)
	if err != nil {
		return err
	}
	// b is valid, so the edits are applied to r directly. The first that
	// changes the headers gives them a list of their own, with room for
	// the headers the edits may add, which is written to r at the end.
	var hs []plugins.Header
	headersCopied := false
	count := int(binary.LittleEndian.Uint32(b) &^ editListFlag)
	i := 4
	for range count {
		op := b[i]
		i++
		switch op {
		case EditSetHeader, EditAppendHeader:
			var name string
			var value []byte
			name, i = a.takeString(b, i)
			value, i = a.takeBytes(b, i)
			if !headersCopied {
				hs, headersCopied = a.headerList(r.Headers, l.added), true
			}
			hs = putHeader(hs, op, name, value)
		case EditRemoveHeader:
			n := int(binary.LittleEndian.Uint32(b[i:]))
			name := b[i+4 : i+4+n]
			i += 4 + n
			if !headersCopied {
				hs, headersCopied = a.headerList(r.Headers, l.added), true
			}
			hs = removeHeaders(hs, unsafe.String(unsafe.SliceData(name), len(name)), 0)
		case EditSetKey:
			r.Key, i = a.takeBytes(b, i)
		case EditSetValue:
			r.Value, i = a.takeBytes(b, i)
		case EditSetTopic:
			r.Topic, i = a.takeString(b, i)
		case EditSetPartition:
			r.SetPartition(int32(binary.LittleEndian.Uint32(b[i:])))
			i += 4
		case EditClearPartition:
			r.HasPartition, r.Partition = false, 0
		case EditSetTimestamp:
			r.Timestamp = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[i:])))
			i += 8
		case EditClearTimestamp:
			r.Timestamp = time.Time{}
		}
	}
	if headersCopied {
		r.Headers = hs
	}
	return nil
}

// putHeader applies an EditSetHeader or EditAppendHeader op to hs, which
// has room for one more header, and returns the result.
func putHeader(hs []plugins.Header, op byte, name string, value []byte) []plugins.Header {
	if op == EditSetHeader {
		if k := indexHeader(hs, name); k >= 0 {
			hs[k].Value = value
			return removeHeaders(hs, name, k+1)
		}
	}
	k := len(hs)
	hs = hs[:k+1]
	hs[k].Key, hs[k].Value = name, value
	return hs
}

// indexHeader returns the index of the first header named name, or -1.
func indexHeader(hs []plugins.Header, name string) int {
	for k := range hs {
		if hs[k].Key == name {
			return k
		}
	}
	return -1
}

// removeHeaders removes the headers named name from index from on, in
// place, keeping the order of the others. name may point into guest memory:
// it is only compared.
func removeHeaders(hs []plugins.Header, name string, from int) []plugins.Header {
	j := from
	for k := from; k < len(hs); k++ {
		if hs[k].Key != name {
			hs[j] = hs[k]
			j++
		}
	}
	clear(hs[j:])
	return hs[:j]
}

// EditList builds an edit list, for tests and for guests written in Go.
type EditList struct {
	b     []byte
	count uint32
}

func (e *EditList) op(op byte) {
	if e.b == nil {
		e.b = make([]byte, 4, 64)
	}
	e.b = append(e.b, op)
	e.count++
}

// SetHeader, AppendHeader, RemoveHeader, SetKey, SetValue, SetTopic,
// SetPartition, ClearPartition, SetTimestamp and ClearTimestamp add one
// edit each.
func (e *EditList) SetHeader(name string, value []byte) *EditList {
	e.op(EditSetHeader)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(name)))
	e.b = append(e.b, name...)
	e.b = appendNullable(e.b, value)
	return e
}

func (e *EditList) AppendHeader(name string, value []byte) *EditList {
	e.op(EditAppendHeader)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(name)))
	e.b = append(e.b, name...)
	e.b = appendNullable(e.b, value)
	return e
}

func (e *EditList) RemoveHeader(name string) *EditList {
	e.op(EditRemoveHeader)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(name)))
	e.b = append(e.b, name...)
	return e
}

func (e *EditList) SetKey(v []byte) *EditList {
	e.op(EditSetKey)
	e.b = appendNullable(e.b, v)
	return e
}

func (e *EditList) SetValue(v []byte) *EditList {
	e.op(EditSetValue)
	e.b = appendNullable(e.b, v)
	return e
}

func (e *EditList) SetTopic(t string) *EditList {
	e.op(EditSetTopic)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(t)))
	e.b = append(e.b, t...)
	return e
}

func (e *EditList) SetPartition(p int32) *EditList {
	e.op(EditSetPartition)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(p))
	return e
}

func (e *EditList) ClearPartition() *EditList { e.op(EditClearPartition); return e }

func (e *EditList) SetTimestamp(ms int64) *EditList {
	e.op(EditSetTimestamp)
	e.b = binary.LittleEndian.AppendUint64(e.b, uint64(ms))
	return e
}

func (e *EditList) ClearTimestamp() *EditList { e.op(EditClearTimestamp); return e }

// Bytes returns the encoded edit list.
func (e *EditList) Bytes() []byte {
	if e.b == nil {
		e.b = make([]byte, 4)
	}
	binary.LittleEndian.PutUint32(e.b, editListFlag|e.count)
	return e.b
}

func appendNullable(b, v []byte) []byte {
	if v == nil {
		return binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}
