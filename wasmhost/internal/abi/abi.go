package abi

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/kpipe/kpipe/plugins"
)

// Version is the newest ABI version this host implements. Version 2 is
// version 1 with the consume-side kinds (ConsumeKinds) added.
const Version = 2

// SupportedVersions lists every ABI version the host can load, oldest first.
var SupportedVersions = []int{1, 2}

// MarkerPrefix is the prefix of the version marker exports: a module
// implementing version N exports a function named MarkerPrefix+"N".
const MarkerPrefix = "kpipe_abi_v"

// MarkerVersion returns the ABI version named by an export, and whether the
// export is a version marker at all ("kpipe_abi_v1" → 1, true).
func MarkerVersion(export string) (int, bool) {
	s, ok := strings.CutPrefix(export, MarkerPrefix)
	if !ok || s == "" || s[0] == '0' || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		return 0, false
	}
	return v, true
}

// Names of the guest exports (ABI section 3).
const (
	ExportMemory     = "memory"
	ExportKinds      = "kpipe_kinds"
	ExportBuffer     = "kpipe_buffer"
	ExportInit       = "kpipe_init"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"
	ExportOnSend     = "kpipe_on_send"
	ExportOnAck      = "kpipe_on_ack"
	ExportSerialize  = "kpipe_serialize"
	ExportPartition  = "kpipe_partition"

	// Optional batch hooks (ABI section 5.5).
	ExportOnSendBatch    = "kpipe_on_send_batch"
	ExportOnAckBatch     = "kpipe_on_ack_batch"
	ExportPartitionBatch = "kpipe_partition_batch"
)

// Import module names (ABI sections 1 and 6).
const (
	HostModule = "kpipe"
	WASIModule = "wasi_snapshot_preview1"
)

// Names of the host functions in HostModule (ABI section 6).
const (
	FuncConfigGet      = "config_get"
	FuncLogEnabled     = "log_enabled"
	FuncLog            = "log"
	FuncSetError       = "set_error"
	FuncEnableFeatures = "enable_features"
)

// Hook results that are status codes (ABI section 5).
const (
	StatusDrop             int64 = -1
	StatusError            int64 = -2
	StatusNull             int64 = -3
	StatusDefaultPartition int64 = -4
)

// MaxErrorMessage is how many bytes of a set_error message the host keeps.
const MaxErrorMessage = 4096

// V1Kinds is the set of every kind bit version 1 defines; AllKinds adds
// those of version 2 (ConsumeKinds, consume.go).
const (
	V1Kinds  = plugins.KindInterceptor | plugins.KindSerializer | plugins.KindPartitioner
	AllKinds = V1Kinds | ConsumeKinds
)

// Record flag bits (ABI section 4.1).
const (
	FlagPartition uint32 = 1 << 0
	FlagTimestamp uint32 = 1 << 1
	knownFlags           = FlagPartition | FlagTimestamp
)

// nullLen is the length that encodes a null key, value or header value.
const nullLen = -1

// recordFixed is the size of a record's fixed-size prefix: flags, partition,
// timestamp, topic length.
const recordFixed = 4 + 4 + 8 + 4

// ackFixed is the size of an acknowledgement's prefix before its error text.
const ackFixed = 8 + 4

