/* vectors_test.c: checks the C SDK's codec, setters and partition batch loop
 * against the ABI test vectors (sdk/testdata), natively:
 *
 *     cc -std=c11 -Wall -Wextra -I.. -o /tmp/kpipe_c_test vectors_test.c && /tmp/kpipe_c_test ../../testdata
 *
 * It prints one line per failure and "N passed, N failed". */
#define KPIPE_IMPLEMENTATION
#include "kpipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Natively, the host functions are stubs that record the last error. */
static char last_error[256];
int32_t kpipe_host_config_get(uint8_t *buf, int32_t limit) { (void)buf; (void)limit; return 0; }
int32_t kpipe_host_log_enabled(int32_t level) { return level >= KPIPE_LOG_INFO; }
void kpipe_host_log(int32_t level, const uint8_t *p, int32_t n) { fprintf(stderr, "log %d: %.*s\n", level, n, (const char *)p); }
void kpipe_host_set_error(const uint8_t *p, int32_t n) { snprintf(last_error, sizeof last_error, "%.*s", n, (const char *)p); }
int64_t kpipe_host_enable_features(int64_t f) { return f & 3; }

static int passed, failed;
static const char *dir;

static void check(int ok, const char *what, const char *name) {
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL %s: %s %s\n", name, what, last_error);
	}
}

