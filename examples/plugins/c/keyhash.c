/* keyhash.c: a key-hash partitioner written with the C SDK (sdk/c/kpipe.h).
 * It places a keyed record where Kafka's Java client does:
 * (murmur2(key) & 0x7fffffff) % num_partitions; a record with a null key goes
 * to the host's default partitioner. It needs only the key, so init asks for
 * KPIPE_FEATURE_PARTITION_KEY and fails if the host does not grant it. */
#define KPIPE_IMPLEMENTATION
#include "kpipe.h"

static uint32_t murmur2(const uint8_t *p, int32_t len) {
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28c ^ (uint32_t)len;
	int32_t i = 0;
	for (; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		h = h * m ^ k * m;
	}
	switch (len - i) {
	case 3: h ^= (uint32_t)p[i + 2] << 16; /* fall through */
	case 2: h ^= (uint32_t)p[i + 1] << 8;  /* fall through */
	case 1: h ^= p[i]; h *= m;
	}
	h ^= h >> 13;
	h *= m;
	return h ^ h >> 15;
}

static int32_t init(void) {
	if (!(kpipe_enable_features(KPIPE_FEATURE_PARTITION_KEY) & KPIPE_FEATURE_PARTITION_KEY)) {
		kpipe_set_error("keyhash: the host does not offer KPIPE_FEATURE_PARTITION_KEY");
		return KPIPE_FAIL;
	}
	return KPIPE_CONTINUE;
}

static int32_t partition(const kpipe_record *r, int32_t num_partitions) {
	if (r->key.len < 0) return KPIPE_DEFAULT_PARTITION;
	return (int32_t)((murmur2(r->key.ptr, r->key.len) & 0x7fffffff) % (uint32_t)num_partitions);
}

KPIPE_MODULE(KPIPE_KIND_PARTITIONER, init)
KPIPE_PARTITIONER(partition)
