package plugins

// Murmur2 is the 32-bit MurmurHash2 variant that the Java Kafka client uses to
// place keyed records (org.apache.kafka.common.utils.Utils.murmur2): seed
// 0x9747b28c, little-endian 4-byte blocks.
func Murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		data = data[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// KeyPartition returns the partition that the Java Kafka client's default
// partitioner chooses for a non-null key among numPartitions partitions:
// (murmur2(key) & 0x7fffffff) % numPartitions, over all partitions of the
// topic (available or not). numPartitions must be positive.
func KeyPartition(key []byte, numPartitions int32) int32 {
	return int32(Murmur2(key)&0x7fffffff) % numPartitions
}