// Slice packs a guest memory slice into a hook result: ptr<<32 | len.
func Slice(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

// SplitSlice unpacks a hook result into the pointer and length of a slice
// of guest memory. ok is false if r is negative: a status code, not a slice.
// A non-negative r always has a pointer below 2^31.
func SplitSlice(r int64) (ptr, n uint32, ok bool) {
	if r < 0 {
		return 0, 0, false
	}
	return uint32(uint64(r) >> 32), uint32(r), true
}

// MaxSize is the largest encoding the ABI can carry: lengths are 32-bit and
// a guest memory is at most 2 GiB. Callers check RecordSize and AckSize
// against it before encoding.
const MaxSize = math.MaxInt32

// RecordSize returns the number of bytes PutRecord writes for r.
func RecordSize(r *plugins.Record) int {
	return fieldsSize(r.Topic, r.Key, r.Value, r.Headers)
}

// fieldsSize returns the number of bytes putFields writes.
func fieldsSize(topic string, key, value []byte, headers []plugins.Header) int {
	n := recordFixed + len(topic) + 4 + len(key) + 4 + len(value) + 4
	for i := range headers {
		n += 4 + len(headers[i].Key) + 4 + len(headers[i].Value)
	}
	return n
}

// PutRecord encodes r into b, which must hold at least RecordSize(r) bytes,
// and returns the number of bytes written. RecordSize(r) must not exceed
// MaxSize.
func PutRecord(b []byte, r *plugins.Record) int {
	var flags uint32
	var partition int32
	var ts int64
	if r.HasPartition {
		flags |= FlagPartition
		partition = r.Partition
	}
	if !r.Timestamp.IsZero() {
		flags |= FlagTimestamp
		ts = r.Timestamp.UnixMilli()
	}
	return putFields(b, flags, partition, ts, r.Topic, r.Key, r.Value, r.Headers)
}

// putFields writes the record encoding of the given fields into b: the
// one encoder of ABI section 4.1, for produced records (PutRecord) and
// consumed ones (PutConsumed).
func putFields(b []byte, flags uint32, partition int32, ts int64, topic string, key, value []byte, headers []plugins.Header) int {
	_ = b[recordFixed-1]
	binary.LittleEndian.PutUint32(b[0:], flags)
	binary.LittleEndian.PutUint32(b[4:], uint32(partition))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts))
	binary.LittleEndian.PutUint32(b[16:], uint32(len(topic)))
	i := recordFixed + copy(b[recordFixed:], topic)
	i = putBytes(b, i, key)
	i = putBytes(b, i, value)
	binary.LittleEndian.PutUint32(b[i:], uint32(len(headers)))
	i += 4
	for j := range headers {
		h := &headers[j]
		binary.LittleEndian.PutUint32(b[i:], uint32(len(h.Key)))
		i += 4
		i += copy(b[i:], h.Key)
		i = putBytes(b, i, h.Value)
	}
	return i
}

// putBytes writes a nullable byte field at b[i:] and returns the offset
// after it.
func putBytes(b []byte, i int, v []byte) int {
	if v == nil {
		binary.LittleEndian.PutUint32(b[i:], uint32(0xffffffff))
		return i + 4
	}
	binary.LittleEndian.PutUint32(b[i:], uint32(len(v)))
	return i + 4 + copy(b[i+4:], v)
}

// AckSize returns the number of bytes PutAck writes.
func AckSize(errText string, r *plugins.Record) int {
	return ackFixed + len(errText) + RecordSize(r)
}

// PutAck encodes an acknowledgement (ABI section 4.2) into b, which must hold
// at least AckSize(errText, r) bytes, and returns the number of bytes
// written. errText is empty for a delivered record.
func PutAck(b []byte, offset int64, errText string, r *plugins.Record) int {
	_ = b[ackFixed-1]
	binary.LittleEndian.PutUint64(b[0:], uint64(offset))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(errText)))
	i := ackFixed + copy(b[ackFixed:], errText)
	return i + PutRecord(b[i:], r)
}

// DecodeError describes why bytes are not a valid encoded record.
type DecodeError struct {
	// Offset is where in the input the problem was found.
	Offset int
	// Problem says what is wrong.
	Problem string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("invalid record at byte %d: %s", e.Offset, e.Problem)
}

// errShort is the problem of a field cut off by the end of the input.
func errShort(off int, field string) error {
	return &DecodeError{Offset: off, Problem: field + " runs past the end of the input"}
}

// layout is what validation learns about an encoded record: how many bytes
// its variable-size fields hold and how many headers it has.
type layout struct {
	data    int
	headers int
}

