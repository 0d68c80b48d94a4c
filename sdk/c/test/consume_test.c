/* consume_test.c: checks the C SDK's consume side (kpipe_consume.h) against
 * the consumed-record vectors of sdk/testdata, natively:
 *
 *     cc -std=c11 -Wall -Wextra -I.. -o /tmp/kpipe_c_consume consume_test.c && /tmp/kpipe_c_consume ../../testdata
 *
 * Masking each record's value must give results/mask_digits. It prints one
 * line per failure and "N passed, N failed". */
#define KPIPE_IMPLEMENTATION
#include "kpipe_consume.h"

#include "harness.h"

static int64_t seen_offset;
static int32_t seen_partition_set;

static int32_t mask(kpipe_record *r, int64_t offset) {
	seen_offset = offset;
	seen_partition_set = r->has_partition;
	uint8_t *v = (uint8_t *)r->value.ptr;
	for (int32_t i = 0; i < r->value.len; i++)
		if (v[i] >= '0' && v[i] <= '9') v[i] = '*';
	kpipe_record_changed(r);
	return KPIPE_CONTINUE;
}

static int32_t value_tail(int32_t target, const kpipe_record *r, int64_t offset, kpipe_bytes *out) {
	(void)offset;
	kpipe_bytes b = target == KPIPE_TARGET_KEY ? r->key : r->value;
	if (b.len < 1) {
		kpipe_set_error("too short");
		return KPIPE_FAIL;
	}
	*out = kpipe_bytes_of(b.ptr + 1, b.len - 1);
	return KPIPE_CONTINUE;
}

int main(int argc, char **argv) {
	dir = argc > 1 ? argv[1] : "../../testdata";
	uint32_t n;
	char *names = (char *)slurp("records.txt", &n);
	names = realloc(names, n + 1);
	names[n] = 0;
	for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
		char rel[256];
		snprintf(rel, sizeof rel, "consumed/%s.bin", name);
		uint32_t len, wlen;
		uint8_t *in = slurp(rel, &len);
		snprintf(rel, sizeof rel, "results/mask_digits/%s.bin", name);
		uint8_t *want = slurp(rel, &wlen);
		int64_t offset = 0;
		memcpy(&offset, in, 8); /* little-endian host */
		kpipe_dispatch_buffer((int32_t)len);
		memcpy(kpipe_in_.ptr, in, len);
		int64_t res = kpipe_dispatch_on_consume((int32_t)len, mask);
		check(seen_offset == offset && offset >= (1LL << 40) && seen_partition_set, "offset and partition", name);
		/* Natively a pointer does not fit the slice's upper half: only
		 * the length is checked, and the bytes where the SDK wrote them. */
		check(res != KPIPE_FAIL && (uint32_t)(res & 0xffffffff) == wlen && memcmp(kpipe_out_.ptr, want, wlen) == 0,
		      "masked record matches results/mask_digits", name);
		/* The deserializer: the value after its first byte, or an error. */
		kpipe_dispatch_buffer((int32_t)len);
		memcpy(kpipe_in_.ptr, in, len);
		kpipe_record r;
		kpipe_decode_record(in + 8, len - 8, &r);
		int64_t d = kpipe_dispatch_deserialize(KPIPE_TARGET_VALUE, (int32_t)len, value_tail);
		if (r.value.len >= 2) {
			check(d != KPIPE_FAIL && (uint32_t)(d & 0xffffffff) == (uint32_t)r.value.len - 1, "deserialize returns the value's tail", name);
		} else if (r.value.len == 1) {
			check(d == 0, "deserialize to empty", name);
		} else {
			check(d == KPIPE_FAIL && strcmp(last_error, "too short") == 0, "deserialize fails with the hook's message", name);
		}
		free(in);
		free(want);
	}
	kpipe_dispatch_buffer(4);
	check(kpipe_dispatch_on_consume(4, mask) == KPIPE_FAIL, "a consumed record without its offset is refused", "short");
	check(kpipe_dispatch_deserialize(9, 8, value_tail) == KPIPE_FAIL, "an unknown target is refused", "target");
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
