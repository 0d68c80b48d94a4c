package plugins

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header is a record header. It is franz-go's own type, so headers pass to the
// producer without a copy.
type Header = kgo.RecordHeader

// Record is one record on its way through a pipeline, before it is handed to
// the Kafka client. Interceptors may change any field; serializers replace
// Key and Value; the partitioner reads it.
//
// The zero value is a record with no topic (the pipeline's default topic is
// used), a null key, a null value (a tombstone), no headers, no explicit
// partition and no timestamp (the client stamps it when it is produced).
type Record struct {
	// Topic is the topic the record is written to. Empty means the
	// pipeline's default topic.
	Topic string
	// Key is the record key; nil is a null key.
	Key []byte
	// Value is the record value; nil is a null value, which Kafka treats as
	// a delete marker (tombstone) on compacted topics.
	Value []byte
	// Headers are the record headers, in order. Names may repeat.
	Headers []Header
	// Timestamp is the record's create time. The zero time means "now, when
	// the client buffers the record".
	Timestamp time.Time
	// Partition is the partition the record must go to. It is read only
	// when HasPartition is true; otherwise the partitioner chooses.
	Partition int32
	// HasPartition says whether Partition is set.
	HasPartition bool
}

// SetPartition makes the record go to partition p, bypassing the partitioner.
func (r *Record) SetPartition(p int32) {
	r.Partition = p
	r.HasPartition = true
}

// ClearPartition lets the partitioner choose the record's partition.
func (r *Record) ClearPartition() {
	r.Partition = 0
	r.HasPartition = false
}