// check validates an encoded record and measures it, without allocating.
func check(b []byte) (layout, error) {
	var l layout
	if len(b) < recordFixed {
		return l, errShort(0, "fixed header")
	}
	if f := binary.LittleEndian.Uint32(b); f&^knownFlags != 0 {
		return l, &DecodeError{Offset: 0, Problem: fmt.Sprintf("reserved flag bits set (%#x)", f&^knownFlags)}
	}
	i := 16
	n, i, err := checkString(b, i, "topic")
	if err != nil {
		return l, err
	}
	l.data += n
	for _, field := range [...]string{"key", "value"} {
		if n, i, err = checkBytes(b, i, field); err != nil {
			return l, err
		}
		l.data += n
	}
	if len(b)-i < 4 {
		return l, errShort(i, "header count")
	}
	count := binary.LittleEndian.Uint32(b[i:])
	i += 4
	// Each header takes at least 8 bytes: a count that cannot fit is
	// rejected before walking it.
	if uint64(count)*8 > uint64(len(b)-i) {
		return l, &DecodeError{Offset: i - 4, Problem: fmt.Sprintf("header count %d does not fit in %d remaining bytes", count, len(b)-i)}
	}
	for range count {
		if n, i, err = checkString(b, i, "header name"); err != nil {
			return l, err
		}
		l.data += n
		if n, i, err = checkBytes(b, i, "header value"); err != nil {
			return l, err
		}
		l.data += n
	}
	if i != len(b) {
		return l, &DecodeError{Offset: i, Problem: fmt.Sprintf("%d trailing bytes", len(b)-i)}
	}
	l.headers = int(count)
	return l, nil
}

// checkString validates a u32-length-prefixed field at b[i:].
func checkString(b []byte, i int, field string) (n, next int, err error) {
	if len(b)-i < 4 {
		return 0, i, errShort(i, field+" length")
	}
	n64 := uint64(binary.LittleEndian.Uint32(b[i:]))
	if n64 > uint64(len(b)-i-4) {
		return 0, i, errShort(i, field)
	}
	return int(n64), i + 4 + int(n64), nil
}

// checkBytes validates an i32-length-prefixed nullable field at b[i:].
func checkBytes(b []byte, i int, field string) (n, next int, err error) {
	if len(b)-i < 4 {
		return 0, i, errShort(i, field+" length")
	}
	n32 := int32(binary.LittleEndian.Uint32(b[i:]))
	switch {
	case n32 == nullLen:
		return 0, i + 4, nil
	case n32 < 0:
		return 0, i, &DecodeError{Offset: i, Problem: fmt.Sprintf("%s length %d is negative", field, n32)}
	case int64(n32) > int64(len(b)-i-4):
		return 0, i, errShort(i, field)
	}
	return int(n32), i + 4 + int(n32), nil
}

// ValidateRecord reports whether b is exactly one valid encoded record.
func ValidateRecord(b []byte) error {
	_, err := check(b)
	return err
}

// emptyBytes is the non-nil empty slice that decodes a zero-length key,
// value or header value: empty and null are different things.
var emptyBytes = []byte{}

// DecodeRecord decodes the encoded record b into r, replacing every field.
// It validates all of b first and leaves r untouched if b is invalid: wrong
// lengths, reserved flag bits, or trailing bytes.
//
// The decoded record shares nothing with b. Its key, value and header values
// are sub-slices of one new backing array, capped so that appending to one
// cannot overwrite another; its topic and header names are strings over the
// same array, which no slice exposes. A record therefore costs one allocation,
// plus one for its headers if it has any.
func DecodeRecord(b []byte, r *plugins.Record) error {
	l, err := check(b)
	if err != nil {
		return err
	}
	var data []byte
	if l.data > 0 {
		data = make([]byte, 0, l.data)
	}
	var headers []plugins.Header
	if l.headers > 0 {
		headers = make([]plugins.Header, l.headers)
	}
	flags := binary.LittleEndian.Uint32(b)
	var out plugins.Record
	if flags&FlagPartition != 0 {
		out.SetPartition(int32(binary.LittleEndian.Uint32(b[4:])))
	}
	if flags&FlagTimestamp != 0 {
		out.Timestamp = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[8:])))
	}
	i := 16
	out.Topic, data, i = takeString(b, i, data)
	out.Key, data, i = takeBytes(b, i, data)
	out.Value, data, i = takeBytes(b, i, data)
	i += 4 // header count, already known
	for j := range headers {
		headers[j].Key, data, i = takeString(b, i, data)
		headers[j].Value, data, i = takeBytes(b, i, data)
	}
	out.Headers = headers
	*r = out
	return nil
}

