package abi

import "encoding/binary"

// The framing of the batch hooks (ABI section 5.5): a batch input is count
// entries back to back, each a fixed prefix ending in the u32 size of the
// encoding that follows; the result is an array of one fixed-size element
// per entry.
const (
	// EntryHeader is the prefix of a kpipe_on_send_batch or
	// kpipe_on_ack_batch entry: u32 size.
	EntryHeader = 4
	// PartitionEntryHeader is the prefix of a kpipe_partition_batch
	// entry: i32 num_partitions, u32 size.
	PartitionEntryHeader = 8
	// OnSendResultSize is the size of an element of the result array of
	// kpipe_on_send_batch: an i64 result of kpipe_on_send.
	OnSendResultSize = 8
	// PartitionResultSize is the size of an element of the result array
	// of kpipe_partition_batch: an i32 result of kpipe_partition.
	PartitionResultSize = 4
)

// PutEntryHeader writes the prefix of an entry whose encoding has n bytes.
func PutEntryHeader(b []byte, n int) { binary.LittleEndian.PutUint32(b, uint32(n)) }

// PutPartitionEntryHeader writes the prefix of a kpipe_partition_batch entry
// for a topic of numPartitions partitions whose encoding has n bytes.
func PutPartitionEntryHeader(b []byte, numPartitions int32, n int) {
	binary.LittleEndian.PutUint32(b, uint32(numPartitions))
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
}

// OnSendResult returns element k of a kpipe_on_send_batch result array.
func OnSendResult(results []byte, k int) int64 {
	return int64(binary.LittleEndian.Uint64(results[OnSendResultSize*k:]))
}

// PartitionResult returns element k of a kpipe_partition_batch result
// array, sign-extended.
func PartitionResult(results []byte, k int) int64 {
	return int64(int32(binary.LittleEndian.Uint32(results[PartitionResultSize*k:])))
}
