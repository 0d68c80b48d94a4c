/* vectors_test.c: checks the C SDK's codec, setters and partition batch loop
 * against the ABI test vectors (sdk/testdata), natively:
 *
 *     cc -std=c11 -Wall -Wextra -I.. -o /tmp/kpipe_c_test vectors_test.c && /tmp/kpipe_c_test ../../testdata
 *
 * It prints one line per failure and "N passed, N failed". */
#define KPIPE_IMPLEMENTATION
#define KPIPE_TEST_GRANTED 3 /* the tests set KPIPE_FEATURE_EDITS themselves */
#include "kpipe.h"

#include "harness.h"

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

/* Pairs of on_send hooks that make the same calls, one through a
 * kpipe_record and one through a kpipe_view: the view path must give the
 * same result, byte for byte. */
static int32_t rec_stamp(kpipe_record *r) { return stamp(r); }
static int32_t view_stamp(kpipe_view *v) {
	kpipe_view_set_header(v, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
	return KPIPE_CONTINUE;
}

/* every setter, some before a read and some after; the remove decodes. */
static int32_t rec_all(kpipe_record *r) {
	kpipe_record_set_header(r, kpipe_str("a"), kpipe_str("1"));
	kpipe_record_append_header(r, kpipe_str("b"), kpipe_null);
	kpipe_record_append_header(r, kpipe_str("a"), kpipe_str("2"));
	kpipe_record_set_key(r, kpipe_str("k"));
	kpipe_record_set_value(r, kpipe_null);
	kpipe_record_set_topic(r, kpipe_null);
	kpipe_record_set_partition(r, 7);
	kpipe_record_clear_timestamp(r);
	kpipe_record_set_timestamp(r, -5);
	kpipe_record_clear_partition(r);
	kpipe_record_set_header(r, kpipe_str("a"), kpipe_str("3"));
	kpipe_record_remove_header(r, kpipe_str("b"));
	kpipe_record_set_value(r, kpipe_bytes_of("", 0));
	kpipe_record_set_header(r, kpipe_str("c"), kpipe_null);
	kpipe_record_set_topic(r, kpipe_str("t2"));
	return KPIPE_CONTINUE;
}
static int32_t view_all(kpipe_view *v) {
	kpipe_view_set_header(v, kpipe_str("a"), kpipe_str("1"));
	kpipe_view_append_header(v, kpipe_str("b"), kpipe_null);
	kpipe_view_append_header(v, kpipe_str("a"), kpipe_str("2"));
	kpipe_view_set_key(v, kpipe_str("k"));
	kpipe_view_set_value(v, kpipe_null);
	kpipe_view_set_topic(v, kpipe_null);
	kpipe_view_set_partition(v, 7);
	kpipe_view_clear_timestamp(v);
	kpipe_view_set_timestamp(v, -5);
	kpipe_view_clear_partition(v);
	kpipe_view_set_header(v, kpipe_str("a"), kpipe_str("3"));
	if (kpipe_view_remove_header(v, kpipe_str("b")) != 1) return KPIPE_DROP;
	kpipe_view_set_value(v, kpipe_bytes_of("", 0));
	kpipe_view_set_header(v, kpipe_str("c"), kpipe_null);
	kpipe_view_set_topic(v, kpipe_str("t2"));
	return KPIPE_CONTINUE;
}

/* a write, then a read that must see it, then a change through the
 * record's own setter. */
static int32_t rec_read(kpipe_record *r) {
	kpipe_record_set_header(r, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
	kpipe_bytes got;
	if (!kpipe_record_header(r, kpipe_str("kpipe-stamp"), &got)) return KPIPE_DROP;
	kpipe_record_set_value(r, r->key);
	return KPIPE_CONTINUE;
}
static int32_t view_read(kpipe_view *v) {
	kpipe_view_set_header(v, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
	const kpipe_record *r = kpipe_view_record(v);
	kpipe_bytes got;
	if (!r || !kpipe_record_header(r, kpipe_str("kpipe-stamp"), &got) || !kpipe_bytes_equal(got, kpipe_str("sdk"))) return KPIPE_FAIL;
	kpipe_view_set_value(v, r->key);
	return KPIPE_CONTINUE;
}

/* a value larger than the SDK's first output block: the edit log moves. */
static int32_t view_big_value(kpipe_view *v) {
	kpipe_view_set_value(v, kpipe_bytes_of(big_value, (int32_t)sizeof big_value));
	return KPIPE_CONTINUE;
}

/* a read and nothing else; and a read, then a change by hand. */
static int32_t rec_none(kpipe_record *r) { return r->header_count > 3 ? KPIPE_DROP : KPIPE_CONTINUE; }
static int32_t view_none(kpipe_view *v) {
	const kpipe_record *r = kpipe_view_record(v);
	if (!r) return KPIPE_FAIL;
	return r->header_count > 3 ? KPIPE_DROP : KPIPE_CONTINUE;
}
static int32_t rec_hand(kpipe_record *r) {
	kpipe_record_set_header(r, kpipe_str("h"), kpipe_str("1"));
	r->has_partition = 1;
	r->partition = 3;
	kpipe_record_changed(r);
	return KPIPE_CONTINUE;
}
static int32_t view_hand(kpipe_view *v) {
	kpipe_view_set_header(v, kpipe_str("h"), kpipe_str("1"));
	kpipe_record *r = (kpipe_record *)kpipe_view_record(v);
	if (!r) return KPIPE_FAIL;
	r->has_partition = 1;
	r->partition = 3;
	kpipe_record_changed(r);
	return KPIPE_CONTINUE;
}

static const struct {
	const char *name;
	kpipe_on_send_fn rec;
	kpipe_on_send_view_fn view;
} view_pairs[] = {
	{"stamp", rec_stamp, view_stamp},
	{"every setter", rec_all, view_all},
	{"read after write", rec_read, view_read},
	{"read only", rec_none, view_none},
	{"changed by hand", rec_hand, view_hand},
	{"big value", set_big_value, view_big_value},
};

/* result_bytes copies a per-record on_send result: a status code (0 or a
 * small negative number) as its 8 bytes, a slice as its bytes after the
 * marker 's'. Natively a slice's address may have bit 31 set, which makes
 * the result negative too. */
static uint32_t result_bytes(int64_t res, uint8_t *dst, uint32_t cap) {
	if (res <= 0 && res >= -4) {
		memcpy(dst, &res, 8);
		return 8;
	}
	uint32_t n = (uint32_t)(res & 0xffffffff);
	if (n + 1 > cap) return 0;
	dst[0] = 's';
	memcpy(dst + 1, native_ptr((uint32_t)((uint64_t)res >> 32)), n);
	return n + 1;
}

static uint8_t want_buf[4 << 20], got_buf[4 << 20];

/* check_view_pairs runs every pair of hooks on the record in[0:len], alone
 * and as the only record of a batch, and checks that the view gives the
 * record's result. */
static void check_view_pairs(const uint8_t *in, uint32_t len, const char *name) {
	for (unsigned k = 0; k < sizeof view_pairs / sizeof view_pairs[0]; k++) {
		char what[128];
		snprintf(what, sizeof what, "view %s, edits %s, equals the record path", view_pairs[k].name,
		         (kpipe_features_ & KPIPE_FEATURE_EDITS) ? "on" : "off");
		kpipe_dispatch_buffer((int32_t)len);
		memcpy(kpipe_in_.ptr, in, len);
		uint32_t wn = result_bytes(kpipe_dispatch_on_send((int32_t)len, view_pairs[k].rec), want_buf, sizeof want_buf);
		memcpy(kpipe_in_.ptr, in, len);
		uint32_t gn = result_bytes(kpipe_dispatch_on_send_view((int32_t)len, view_pairs[k].view), got_buf, sizeof got_buf);
		check(wn > 0 && wn == gn && memcmp(want_buf, got_buf, wn) == 0, what, name);
	}
}

/* check_view_batch runs every pair of hooks on the batch frame
 * batch/on_send.bin (count records) and checks that each record's result
 * is the same through the view. */
static void check_view_batch(int32_t count) {
	uint32_t len;
	uint8_t *in = slurp("batch/on_send.bin", &len);
	for (unsigned k = 0; k < sizeof view_pairs / sizeof view_pairs[0]; k++) {
		char what[128];
		snprintf(what, sizeof what, "view batch %s, edits %s, equals the record batch", view_pairs[k].name,
		         (kpipe_features_ & KPIPE_FEATURE_EDITS) ? "on" : "off");
		uint32_t wn = 0, gn = 0;
		for (int pass = 0; pass < 2; pass++) {
			kpipe_dispatch_buffer((int32_t)len);
			memcpy(kpipe_in_.ptr, in, len);
			int64_t res = pass ? kpipe_dispatch_on_send_view_batch(count, (int32_t)len, view_pairs[k].view)
			                   : kpipe_dispatch_on_send_batch(count, (int32_t)len, view_pairs[k].rec);
			uint8_t *buf = pass ? got_buf : want_buf;
			uint32_t *n = pass ? &gn : &wn;
			if (res == 0) {
				memcpy(buf, "none", 4);
				*n = 4;
				continue;
			}
			const uint8_t *results = native_ptr((uint32_t)((uint64_t)res >> 32));
			for (int32_t i = 0; i < count; i++) *n += result_bytes((int64_t)kpipe_get64_(results + 8 * i), buf + *n, (uint32_t)sizeof want_buf - *n);
		}
		check(wn > 0 && wn == gn && memcmp(want_buf, got_buf, wn) == 0, what, "batch/on_send.bin");
	}
	free(in);
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
	for (uint32_t i = 0; i < sizeof big_value; i++) big_value[i] = (uint8_t)(i * 7);
	/* The view path gives the record path's results, on every vector,
	 * alone and in a batch, with and without edits. */
	for (int edits = 0; edits < 2; edits++) {
		kpipe_features_ = edits ? KPIPE_FEATURE_EDITS : 0;
		char *list = (char *)slurp("records.txt", &n);
		list = realloc(list, n + 1);
		list[n] = 0;
		for (char *name = strtok(list, "\n"); name; name = strtok(NULL, "\n")) {
			char rel[256];
			uint32_t len;
			snprintf(rel, sizeof rel, "records/%s.bin", name);
			uint8_t *in = slurp(rel, &len);
			check_view_pairs(in, len, name);
			free(in);
		}
		free(list);
		check_view_batch(count);
	}
	/* A malformed record (a trailing byte): a view hook that reads it gets
	 * NULL and the decoder's error, and the record fails as on the record
	 * path, whatever the hook returns; so does a setter that must decode
	 * (no edits feature). */
	{
		uint32_t len;
		uint8_t *in = slurp("records/full.bin", &len);
		uint8_t *longer = malloc(len + 1);
		memcpy(longer, in, len);
		longer[len] = 0;
		for (int edits = 0; edits < 2; edits++) {
			kpipe_features_ = edits ? KPIPE_FEATURE_EDITS : 0;
			kpipe_dispatch_buffer((int32_t)len + 1);
			memcpy(kpipe_in_.ptr, longer, len + 1);
			last_error[0] = 0;
			int64_t want = kpipe_dispatch_on_send((int32_t)len + 1, rec_none);
			char want_error[256];
			snprintf(want_error, sizeof want_error, "%s", last_error);
			last_error[0] = 0;
			int64_t got = kpipe_dispatch_on_send_view((int32_t)len + 1, view_none);
			check(want == KPIPE_FAIL && got == KPIPE_FAIL && strcmp(last_error, want_error) == 0 &&
			          strcmp(last_error, "kpipe: trailing bytes after the record") == 0,
			      "view read of a malformed record fails with the decoder's error", "full+1");
			last_error[0] = 0;
			got = kpipe_dispatch_on_send_view((int32_t)len + 1, view_read);
			check(got == KPIPE_FAIL && strcmp(last_error, want_error) == 0, "view write then read of a malformed record fails", "full+1");
			if (!edits) {
				last_error[0] = 0;
				got = kpipe_dispatch_on_send_view((int32_t)len + 1, view_stamp);
				check(got == KPIPE_FAIL && strcmp(last_error, want_error) == 0,
				      "view setter without edits decodes a malformed record and fails", "full+1");
			}
		}
		free(in);
		free(longer);
	}
	kpipe_features_ = 0;
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