static uint8_t *slurp(const char *rel, uint32_t *len) {
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("cannot open %s\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(n ? (size_t)n : 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(2);
	fclose(f);
	*len = (uint32_t)n;
	return b;
}

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

static int32_t keyhash(const kpipe_record *r, int32_t n) {
	if (r->key.len < 0) return KPIPE_DEFAULT_PARTITION;
	return (int32_t)((murmur2(r->key.ptr, r->key.len) & 0x7fffffff) % (uint32_t)n);
}

static int32_t stamp(kpipe_record *r) {
	kpipe_record_set_header(r, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
	return KPIPE_CONTINUE;
}

static kpipe_ack seen;
static int seen_record;
/* big sets a value larger than the SDK's first output block, so that the
 * edit list of each record of a batch moves to a block of its own. */
static uint8_t big_value[150000];
static int32_t set_big_value(kpipe_record *r) {
	kpipe_record_set_value(r, kpipe_bytes_of(big_value, (int32_t)sizeof big_value));
	return KPIPE_CONTINUE;
}

/* native_ptr turns the address of a slice result back into a pointer: the
 * SDK packs addresses in 32 bits, which natively are the low bits of a
 * pointer into its 64 MiB arena. */
static const uint8_t *native_ptr(uint32_t lo) {
	uintptr_t base = (uintptr_t)kpipe_native_arena_;
	uintptr_t p = (base & ~(uintptr_t)0xffffffffu) | lo;
	if (p < base) p += (uintptr_t)1 << 32;
	return (const uint8_t *)p;
}

static int32_t remember_ack(const kpipe_record *r, const kpipe_ack *ack) {
	seen = *ack;
	seen_record = r != NULL;
	return KPIPE_CONTINUE;
}

int main(int argc, char **argv) {
	dir = argc > 1 ? argv[1] : "../../testdata";
	uint32_t n;
	char *names = (char *)slurp("records.txt", &n);
	names = realloc(names, n + 1);
	names[n] = 0;
	int count = 0;
	for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
		char rel[256];
		count++;
		snprintf(rel, sizeof rel, "records/%s.bin", name);
		uint32_t len;
		uint8_t *in = slurp(rel, &len);
		kpipe_record r;
		check(kpipe_decode_record(in, len, &r) == KPIPE_CONTINUE, "decode", name);
		uint8_t *out = malloc(kpipe_record_size(&r) + 64);
		uint32_t m = kpipe_encode_record(&r, out);
		check(m == len && m == kpipe_record_size(&r) && memcmp(out, in, len) == 0, "decode+encode keeps the bytes", name);
		kpipe_record_set_header(&r, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
		snprintf(rel, sizeof rel, "results/set_header/%s.bin", name);
		uint32_t wlen;
		uint8_t *want = slurp(rel, &wlen);
		out = realloc(out, kpipe_record_size(&r));
		m = kpipe_encode_record(&r, out);
		check(m == wlen && memcmp(out, want, wlen) == 0, "set_header matches results/set_header", name);
		check(r.changed_ == 1, "set_header marks the record changed", name);
		/* Remove and append: removing the stamp again and counting. */
		uint32_t before = r.header_count;
		check(kpipe_record_remove_header(&r, kpipe_str("kpipe-stamp")) == 1 && r.header_count == before - 1, "remove_header", name);
		kpipe_record_append_header(&r, kpipe_str("x"), kpipe_null);
		kpipe_bytes v;
		check(kpipe_record_header(&r, kpipe_str("x"), &v) && v.len < 0, "append_header of a null value", name);
		free(in);
		free(out);
		free(want);
	}
	/* A malformed record: trailing byte. */
	{
		uint32_t len;
		uint8_t *in = slurp("records/full.bin", &len);
		uint8_t *longer = malloc(len + 1);
		memcpy(longer, in, len);
		longer[len] = 0;
		kpipe_record r;
		check(kpipe_decode_record(longer, len + 1, &r) == KPIPE_FAIL, "trailing byte is refused", "full+1");
		check(kpipe_decode_record(in, len - 1, &r) == KPIPE_FAIL, "short record is refused", "full-1");
		free(in);
		free(longer);
	}
	/* The partition batch loop, on records and on keys. */
	const char *frames[] = {"batch/partition.bin", "batch/partition_key.bin"};
	for (int k = 0; k < 2; k++) {
		kpipe_features_ = k ? KPIPE_FEATURE_PARTITION_KEY : 0;
		uint32_t len, wlen;
		uint8_t *in = slurp(frames[k], &len);
		uint8_t *want = slurp("results/keyhash.bin", &wlen);
		kpipe_dispatch_buffer((int32_t)len);
		memcpy(kpipe_in_.ptr, in, len);
		kpipe_dispatch_partition_batch(count, (int32_t)len, keyhash);
		check(wlen == 4u * (uint32_t)count && memcmp(kpipe_results_.ptr, want, wlen) == 0, "partition batch matches results/keyhash.bin", frames[k]);
		free(in);
		free(want);
	}
	kpipe_features_ = 0;
	/* Acknowledgements in both encodings. */
	struct {
		const char *name;
		int64_t offset;
		const char *error;
		int32_t partition;
		int64_t timestamp;
	} acks[] = {
		{"delivered", 42, "", 2, 1700000000123LL},
		{"failed", -1, "broker unreachable", -1, -1},
		{"failed_partitioned", -1, "MESSAGE_TOO_LARGE", 5, 1},
	};
	for (int lean = 0; lean < 2; lean++) {
		kpipe_features_ = lean ? KPIPE_FEATURE_ACK_NO_RECORD : 0;
		for (unsigned i = 0; i < sizeof acks / sizeof acks[0]; i++) {
			char rel[256];
			snprintf(rel, sizeof rel, lean ? "acks/%s.lean.bin" : "acks/%s.bin", acks[i].name);
			uint32_t len;
			uint8_t *in = slurp(rel, &len);
			kpipe_dispatch_buffer((int32_t)len);
			memcpy(kpipe_in_.ptr, in, len);
			seen_record = -1;
			check(kpipe_dispatch_on_ack((int32_t)len, remember_ack) == 0, "on_ack", rel);
			check(seen.offset == acks[i].offset && kpipe_bytes_equal(seen.error, kpipe_str(acks[i].error)) &&
			          seen.partition == acks[i].partition && seen.timestamp == acks[i].timestamp,
			      "acknowledgement fields", rel);
			check(seen_record == !lean, "record given unless ACK_NO_RECORD", rel);
			free(in);
		}
	}
	kpipe_features_ = 0;
	/* With KPIPE_FEATURE_EDITS, on_send returns the edit list of
	 * results/edit_set_header.bin instead of the record; without it, the
	 * record of results/set_header. */
	for (int edits = 0; edits < 2; edits++) {
		kpipe_features_ = edits ? KPIPE_FEATURE_EDITS : 0;
		uint32_t len, wlen;
		uint8_t *in = slurp("records/repeated_headers.bin", &len);
		uint8_t *want = slurp(edits ? "results/edit_set_header.bin" : "results/set_header/repeated_headers.bin", &wlen);
		kpipe_dispatch_buffer((int32_t)len);
		memcpy(kpipe_in_.ptr, in, len);
		int64_t r = kpipe_dispatch_on_send((int32_t)len, stamp);
		check((uint32_t)(r & 0xffffffff) == wlen && memcmp(kpipe_out_.ptr, want, wlen) == 0,
		      edits ? "on_send returns the edit list" : "on_send returns the record", "repeated_headers");
		free(in);
		free(want);
	}
	/* A batch whose edit lists outgrow the output block: each moves to a
	 * fresh one, and the earlier results stay where they are. */
	{
		kpipe_features_ = KPIPE_FEATURE_EDITS;
		uint32_t len;
		uint8_t *in = slurp("records/minimal.bin", &len);
		kpipe_dispatch_buffer((int32_t)(2 * (4 + len)));
		for (int i = 0; i < 2; i++) {
			kpipe_put32_(kpipe_in_.ptr + i * (4 + len), len);
			memcpy(kpipe_in_.ptr + i * (4 + len) + 4, in, len);
		}
		for (uint32_t i = 0; i < sizeof big_value; i++) big_value[i] = (uint8_t)i;
		int64_t res = kpipe_dispatch_on_send_batch(2, (int32_t)(2 * (4 + len)), set_big_value);
		const uint8_t *results = native_ptr((uint32_t)((uint64_t)res >> 32));
		int ok = (res & 0xffffffff) == 16;
		for (int i = 0; ok && i < 2; i++) {
			int64_t r = (int64_t)kpipe_get64_(results + 8 * i);
			const uint8_t *e = native_ptr((uint32_t)((uint64_t)r >> 32));
			ok = (r & 0xffffffff) == 4 + 1 + 4 + sizeof big_value && kpipe_get32_(e) == 0x80000001u && e[4] == 5 &&
			     kpipe_get32_(e + 5) == sizeof big_value && memcmp(e + 9, big_value, sizeof big_value) == 0;
		}
		check(ok, "edit lists that outgrow the output block", "minimal");
		free(in);
	}
	kpipe_features_ = 0;
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