// takeString copies a validated string field into data and returns it as a
// string over data.
func takeString(b []byte, i int, data []byte) (string, []byte, int) {
	n := int(binary.LittleEndian.Uint32(b[i:]))
	i += 4
	if n == 0 {
		return "", data, i
	}
	start := len(data)
	data = append(data, b[i:i+n]...)
	// The bytes are never reachable as a []byte: the string is immutable.
	return unsafe.String(&data[start], n), data, i + n
}

// takeBytes copies a validated nullable field into data and returns a
// capacity-limited sub-slice of it.
func takeBytes(b []byte, i int, data []byte) ([]byte, []byte, int) {
	n32 := int32(binary.LittleEndian.Uint32(b[i:]))
	i += 4
	if n32 == nullLen {
		return nil, data, i
	}
	if n32 == 0 {
		return emptyBytes, data, i
	}
	n := int(n32)
	start := len(data)
	data = append(data, b[i:i+n]...)
	return data[start : start+n : start+n], data, i + n
}

// Feature bits of enable_features (ABI section 8).
const (
	// FeaturePartitionKey makes the input of kpipe_partition, and of each
	// entry of kpipe_partition_batch, the key encoding (PutKey) instead of
	// the record.
	FeaturePartitionKey uint64 = 1 << 0
	// FeatureAckNoRecord makes the acknowledgement encoding the lean one
	// (PutLeanAck), without the record.
	FeatureAckNoRecord uint64 = 1 << 1
	// KnownFeatures is every feature bit this host implements
	// (FeatureEdits is in edits.go).
	KnownFeatures = FeaturePartitionKey | FeatureAckNoRecord | FeatureEdits
)

// FeatureNames returns the names of the feature bits of f, known or not,
// separated by "|", or "none".
func FeatureNames(f uint64) string {
	if f == 0 {
		return "none"
	}
	var names []string
	if f&FeaturePartitionKey != 0 {
		names = append(names, "PARTITION_KEY")
	}
	if f&FeatureAckNoRecord != 0 {
		names = append(names, "ACK_NO_RECORD")
	}
	if f&FeatureEdits != 0 {
		names = append(names, "EDITS")
	}
	if u := f &^ KnownFeatures; u != 0 {
		names = append(names, fmt.Sprintf("%#x", u))
	}
	return strings.Join(names, "|")
}

// KeySize returns the number of bytes PutKey writes for key.
func KeySize(key []byte) int { return 4 + len(key) }

// PutKey writes the key encoding of KPIPE_FEATURE_PARTITION_KEY (ABI
// section 8): i32 key length, -1 for a null key, then the key bytes. b must
// hold at least KeySize(key) bytes; PutKey returns the number of bytes
// written.
func PutKey(b []byte, key []byte) int { return putBytes(b, 0, key) }

// leanAckTail is the size of what the lean acknowledgement adds after its
// error text: i32 partition, i64 timestamp.
const leanAckTail = 4 + 8

// NoPartition and NoTimestamp are what the lean acknowledgement carries
// for a record without a partition (it failed before it had one) or
// without a timestamp; -1 is also Kafka's "no timestamp".
const (
	NoPartition int32 = -1
	NoTimestamp int64 = -1
)

// LeanAckSize returns the number of bytes PutLeanAck writes.
func LeanAckSize(errText string) int { return ackFixed + len(errText) + leanAckTail }

// PutLeanAck encodes the acknowledgement of KPIPE_FEATURE_ACK_NO_RECORD
// (ABI section 8) into b, which must hold at least LeanAckSize(errText)
// bytes, and returns the number of bytes written: i64 offset, u32 error
// length and the error text (as in section 4.2), then i32 partition
// (NoPartition if r has none) and i64 timestamp in milliseconds since the
// Unix epoch (NoTimestamp if r has none).
func PutLeanAck(b []byte, offset int64, errText string, r *plugins.Record) int {
	partition, ts := NoPartition, NoTimestamp
	if r.HasPartition {
		partition = r.Partition
	}
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	_ = b[ackFixed-1]
	binary.LittleEndian.PutUint64(b[0:], uint64(offset))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(errText)))
	i := ackFixed + copy(b[ackFixed:], errText)
	_ = b[i+leanAckTail-1]
	binary.LittleEndian.PutUint32(b[i:], uint32(partition))
	binary.LittleEndian.PutUint64(b[i+4:], uint64(ts))
	return i + leanAckTail
}
