package kpipe

import (
	"strconv"
	"time"
)

// Record is a Kafka record as a plugin sees it.
//
// A decoded Record points into the plugin's input buffer: Key, Value and the
// header values are valid only until the hook returns, because the host
// writes the next input over them. Copy them (bytes.Clone) to keep them
// longer. A plugin may change any field of the Record it is given, and may
// assign fresh slices to Key, Value and Headers.
type Record struct {
	// Topic is the topic the record is written to. An empty topic in a
	// record returned from OnSend means the pipeline's default topic.
	Topic string
	// Key is the record key; nil is a null key, which is not the same as an
	// empty, non-nil key.
	Key []byte
	// Value is the record value; nil is a null value (a tombstone on
	// compacted topics), which is not the same as an empty, non-nil value.
	Value []byte
	// Headers are the record headers, in order. Names may repeat.
	Headers []Header
	// Partition is the partition the record goes to, meaningful only when
	// HasPartition is true.
	Partition int32
	// HasPartition says whether Partition is set. In OnSend, a record
	// without a partition is partitioned by the pipeline's partitioner.
	HasPartition bool
	// Timestamp is the record's create time in milliseconds since the Unix
	// epoch, meaningful only when HasTimestamp is true.
	Timestamp int64
	// HasTimestamp says whether Timestamp is set. A record sent without a
	// timestamp is stamped by the Kafka client when it is produced.
	HasTimestamp bool
}

// Header is one record header.
type Header struct {
	// Key is the header name.
	Key string
	// Value is the header value; nil is a null value.
	Value []byte
}

// SetPartition sends the record to partition p, bypassing the partitioner.
func (r *Record) SetPartition(p int32) {
	r.Partition = p
	r.HasPartition = true
}

// ClearPartition lets the partitioner choose the record's partition.
func (r *Record) ClearPartition() {
	r.Partition = 0
	r.HasPartition = false
}

// Time returns the record's timestamp, or the zero time if it has none.
func (r *Record) Time() time.Time {
	if !r.HasTimestamp {
		return time.Time{}
	}
	return time.UnixMilli(r.Timestamp)
}

// SetTime sets the record's timestamp to t, truncated to milliseconds. The
// zero time clears it.
func (r *Record) SetTime(t time.Time) {
	if t.IsZero() {
		r.Timestamp, r.HasTimestamp = 0, false
		return
	}
	r.Timestamp, r.HasTimestamp = t.UnixMilli(), true
}

// HeaderValue returns the value of the first header named key, and whether
// there is one.
func (r *Record) HeaderValue(key string) ([]byte, bool) {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// AddHeader appends a header, keeping any other header of the same name.
func (r *Record) AddHeader(key string, value []byte) {
	r.Headers = append(r.Headers, Header{Key: key, Value: value})
}

// SetHeader replaces the value of the first header named key and removes the
// others of that name, or appends the header if there is none.
func (r *Record) SetHeader(key string, value []byte) {
	r.Headers = setHeader(r.Headers, key, value)
}

// RemoveHeader removes every header named key and reports whether there was
// one.
func (r *Record) RemoveHeader(key string) bool {
	n := len(r.Headers)
	r.Headers = removeHeaders(r.Headers, key, 0)
	return len(r.Headers) != n
}

// setHeader gives the first header of hs named key the value value and
// removes the later ones, or appends the header, and returns the headers.
func setHeader(hs []Header, key string, value []byte) []Header {
	for i := range hs {
		if hs[i].Key == key {
			hs[i].Value = value
			return removeHeaders(hs, key, i+1)
		}
	}
	return append(hs, Header{Key: key, Value: value})
}

// removeHeaders removes the headers of hs named key from index from on, in
// place, and returns the headers left.
func removeHeaders(hs []Header, key string, from int) []Header {
	out := hs[:from]
	for _, h := range hs[from:] {
		if h.Key != key {
			out = append(out, h)
		}
	}
	clear(hs[len(out):])
	return out
}

// Ack is the outcome of producing one record, given to OnAck.
type Ack struct {
	// Offset is the record's offset in its partition, or -1 if it failed.
	Offset int64
	// Error is why the record failed, or "" if it was delivered.
	Error string
}

// Delivered reports whether the record was written to Kafka.
func (a Ack) Delivered() bool { return a.Error == "" && a.Offset >= 0 }

// Target says which part of a record a serializer is asked to serialize.
type Target int32

// The serializer targets, with the values of the ABI.
const (
	TargetKey   Target = 0
	TargetValue Target = 1
)

// String returns "key" or "value".
func (t Target) String() string {
	switch t {
	case TargetKey:
		return "key"
	case TargetValue:
		return "value"
	}
	return "target(" + strconv.Itoa(int(t)) + ")"
}

// Action is what an interceptor decided about a record in OnSend.
type Action uint8

const (
	// Unchanged passes the record on exactly as it came in. It is the cheap
	// case: nothing is encoded or copied back to the host, so an
	// interceptor should return it whenever it did not modify the record.
	// Changes made to the Record are ignored.
	Unchanged Action = iota
	// Changed passes the record on with the changes made to it.
	Changed
	// Drop filters the record out: it is not sent, and its sender is told
	// that it was filtered, which is not an error.
	Drop
)

// String returns the name of the action.
func (a Action) String() string {
	switch a {
	case Unchanged:
		return "unchanged"
	case Changed:
		return "changed"
	case Drop:
		return "drop"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// DefaultPartition is returned by a Partitioner to let the pipeline's default
// partitioner choose the partition of one record.
const DefaultPartition int32 = -1
