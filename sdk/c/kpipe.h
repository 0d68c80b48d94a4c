/* kpipe.h: the kpipe plugin SDK for C (and for Zig through @cImport).
 *
 * One header, no dependencies: it builds freestanding (clang --target=wasm32
 * -nostdlib) and with wasi-libc (--target=wasm32-wasi). It implements the
 * plugin ABI v1 of sdk/ABI.md: the input buffer, the record and
 * acknowledgement decoders, the record encoder, the batch loops, and the
 * host functions. See sdk/c/README.md for a complete plugin.
 *
 * Use: in exactly one C file of the plugin,
 *
 *     #define KPIPE_IMPLEMENTATION
 *     #include "kpipe.h"
 *
 * then write the hooks and export them with the KPIPE_* export macros at the
 * end of this header (C), or with `export fn` wrappers that call the
 * kpipe_dispatch_* functions (Zig, or any language that links this file).
 *
 * Memory: the SDK takes the pages it needs with memory.grow and never frees
 * them. The input buffer, the header arrays and the output buffers only grow,
 * each to at most twice the largest size it needed; a module built with
 * wasi-libc may use malloc beside them. Records passed to the hooks point
 * into the input buffer: copy what must outlive a call.
 *
 * State is per instance: the host runs a pool of instances of the module, and
 * each has its own copy of every global.
 */
#ifndef KPIPE_H
#define KPIPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin kinds, the bits of kpipe_kinds (ABI section 2). */
#define KPIPE_KIND_INTERCEPTOR 1
#define KPIPE_KIND_SERIALIZER 2
#define KPIPE_KIND_PARTITIONER 4

/* Hook status codes (ABI section 5). KPIPE_CONTINUE is 0: "unchanged" or
 * "ok"; an on_send hook that changed its record through the setters below
 * returns KPIPE_CONTINUE too, and the SDK returns the new record. */
#define KPIPE_CONTINUE 0
#define KPIPE_DROP (-1)
#define KPIPE_FAIL (-2)
#define KPIPE_NULL (-3)
#define KPIPE_DEFAULT_PARTITION (-4)

/* Serializer targets. */
#define KPIPE_TARGET_KEY 0
#define KPIPE_TARGET_VALUE 1

/* Log levels (ABI section 6). Info and debug messages reach the output only
 * if kpipe runs with --log-level info (or debug). */
#define KPIPE_LOG_TRACE 1
#define KPIPE_LOG_DEBUG 2
#define KPIPE_LOG_INFO 3
#define KPIPE_LOG_WARN 4
#define KPIPE_LOG_ERROR 5

/* Feature bits (ABI section 8.1), for kpipe_enable_features. */
#define KPIPE_FEATURE_PARTITION_KEY 1u
#define KPIPE_FEATURE_ACK_NO_RECORD 2u
#define KPIPE_FEATURE_EDITS 4u /* on_send returns edits, not the whole record (ABI 8.2) */

/* kpipe_bytes is a byte string that may be null: len < 0 means null, which
 * differs from empty (len == 0). ptr is not owned. */
typedef struct kpipe_bytes {
	const uint8_t *ptr;
	int32_t len;
} kpipe_bytes;

/* kpipe_header is one record header. Names may repeat. */
typedef struct kpipe_header {
	kpipe_bytes name; /* never null */
	kpipe_bytes value;
} kpipe_header;

/* kpipe_record is a decoded record (ABI section 4.1). Read the fields
 * directly; change the record only through the kpipe_record_* setters, which
 * tell the SDK to send it back (or call kpipe_record_changed after changing a
 * field yourself). partition is meaningful only if has_partition, timestamp
 * (milliseconds since the Unix epoch) only if has_timestamp. */
typedef struct kpipe_record {
	kpipe_bytes topic;
	kpipe_bytes key;
	kpipe_bytes value;
	int32_t has_partition;
	int32_t partition;
	int32_t has_timestamp;
	int64_t timestamp;
	uint32_t header_count;
	kpipe_header *headers;
	/* Private to the SDK. */
	uint32_t header_cap_;
	int32_t changed_;
} kpipe_record;

/* kpipe_ack is an acknowledgement (ABI sections 4.2, 8.1). error is empty
 * (len 0) for a delivered record. partition and timestamp are -1 when the
 * record has none. */
typedef struct kpipe_ack {
	int64_t offset;
	kpipe_bytes error;
	int32_t partition;
	int64_t timestamp;
} kpipe_ack;

/* Hook types. An on_send hook returns KPIPE_CONTINUE, KPIPE_DROP or
 * KPIPE_FAIL (after kpipe_set_error). An on_ack hook gets the record, or
 * NULL if the module enabled KPIPE_FEATURE_ACK_NO_RECORD, and returns
 * KPIPE_CONTINUE or KPIPE_FAIL. A partition hook returns a partition in
 * [0, num_partitions), KPIPE_DEFAULT_PARTITION or KPIPE_FAIL; with
 * KPIPE_FEATURE_PARTITION_KEY its record has only a key (empty topic, null
 * value, no headers). A serialize hook sets *out (null: len -1) from
 * record->key or record->value and returns KPIPE_CONTINUE, or KPIPE_FAIL.
 * An init hook returns KPIPE_CONTINUE or KPIPE_FAIL. */
typedef int32_t (*kpipe_on_send_fn)(kpipe_record *record);
typedef int32_t (*kpipe_on_ack_fn)(const kpipe_record *record, const kpipe_ack *ack);
typedef int32_t (*kpipe_partition_fn)(const kpipe_record *record, int32_t num_partitions);
typedef int32_t (*kpipe_serialize_fn)(int32_t target, const kpipe_record *record, kpipe_bytes *out);
typedef int32_t (*kpipe_init_fn)(void);

/* kpipe_view is the record an on_send hook sees through the lazy API (the
 * view hooks, KPIPE_VIEW_INTERCEPTOR): the record's encoding in the input
 * buffer, decoded only when the hook asks for it with kpipe_view_record. Its
 * setters, with KPIPE_FEATURE_EDITS, only log their edit until then, so a
 * hook that writes without reading (a header stamp) never pays for decoding
 * the record. A view hook returns what an on_send hook returns, and the host
 * gets the same result as from the kpipe_record hook making the same calls.
 * A view is valid only during the call. */
typedef struct kpipe_view kpipe_view;
typedef int32_t (*kpipe_on_send_view_fn)(kpipe_view *view);

/* Byte strings. */
kpipe_bytes kpipe_str(const char *s); /* a NUL-terminated string, without the NUL */
kpipe_bytes kpipe_bytes_of(const void *p, int32_t len);
int kpipe_bytes_equal(kpipe_bytes a, kpipe_bytes b); /* null equals only null */
extern const kpipe_bytes kpipe_null; /* the null byte string */

/* Record accessors and setters. A header lookup finds the first header of
 * that name; set replaces the first and removes the later ones (or appends
 * if there is none); append adds one more; remove removes them all and
 * returns how many it removed. The bytes given to setters must stay valid
 * until the hook returns (string literals, plugin globals, the record). */
int kpipe_record_header(const kpipe_record *r, kpipe_bytes name, kpipe_bytes *value);
void kpipe_record_set_header(kpipe_record *r, kpipe_bytes name, kpipe_bytes value);
void kpipe_record_append_header(kpipe_record *r, kpipe_bytes name, kpipe_bytes value);
uint32_t kpipe_record_remove_header(kpipe_record *r, kpipe_bytes name);
void kpipe_record_set_topic(kpipe_record *r, kpipe_bytes topic);
void kpipe_record_set_key(kpipe_record *r, kpipe_bytes key);
void kpipe_record_set_value(kpipe_record *r, kpipe_bytes value);
void kpipe_record_set_partition(kpipe_record *r, int32_t partition);
void kpipe_record_clear_partition(kpipe_record *r);
void kpipe_record_set_timestamp(kpipe_record *r, int64_t millis);
void kpipe_record_clear_timestamp(kpipe_record *r);
void kpipe_record_changed(kpipe_record *r);

/* View accessors and setters. kpipe_view_record decodes the record on its
 * first call (later calls return the same record) and returns it with the
 * edits made so far through the view applied, or returns NULL if the record
 * is malformed, with the error set (the hook should return KPIPE_FAIL; the
 * SDK fails the record whatever it returns). Change the record only through
 * the kpipe_view_* setters, or through the kpipe_record_* setters on the
 * record it returns (after a change by hand, kpipe_record_changed). The view
 * setters do what the kpipe_record_* setters of the same name do. With
 * KPIPE_FEATURE_EDITS, until the record is decoded, each logs its edit and
 * nothing more; without the feature, each decodes the record first.
 * kpipe_view_remove_header returns how many headers it removed, so it always
 * decodes. */
const kpipe_record *kpipe_view_record(kpipe_view *v);
void kpipe_view_set_header(kpipe_view *v, kpipe_bytes name, kpipe_bytes value);
void kpipe_view_append_header(kpipe_view *v, kpipe_bytes name, kpipe_bytes value);
uint32_t kpipe_view_remove_header(kpipe_view *v, kpipe_bytes name);
void kpipe_view_set_topic(kpipe_view *v, kpipe_bytes topic);
void kpipe_view_set_key(kpipe_view *v, kpipe_bytes key);
void kpipe_view_set_value(kpipe_view *v, kpipe_bytes value);
void kpipe_view_set_partition(kpipe_view *v, int32_t partition);
void kpipe_view_clear_partition(kpipe_view *v);
void kpipe_view_set_timestamp(kpipe_view *v, int64_t millis);
void kpipe_view_clear_timestamp(kpipe_view *v);

/* Codec, for tests and for hooks that build records: decode returns 0 or
 * KPIPE_FAIL (with a message set); encode writes to dst (at least
 * kpipe_record_size bytes) and returns the bytes written. */
int32_t kpipe_decode_record(const uint8_t *in, uint32_t len, kpipe_record *r);
uint32_t kpipe_record_size(const kpipe_record *r);
uint32_t kpipe_encode_record(const kpipe_record *r, uint8_t *dst);

/* Host functions (ABI section 6). kpipe_config returns the plugin's config
 * (kpipe passes the plugin's config block as a JSON object), read once per
 * instance. kpipe_enable_features works only from an init hook (or
 * _initialize) and returns the bits the host enabled. */
kpipe_bytes kpipe_config(void);
int kpipe_log_enabled(int32_t level);
void kpipe_log(int32_t level, const char *msg);
void kpipe_log_bytes(int32_t level, kpipe_bytes msg);
void kpipe_set_error(const char *msg);
void kpipe_set_error_bytes(kpipe_bytes msg);
uint64_t kpipe_enable_features(uint64_t mask);
uint64_t kpipe_features(void); /* the features this instance enabled */

/* Dispatchers: each implements one ABI export around a hook. The C export
 * macros below call them; other languages export functions that do. */
int32_t kpipe_dispatch_buffer(int32_t size);
int64_t kpipe_dispatch_init(kpipe_init_fn fn);
int64_t kpipe_dispatch_on_send(int32_t len, kpipe_on_send_fn fn);
int64_t kpipe_dispatch_on_send_batch(int32_t count, int32_t len, kpipe_on_send_fn fn);
int64_t kpipe_dispatch_on_send_view(int32_t len, kpipe_on_send_view_fn fn);
int64_t kpipe_dispatch_on_send_view_batch(int32_t count, int32_t len, kpipe_on_send_view_fn fn);
int64_t kpipe_dispatch_on_ack(int32_t len, kpipe_on_ack_fn fn);
int64_t kpipe_dispatch_on_ack_batch(int32_t count, int32_t len, kpipe_on_ack_fn fn);
int64_t kpipe_dispatch_partition(int32_t num_partitions, int32_t len, kpipe_partition_fn fn);
int64_t kpipe_dispatch_partition_batch(int32_t count, int32_t len, kpipe_partition_fn fn);
int64_t kpipe_dispatch_serialize(int32_t target, int32_t len, kpipe_serialize_fn fn);

/* Export macros (C). A plugin uses KPIPE_MODULE once, then one macro per
 * kind it implements:
 *
 *     KPIPE_MODULE(KPIPE_KIND_INTERCEPTOR, my_init)  // or NULL for no init
 *     KPIPE_INTERCEPTOR(my_on_send)                  // or KPIPE_VIEW_INTERCEPTOR
 *     KPIPE_ACKS(my_on_ack)                          // optional
 *     KPIPE_PARTITIONER(my_partition)
 *     KPIPE_SERIALIZER(my_serialize)
 *
 * Each exports the per-record hook and, where the ABI has one, its batch
 * hook (section 5.5). */
#define KPIPE_EXPORT_(name) __attribute__((export_name(#name))) __attribute__((used))

#define KPIPE_MODULE(kinds, init_fn)                                                   \
	KPIPE_EXPORT_(kpipe_abi_v1) void kpipe_abi_v1(void) {}                             \
	KPIPE_EXPORT_(kpipe_kinds) int32_t kpipe_kinds(void) { return (kinds); }           \
	KPIPE_EXPORT_(kpipe_buffer) int32_t kpipe_buffer(int32_t size) {                   \
		return kpipe_dispatch_buffer(size);                                            \
	}                                                                                  \
	KPIPE_EXPORT_(kpipe_init) int64_t kpipe_init(void) { return kpipe_dispatch_init(init_fn); }

#define KPIPE_INTERCEPTOR(fn)                                                          \
	KPIPE_EXPORT_(kpipe_on_send) int64_t kpipe_on_send(int32_t len) {                  \
		return kpipe_dispatch_on_send(len, fn);                                        \
	}                                                                                  \
	KPIPE_EXPORT_(kpipe_on_send_batch) int64_t kpipe_on_send_batch(int32_t c, int32_t len) { \
		return kpipe_dispatch_on_send_batch(c, len, fn);                               \
	}

/* KPIPE_VIEW_INTERCEPTOR exports an on_send hook that takes a kpipe_view,
 * int32_t fn(kpipe_view *), in place of KPIPE_INTERCEPTOR. */
#define KPIPE_VIEW_INTERCEPTOR(fn)                                                     \
	KPIPE_EXPORT_(kpipe_on_send) int64_t kpipe_on_send(int32_t len) {                  \
		return kpipe_dispatch_on_send_view(len, fn);                                   \
	}                                                                                  \
	KPIPE_EXPORT_(kpipe_on_send_batch) int64_t kpipe_on_send_batch(int32_t c, int32_t len) { \
		return kpipe_dispatch_on_send_view_batch(c, len, fn);                          \
	}

#define KPIPE_ACKS(fn)                                                                 \
	KPIPE_EXPORT_(kpipe_on_ack) int64_t kpipe_on_ack(int32_t len) {                    \
		return kpipe_dispatch_on_ack(len, fn);                                         \
	}                                                                                  \
	KPIPE_EXPORT_(kpipe_on_ack_batch) int64_t kpipe_on_ack_batch(int32_t c, int32_t len) { \
		return kpipe_dispatch_on_ack_batch(c, len, fn);                                \
	}

#define KPIPE_PARTITIONER(fn)                                                          \
	KPIPE_EXPORT_(kpipe_partition) int64_t kpipe_partition(int32_t n, int32_t len) {   \
		return kpipe_dispatch_partition(n, len, fn);                                   \
	}                                                                                  \
	KPIPE_EXPORT_(kpipe_partition_batch) int64_t kpipe_partition_batch(int32_t c, int32_t len) { \
		return kpipe_dispatch_partition_batch(c, len, fn);                             \
	}

#define KPIPE_SERIALIZER(fn)                                                           \
	KPIPE_EXPORT_(kpipe_serialize) int64_t kpipe_serialize(int32_t target, int32_t len) { \
		return kpipe_dispatch_serialize(target, len, fn);                              \
	}

#ifdef __cplusplus
}
#endif

#endif /* KPIPE_H */

/* ------------------------------------------------------------------------ */
/* Implementation.                                                           */
/* ------------------------------------------------------------------------ */
#if defined(KPIPE_IMPLEMENTATION) && !defined(KPIPE_IMPLEMENTATION_DONE_)
#define KPIPE_IMPLEMENTATION_DONE_

/* Host imports. Natively (for unit tests of plugin logic) the test must
 * define them. */
#if defined(__wasm__)
#define KPIPE_IMPORT_(name) __attribute__((import_module("kpipe"), import_name(#name)))
#else
#define KPIPE_IMPORT_(name)
#endif
KPIPE_IMPORT_(config_get) int32_t kpipe_host_config_get(uint8_t *buf, int32_t limit);
KPIPE_IMPORT_(log_enabled) int32_t kpipe_host_log_enabled(int32_t level);
KPIPE_IMPORT_(log) void kpipe_host_log(int32_t level, const uint8_t *ptr, int32_t len);
KPIPE_IMPORT_(set_error) void kpipe_host_set_error(const uint8_t *ptr, int32_t len);
KPIPE_IMPORT_(enable_features) int64_t kpipe_host_enable_features(int64_t features);

const kpipe_bytes kpipe_null = {0, -1};

/* KPIPE_HOT_ marks the functions of the on_send and partition paths, and
 * the setters, to be inlined wherever the plugin calls them in the file that
 * defines KPIPE_IMPLEMENTATION: the host charges every call inside the guest
 * (a check for its time limit and its stack budget at each function entry),
 * and the per-record path is mostly calls otherwise. Inlined, the C header
 * stamp takes about half the time per record (wasmhost's
 * BenchmarkSDKStampRatios, c; the figures are in docs/performance.md). */
#define KPIPE_HOT_ __attribute__((always_inline))

/* Byte copies written out, so that a freestanding module needs no memcpy;
 * with the bulk-memory feature (Zig's default for wasm32), memcpy is one
 * memory.copy instruction instead, which also needs no memcpy. The host
 * charges every loop iteration (a check for its time limit), so the loop
 * costs a check a byte where lengths are not known at compile time. The
 * Zig header stamp (built with bulk memory, sdk/c/README.md) takes 2,033
 * instructions per record with memory.copy and took 2,435 with the loop,
 * against the C stamp's 1,965 and the WAT no-op's 1,035 (callgrind,
 * wasmhost's BenchmarkSDKStampParts, zig-stamp; docs/performance.md). */
static KPIPE_HOT_ inline void kpipe_copy_(uint8_t *dst, const uint8_t *src, uint32_t n) {
#if defined(__wasm_bulk_memory__)
	if (n) __builtin_memcpy(dst, src, n);
#else
	while (n--) *dst++ = *src++;
#endif
}

static KPIPE_HOT_ inline void kpipe_put32_(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static KPIPE_HOT_ inline void kpipe_put64_(uint8_t *p, uint64_t v) {
	kpipe_put32_(p, (uint32_t)v);
	kpipe_put32_(p + 4, (uint32_t)(v >> 32));
}

static KPIPE_HOT_ inline uint32_t kpipe_get32_(const uint8_t *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static KPIPE_HOT_ inline uint64_t kpipe_get64_(const uint8_t *p) {
	return (uint64_t)kpipe_get32_(p) | (uint64_t)kpipe_get32_(p + 4) << 32;
}

/* Page allocator: fresh pages from memory.grow, never freed. Natively (for
 * tests) it hands out a static arena. */
#if defined(__wasm__)
static void *kpipe_pages_(uint32_t size) {
	uint32_t pages = (uint32_t)(((uint64_t)size + 65535) >> 16);
	int32_t old = (int32_t)__builtin_wasm_memory_grow(0, pages);
	if (old < 0) return 0;
	return (void *)((uintptr_t)old << 16);
}
#else
static uint8_t kpipe_native_arena_[64u << 20];
static uint32_t kpipe_native_used_;
static void *kpipe_pages_(uint32_t size) {
	size = (uint32_t)(((uint64_t)size + 65535) & ~(uint64_t)65535);
	if (size > sizeof kpipe_native_arena_ - kpipe_native_used_) return 0;
	void *p = kpipe_native_arena_ + kpipe_native_used_;
	kpipe_native_used_ += size;
	return p;
}
#endif

/* A growable region: ensure gives it at least n bytes, keeping the first
 * keep bytes of its contents. The old block is abandoned, never reused, so
 * pointers into it stay valid. */
typedef struct kpipe_region_ {
	uint8_t *ptr;
	uint32_t cap;
} kpipe_region_;

static int kpipe_region_grow_(kpipe_region_ *r, uint32_t n, uint32_t keep) {
	uint64_t want = (uint64_t)r->cap * 2;
	if (want < n) want = n;
	if (want < 1024) want = 1024;
	if (want > 0x7fffffffu) want = n;
	uint8_t *p = (uint8_t *)kpipe_pages_((uint32_t)want);
	if (!p) return 0;
	if (keep && r->ptr) kpipe_copy_(p, r->ptr, keep);
	r->ptr = p;
	r->cap = (uint32_t)(((uint64_t)want + 65535) & ~(uint64_t)65535);
	return 1;
}

static KPIPE_HOT_ inline int kpipe_region_ensure_(kpipe_region_ *r, uint32_t n, uint32_t keep) {
	return n <= r->cap || kpipe_region_grow_(r, n, keep);
}

/* Per-instance state. */
static kpipe_region_ kpipe_in_;      /* the input buffer */
static kpipe_region_ kpipe_out_;     /* records changed by on_send */
static kpipe_region_ kpipe_results_; /* result arrays of batch hooks */
static kpipe_region_ kpipe_headers_; /* header arrays of decoded records */
static kpipe_region_ kpipe_config_;  /* the config bytes */
static int32_t kpipe_config_read_;
static uint64_t kpipe_features_;
static int32_t kpipe_in_init_;

/* The edit log of the record on_send is running on (ABI 8.2): the setters
 * append their edit to it; a change it cannot express (kpipe_record_changed)
 * makes the SDK send the whole record instead. The log is written where the
 * result goes, at kpipe_edits_at_ in kpipe_out_, after the u32 that
 * kpipe_send_one_ fills in, so that sending it copies nothing. */
static uint32_t kpipe_edits_at_, kpipe_edits_len_, kpipe_edits_count_;
static const kpipe_record *kpipe_edit_rec_;
static int32_t kpipe_edits_whole_;

/* kpipe_edits_room_ makes room for n more bytes of the edit log; a log that
 * outgrows kpipe_out_ moves to a fresh block (the results of earlier
 * records of a batch stay where they are). */
static int kpipe_edits_move_(uint32_t n) {
	if ((uint64_t)kpipe_edits_len_ + n > 0x7fffffffu) return 0;
	uint32_t want = kpipe_edits_len_ + n;
	kpipe_region_ fresh = {0, 0};
	if (!kpipe_region_ensure_(&fresh, want > kpipe_out_.cap * 2 ? want : kpipe_out_.cap * 2, 0)) return 0;
	kpipe_copy_(fresh.ptr, kpipe_out_.ptr + kpipe_edits_at_, kpipe_edits_len_);
	kpipe_out_ = fresh;
	kpipe_edits_at_ = 0;
	return 1;
}

static KPIPE_HOT_ inline int kpipe_edits_room_(uint32_t n) {
	return (uint64_t)kpipe_edits_at_ + kpipe_edits_len_ + n <= kpipe_out_.cap || kpipe_edits_move_(n);
}

/* kpipe_edit_ appends an edit of op with up to two operands (a: u32 length
 * and bytes, b: i32 length or -1 and bytes; a NULL operand is left out) and
 * n_fixed bytes of fixed operand. */
static KPIPE_HOT_ inline void kpipe_edit_(const kpipe_record *r, uint8_t op, const kpipe_bytes *a, const kpipe_bytes *b, const uint8_t *fixed, uint32_t n_fixed) {
	if (r != kpipe_edit_rec_ || kpipe_edits_whole_) return;
	uint32_t na = a && a->len > 0 ? (uint32_t)a->len : 0, nb = b && b->len > 0 ? (uint32_t)b->len : 0;
	uint32_t need = 1 + n_fixed + (a ? 4 + na : 0) + (b ? 4 + nb : 0);
	if (!kpipe_edits_room_(need)) {
		kpipe_edits_whole_ = 1;
		return;
	}
	uint8_t *p = kpipe_out_.ptr + kpipe_edits_at_ + kpipe_edits_len_;
	*p++ = op;
	if (a) {
		kpipe_put32_(p, na);
		kpipe_copy_(p + 4, a->ptr, na);
		p += 4 + na;
	}
	if (b) {
		kpipe_put32_(p, (uint32_t)(b->len < 0 ? -1 : b->len));
		kpipe_copy_(p + 4, b->ptr, nb);
		p += 4 + nb;
	}
	kpipe_copy_(p, fixed, n_fixed);
	kpipe_edits_len_ += need;
	kpipe_edits_count_++;
}

KPIPE_HOT_ kpipe_bytes kpipe_str(const char *s) {
	kpipe_bytes b = {(const uint8_t *)s, 0};
	if (!s) return kpipe_null;
	while (s[b.len]) b.len++;
	return b;
}

KPIPE_HOT_ kpipe_bytes kpipe_bytes_of(const void *p, int32_t len) {
	kpipe_bytes b = {(const uint8_t *)p, len};
	return b;
}

KPIPE_HOT_ int kpipe_bytes_equal(kpipe_bytes a, kpipe_bytes b) {
	if (a.len < 0 || b.len < 0) return a.len < 0 && b.len < 0;
	if (a.len != b.len) return 0;
	for (int32_t i = 0; i < a.len; i++)
		if (a.ptr[i] != b.ptr[i]) return 0;
	return 1;
}

/* Errors and logs. */
void kpipe_set_error_bytes(kpipe_bytes msg) {
	kpipe_host_set_error(msg.ptr, msg.len < 0 ? 0 : msg.len);
}
void kpipe_set_error(const char *msg) { kpipe_set_error_bytes(kpipe_str(msg)); }
int kpipe_log_enabled(int32_t level) { return kpipe_host_log_enabled(level) != 0; }
void kpipe_log_bytes(int32_t level, kpipe_bytes msg) {
	kpipe_host_log(level, msg.ptr, msg.len < 0 ? 0 : msg.len);
}
void kpipe_log(int32_t level, const char *msg) { kpipe_log_bytes(level, kpipe_str(msg)); }

kpipe_bytes kpipe_config(void) {
	if (!kpipe_config_read_) {
		int32_t n = kpipe_host_config_get(0, 0);
		if (n > 0 && kpipe_region_ensure_(&kpipe_config_, (uint32_t)n, 0)) {
			kpipe_host_config_get(kpipe_config_.ptr, n);
			kpipe_config_read_ = n;
		} else {
			kpipe_config_read_ = -1;
		}
	}
	if (kpipe_config_read_ < 0) return kpipe_bytes_of("", 0);
	return kpipe_bytes_of(kpipe_config_.ptr, kpipe_config_read_);
}

uint64_t kpipe_enable_features(uint64_t mask) {
	uint64_t got = (uint64_t)kpipe_host_enable_features((int64_t)mask);
	/* Only calls during init enable anything (ABI section 8.1). */
	if (kpipe_in_init_) kpipe_features_ |= got;
	return got;
}
uint64_t kpipe_features(void) { return kpipe_features_; }

/* Decoding. */
static int32_t kpipe_malformed_(const char *what) {
	kpipe_set_error(what);
	return KPIPE_FAIL;
}

/* kpipe_field_ reads a length-prefixed field at *off; nullable fields
 * accept -1. */
static KPIPE_HOT_ inline int kpipe_field_(const uint8_t *in, uint32_t len, uint32_t *off, int nullable, kpipe_bytes *out) {
	if (len - *off < 4) return 0;
	int32_t n = (int32_t)kpipe_get32_(in + *off);
	*off += 4;
	if (n == -1 && nullable) {
		*out = kpipe_null;
		return 1;
	}
	if (n < 0 || (uint32_t)n > len - *off) return 0;
	out->ptr = in + *off;
	out->len = n;
	*off += (uint32_t)n;
	return 1;
}

KPIPE_HOT_ int32_t kpipe_decode_record(const uint8_t *in, uint32_t len, kpipe_record *r) {
	if (len < 16) return kpipe_malformed_("kpipe: record shorter than its fixed part");
	uint32_t flags = kpipe_get32_(in);
	if (flags & ~3u) return kpipe_malformed_("kpipe: reserved record flag bits are set");
	r->has_partition = (flags & 1) != 0;
	r->partition = r->has_partition ? (int32_t)kpipe_get32_(in + 4) : 0;
	r->has_timestamp = (flags & 2) != 0;
	r->timestamp = r->has_timestamp ? (int64_t)kpipe_get64_(in + 8) : 0;
	uint32_t off = 16;
	if (!kpipe_field_(in, len, &off, 0, &r->topic)) return kpipe_malformed_("kpipe: malformed topic");
	if (!kpipe_field_(in, len, &off, 1, &r->key)) return kpipe_malformed_("kpipe: malformed key");
	if (!kpipe_field_(in, len, &off, 1, &r->value)) return kpipe_malformed_("kpipe: malformed value");
	if (len - off < 4) return kpipe_malformed_("kpipe: malformed header count");
	uint32_t count = kpipe_get32_(in + off);
	off += 4;
	if ((uint64_t)count * 8 > len - off) return kpipe_malformed_("kpipe: header count does not fit the record");
	/* Room for the headers and four more, so that a hook can add some. */
	uint64_t need = ((uint64_t)count + 4) * sizeof(kpipe_header);
	if (!kpipe_region_ensure_(&kpipe_headers_, (uint32_t)need, 0)) return kpipe_malformed_("kpipe: out of memory for headers");
	r->headers = (kpipe_header *)kpipe_headers_.ptr;
	r->header_cap_ = kpipe_headers_.cap / (uint32_t)sizeof(kpipe_header);
	for (uint32_t i = 0; i < count; i++) {
		if (!kpipe_field_(in, len, &off, 0, &r->headers[i].name)) return kpipe_malformed_("kpipe: malformed header name");
		if (!kpipe_field_(in, len, &off, 1, &r->headers[i].value)) return kpipe_malformed_("kpipe: malformed header value");
	}
	if (off != len) return kpipe_malformed_("kpipe: trailing bytes after the record");
	r->header_count = count;
	r->changed_ = 0;
	return KPIPE_CONTINUE;
}

/* kpipe_decode_key_ decodes the KPIPE_FEATURE_PARTITION_KEY input into a
 * record that has only a key. */
static KPIPE_HOT_ inline int32_t kpipe_decode_key_(const uint8_t *in, uint32_t len, kpipe_record *r) {
	uint32_t off = 0;
	r->topic = kpipe_bytes_of("", 0);
	r->value = kpipe_null;
	r->has_partition = r->has_timestamp = 0;
	r->partition = 0;
	r->timestamp = 0;
	r->header_count = r->header_cap_ = 0;
	r->headers = 0;
	r->changed_ = 0;
	if (!kpipe_field_(in, len, &off, 1, &r->key) || off != len) return kpipe_malformed_("kpipe: malformed key input");
	return KPIPE_CONTINUE;
}

uint32_t kpipe_record_size(const kpipe_record *r) {
	uint32_t n = 16 + 4 + (uint32_t)r->topic.len + 4 + 4 + 4;
	if (r->key.len > 0) n += (uint32_t)r->key.len;
	if (r->value.len > 0) n += (uint32_t)r->value.len;
	for (uint32_t i = 0; i < r->header_count; i++) {
		n += 8 + (uint32_t)r->headers[i].name.len;
		if (r->headers[i].value.len > 0) n += (uint32_t)r->headers[i].value.len;
	}
	return n;
}

static uint8_t *kpipe_put_field_(uint8_t *p, kpipe_bytes b) {
	kpipe_put32_(p, (uint32_t)(b.len < 0 ? -1 : b.len));
	p += 4;
	if (b.len > 0) {
		kpipe_copy_(p, b.ptr, (uint32_t)b.len);
		p += b.len;
	}
	return p;
}

uint32_t kpipe_encode_record(const kpipe_record *r, uint8_t *dst) {
	uint8_t *p = dst;
	kpipe_put32_(p, (r->has_partition ? 1u : 0u) | (r->has_timestamp ? 2u : 0u));
	kpipe_put32_(p + 4, (uint32_t)(r->has_partition ? r->partition : 0));
	kpipe_put64_(p + 8, (uint64_t)(r->has_timestamp ? r->timestamp : 0));
	p = kpipe_put_field_(p + 16, r->topic);
	p = kpipe_put_field_(p, r->key);
	p = kpipe_put_field_(p, r->value);
	kpipe_put32_(p, r->header_count);
	p += 4;
	for (uint32_t i = 0; i < r->header_count; i++) {
		p = kpipe_put_field_(p, r->headers[i].name);
		p = kpipe_put_field_(p, r->headers[i].value);
	}
	return (uint32_t)(p - dst);
}

/* Setters. */
void kpipe_record_changed(kpipe_record *r) {
	r->changed_ = 1;
	if (r == kpipe_edit_rec_) kpipe_edits_whole_ = 1;
}

KPIPE_HOT_ int kpipe_record_header(const kpipe_record *r, kpipe_bytes name, kpipe_bytes *value) {
	for (uint32_t i = 0; i < r->header_count; i++) {
		if (kpipe_bytes_equal(r->headers[i].name, name)) {
			if (value) *value = r->headers[i].value;
			return 1;
		}
	}
	return 0;
}

/* kpipe_append_header_ appends a header without logging an edit. */
static KPIPE_HOT_ inline void kpipe_append_header_(kpipe_record *r, kpipe_bytes name, kpipe_bytes value) {
	if (r->header_count == r->header_cap_) {
		/* The header array moves to a larger block of the SDK's header
		 * region; the old block is never reused, so copying from it is
		 * safe even when it was that region. */
		uint32_t cap = r->header_cap_ * 2 + 8;
		kpipe_header *old = r->headers;
		kpipe_region_ fresh = {0, 0};
		if (!kpipe_region_ensure_(&fresh, cap * (uint32_t)sizeof(kpipe_header), 0)) __builtin_trap();
		kpipe_copy_(fresh.ptr, (const uint8_t *)old, r->header_count * (uint32_t)sizeof(kpipe_header));
		kpipe_headers_ = fresh;
		r->headers = (kpipe_header *)fresh.ptr;
		r->header_cap_ = fresh.cap / (uint32_t)sizeof(kpipe_header);
	}
	r->headers[r->header_count].name = name;
	r->headers[r->header_count].value = value;
	r->header_count++;
	r->changed_ = 1;
}

KPIPE_HOT_ void kpipe_record_append_header(kpipe_record *r, kpipe_bytes name, kpipe_bytes value) {
	if (name.len < 0) name.len = 0;
	kpipe_append_header_(r, name, value);
	kpipe_edit_(r, 2, &name, &value, 0, 0);
}

/* kpipe_remove_from_ removes the headers named name at index from and
 * later, and returns how many it removed. */
static KPIPE_HOT_ inline uint32_t kpipe_remove_from_(kpipe_record *r, kpipe_bytes name, uint32_t from) {
	uint32_t j = from;
	for (uint32_t i = from; i < r->header_count; i++) {
		if (!kpipe_bytes_equal(r->headers[i].name, name)) r->headers[j++] = r->headers[i];
	}
	uint32_t removed = r->header_count - j;
	r->header_count = j;
	if (removed) r->changed_ = 1;
	return removed;
}

KPIPE_HOT_ void kpipe_record_set_header(kpipe_record *r, kpipe_bytes name, kpipe_bytes value) {
	if (name.len < 0) name.len = 0;
	kpipe_edit_(r, 1, &name, &value, 0, 0);
	for (uint32_t i = 0; i < r->header_count; i++) {
		if (kpipe_bytes_equal(r->headers[i].name, name)) {
			r->headers[i].value = value;
			r->changed_ = 1;
			kpipe_remove_from_(r, name, i + 1);
			return;
		}
	}
	kpipe_append_header_(r, name, value);
}

KPIPE_HOT_ uint32_t kpipe_record_remove_header(kpipe_record *r, kpipe_bytes name) {
	uint32_t n = kpipe_remove_from_(r, name, 0);
	if (n) kpipe_edit_(r, 3, &name, 0, 0, 0);
	return n;
}

void kpipe_record_set_topic(kpipe_record *r, kpipe_bytes topic) {
	if (topic.len < 0) topic = kpipe_bytes_of("", 0);
	r->topic = topic;
	r->changed_ = 1;
	kpipe_edit_(r, 10, &topic, 0, 0, 0);
}
void kpipe_record_set_key(kpipe_record *r, kpipe_bytes key) {
	r->key = key;
	r->changed_ = 1;
	kpipe_edit_(r, 4, 0, &key, 0, 0);
}
void kpipe_record_set_value(kpipe_record *r, kpipe_bytes value) {
	r->value = value;
	r->changed_ = 1;
	kpipe_edit_(r, 5, 0, &value, 0, 0);
}
void kpipe_record_set_partition(kpipe_record *r, int32_t p) {
	uint8_t b[4];
	r->has_partition = 1;
	r->partition = p;
	r->changed_ = 1;
	kpipe_put32_(b, (uint32_t)p);
	kpipe_edit_(r, 6, 0, 0, b, 4);
}
void kpipe_record_clear_partition(kpipe_record *r) {
	r->has_partition = 0;
	r->partition = 0;
	r->changed_ = 1;
	kpipe_edit_(r, 7, 0, 0, 0, 0);
}
void kpipe_record_set_timestamp(kpipe_record *r, int64_t ms) {
	uint8_t b[8];
	r->has_timestamp = 1;
	r->timestamp = ms;
	r->changed_ = 1;
	kpipe_put64_(b, (uint64_t)ms);
	kpipe_edit_(r, 8, 0, 0, b, 8);
}
void kpipe_record_clear_timestamp(kpipe_record *r) {
	r->has_timestamp = 0;
	r->timestamp = 0;
	r->changed_ = 1;
	kpipe_edit_(r, 9, 0, 0, 0, 0);
}

/* The view (kpipe_view in the API above). state is 0 until the record is
 * decoded into rec, 1 after, and -1 if it was malformed. Until it is
 * decoded, only rec.changed_ of rec is used. The encoding is not checked
 * before the hook runs: checking it walks every field and header, as
 * decoding does, the host encoded it, and a hook that only logs edits never
 * looks at it (wasmhost's BenchmarkSDKStampParts, c-stamp). */
struct kpipe_view {
	const uint8_t *in;
	uint32_t len;
	int32_t state;
	kpipe_record rec;
};

/* kpipe_view_replay_ applies the edits logged so far for v (ABI 8.2: the log
 * after its u32 count) to its freshly decoded record, without logging them
 * again. The operands point into the log, whose blocks are never reused. */
static void kpipe_view_replay_(kpipe_view *v) {
	const kpipe_record *logging = kpipe_edit_rec_;
	const uint8_t *p = kpipe_out_.ptr + kpipe_edits_at_ + 4;
	uint32_t n = kpipe_edits_count_;
	kpipe_edit_rec_ = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t op = *p++;
		kpipe_bytes a = kpipe_null, b = kpipe_null;
		if (op <= 3 || op == 10) { /* a name or topic: u32 length, bytes */
			a = kpipe_bytes_of(p + 4, (int32_t)kpipe_get32_(p));
			p += 4 + a.len;
		}
		if (op == 1 || op == 2 || op == 4 || op == 5) { /* i32 length or -1, bytes */
			b = kpipe_bytes_of(p + 4, (int32_t)kpipe_get32_(p));
			p += 4 + (b.len > 0 ? b.len : 0);
		}
		switch (op) {
		case 1: kpipe_record_set_header(&v->rec, a, b); break;
		case 2: kpipe_record_append_header(&v->rec, a, b); break;
		case 3: kpipe_record_remove_header(&v->rec, a); break;
		case 4: kpipe_record_set_key(&v->rec, b); break;
		case 5: kpipe_record_set_value(&v->rec, b); break;
		case 6: kpipe_record_set_partition(&v->rec, (int32_t)kpipe_get32_(p)); p += 4; break;
		case 7: kpipe_record_clear_partition(&v->rec); break;
		case 8: kpipe_record_set_timestamp(&v->rec, (int64_t)kpipe_get64_(p)); p += 8; break;
		case 9: kpipe_record_clear_timestamp(&v->rec); break;
		case 10: kpipe_record_set_topic(&v->rec, a); break;
		}
	}
	kpipe_edit_rec_ = logging;
}

/* kpipe_view_decode_ decodes v's record once, with the edits logged so far
 * applied, and returns it, or NULL if it is malformed. */
static kpipe_record *kpipe_view_decode_(kpipe_view *v) {
	if (v->state == 0) {
		int logged = v->rec.changed_;
		if (kpipe_decode_record(v->in, v->len, &v->rec) != KPIPE_CONTINUE) {
			v->state = -1;
			return 0;
		}
		v->state = 1;
		if (logged) kpipe_view_replay_(v);
	}
	return v->state > 0 ? &v->rec : 0;
}

const kpipe_record *kpipe_view_record(kpipe_view *v) { return kpipe_view_decode_(v); }

/* kpipe_view_log_ logs an edit of a record not yet decoded, and returns 1;
 * it returns 0, logging nothing, if the caller must decode the record and
 * change it with the record's setter instead: the record is decoded, the
 * module has no KPIPE_FEATURE_EDITS, or the log is being given up for the
 * whole record (it could not grow). */
static KPIPE_HOT_ inline int kpipe_view_log_(kpipe_view *v, uint8_t op, const kpipe_bytes *a, const kpipe_bytes *b, const uint8_t *fixed, uint32_t n_fixed) {
	if (v->state != 0 || kpipe_edit_rec_ != &v->rec || kpipe_edits_whole_) return 0;
	kpipe_edit_(&v->rec, op, a, b, fixed, n_fixed);
	if (kpipe_edits_whole_) return 0;
	v->rec.changed_ = 1;
	return 1;
}

KPIPE_HOT_ void kpipe_view_set_header(kpipe_view *v, kpipe_bytes name, kpipe_bytes value) {
	if (name.len < 0) name.len = 0;
	if (kpipe_view_log_(v, 1, &name, &value, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_header(r, name, value);
}

KPIPE_HOT_ void kpipe_view_append_header(kpipe_view *v, kpipe_bytes name, kpipe_bytes value) {
	if (name.len < 0) name.len = 0;
	if (kpipe_view_log_(v, 2, &name, &value, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_append_header(r, name, value);
}

uint32_t kpipe_view_remove_header(kpipe_view *v, kpipe_bytes name) {
	kpipe_record *r = kpipe_view_decode_(v);
	return r ? kpipe_record_remove_header(r, name) : 0;
}

void kpipe_view_set_topic(kpipe_view *v, kpipe_bytes topic) {
	if (topic.len < 0) topic = kpipe_bytes_of("", 0);
	if (kpipe_view_log_(v, 10, &topic, 0, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_topic(r, topic);
}

void kpipe_view_set_key(kpipe_view *v, kpipe_bytes key) {
	if (kpipe_view_log_(v, 4, 0, &key, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_key(r, key);
}

void kpipe_view_set_value(kpipe_view *v, kpipe_bytes value) {
	if (kpipe_view_log_(v, 5, 0, &value, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_value(r, value);
}

void kpipe_view_set_partition(kpipe_view *v, int32_t p) {
	uint8_t b[4];
	kpipe_put32_(b, (uint32_t)p);
	if (kpipe_view_log_(v, 6, 0, 0, b, 4)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_partition(r, p);
}

void kpipe_view_clear_partition(kpipe_view *v) {
	if (kpipe_view_log_(v, 7, 0, 0, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_clear_partition(r);
}

void kpipe_view_set_timestamp(kpipe_view *v, int64_t ms) {
	uint8_t b[8];
	kpipe_put64_(b, (uint64_t)ms);
	if (kpipe_view_log_(v, 8, 0, 0, b, 8)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_set_timestamp(r, ms);
}

void kpipe_view_clear_timestamp(kpipe_view *v) {
	if (kpipe_view_log_(v, 9, 0, 0, 0, 0)) return;
	kpipe_record *r = kpipe_view_decode_(v);
	if (r) kpipe_record_clear_timestamp(r);
}

/* Dispatchers. */
static KPIPE_HOT_ inline int64_t kpipe_slice_(const uint8_t *p, uint32_t n) {
	return (int64_t)((uint64_t)(uintptr_t)p << 32 | n);
}

int32_t kpipe_dispatch_buffer(int32_t size) {
	if (size < 0) return 0;
	if (size == 0) size = 1;
	if (!kpipe_region_ensure_(&kpipe_in_, (uint32_t)size, 0)) return 0;
	return (int32_t)(uintptr_t)kpipe_in_.ptr;
}

int64_t kpipe_dispatch_init(kpipe_init_fn fn) {
	if (!fn) return KPIPE_CONTINUE;
	kpipe_in_init_ = 1;
	int32_t rc = fn();
	kpipe_in_init_ = 0;
	return rc == KPIPE_CONTINUE ? KPIPE_CONTINUE : KPIPE_FAIL;
}

static KPIPE_HOT_ inline int kpipe_input_ok_(int32_t len) { return len >= 0 && (uint32_t)len <= kpipe_in_.cap; }

/* kpipe_send_begin_ starts the edit log of record r, whose result goes at
 * out_used in kpipe_out_: with KPIPE_FEATURE_EDITS the setters log their
 * edits after the u32 count, where the result goes. */
static KPIPE_HOT_ inline void kpipe_send_begin_(const kpipe_record *r, uint32_t out_used) {
	kpipe_edit_rec_ = (kpipe_features_ & KPIPE_FEATURE_EDITS) ? r : 0;
	kpipe_edits_at_ = out_used;
	kpipe_edits_len_ = 0;
	kpipe_edits_count_ = 0;
	kpipe_edits_whole_ = !kpipe_edits_room_(4);
	kpipe_edits_len_ = 4;
}

/* kpipe_send_end_ ends the edit log and returns the per-record result of
 * an on_send hook that returned rc on r; changed records are encoded at
 * *out_used in kpipe_out_. */
static KPIPE_HOT_ inline int64_t kpipe_send_end_(const kpipe_record *r, int32_t rc, uint32_t *out_used) {
	int logged = kpipe_edit_rec_ != 0, use_edits = logged && !kpipe_edits_whole_;
	kpipe_edit_rec_ = 0;
	if (rc == KPIPE_DROP || rc == KPIPE_FAIL) return rc;
	if (rc != KPIPE_CONTINUE) return kpipe_malformed_("kpipe: on_send returned an unknown status");
	if (!r->changed_) return 0;
	if (use_edits) {
		/* The log may have moved to a fresh block. */
		uint8_t *dst = kpipe_out_.ptr + kpipe_edits_at_;
		kpipe_put32_(dst, 0x80000000u | kpipe_edits_count_);
		*out_used = kpipe_edits_at_ + kpipe_edits_len_;
		return kpipe_slice_(dst, kpipe_edits_len_);
	}
	/* The whole record; a batch keeps the records it changed earlier in
	 * the call. It goes after the edit log given up, if any: a view's
	 * record may point into the log (kpipe_view_replay_). */
	if (logged) *out_used = kpipe_edits_at_ + kpipe_edits_len_;
	uint32_t size = kpipe_record_size(r);
	if ((uint64_t)*out_used + size > kpipe_out_.cap) {
		/* Start a fresh block: the earlier records stay where they are. */
		kpipe_region_ fresh = {0, 0};
		if (!kpipe_region_ensure_(&fresh, size > kpipe_out_.cap * 2 ? size : kpipe_out_.cap * 2, 0))
			return kpipe_malformed_("kpipe: out of memory for the changed record");
		kpipe_out_ = fresh;
		*out_used = 0;
	}
	uint8_t *dst = kpipe_out_.ptr + *out_used;
	uint32_t n = kpipe_encode_record(r, dst);
	*out_used += n;
	return kpipe_slice_(dst, n);
}

/* kpipe_send_one_ runs fn on the record in[0:len] and returns its per-record
 * result. */
static KPIPE_HOT_ inline int64_t kpipe_send_one_(const uint8_t *in, uint32_t len, kpipe_on_send_fn fn, uint32_t *out_used) {
	kpipe_record r;
	if (kpipe_decode_record(in, len, &r) != KPIPE_CONTINUE) return KPIPE_FAIL;
	kpipe_send_begin_(&r, *out_used);
	int32_t rc = fn(&r);
	return kpipe_send_end_(&r, rc, out_used);
}

/* kpipe_send_view_one_ runs fn on a view of the record in[0:len]. A record
 * the hook had decoded, or that a setter decoded, and found malformed fails
 * as kpipe_send_one_ fails it (the error is set), whatever fn returned. */
static KPIPE_HOT_ inline int64_t kpipe_send_view_one_(const uint8_t *in, uint32_t len, kpipe_on_send_view_fn fn, uint32_t *out_used) {
	kpipe_view v;
	v.in = in;
	v.len = len;
	v.state = 0;
	v.rec.changed_ = 0;
	kpipe_send_begin_(&v.rec, *out_used);
	int32_t rc = fn(&v);
	if (v.state < 0) {
		kpipe_edit_rec_ = 0;
		return KPIPE_FAIL;
	}
	return kpipe_send_end_(&v.rec, rc, out_used);
}

KPIPE_HOT_ int64_t kpipe_dispatch_on_send(int32_t len, kpipe_on_send_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	uint32_t used = 0;
	return kpipe_send_one_(kpipe_in_.ptr, (uint32_t)len, fn, &used);
}

KPIPE_HOT_ int64_t kpipe_dispatch_on_send_view(int32_t len, kpipe_on_send_view_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	uint32_t used = 0;
	return kpipe_send_view_one_(kpipe_in_.ptr, (uint32_t)len, fn, &used);
}

/* kpipe_check_batch_ checks that the input holds exactly count entries of
 * prefix bytes ending in a u32 size. */
static int kpipe_check_batch_(int32_t count, int32_t len, uint32_t prefix) {
	if (count < 1 || !kpipe_input_ok_(len)) return 0;
	uint32_t off = 0, n = (uint32_t)len;
	for (int32_t i = 0; i < count; i++) {
		if (n - off < prefix) return 0;
		uint32_t size = kpipe_get32_(kpipe_in_.ptr + off + prefix - 4);
		off += prefix;
		if (size > n - off) return 0;
		off += size;
	}
	return off == n;
}

/* kpipe_send_batch_ runs the on_send batch loop (ABI 5.5) with the record
 * hook fn or, if fn is NULL, the view hook view_fn. */
static KPIPE_HOT_ inline int64_t kpipe_send_batch_(int32_t count, int32_t len, kpipe_on_send_fn fn, kpipe_on_send_view_fn view_fn) {
	if (!kpipe_check_batch_(count, len, 4)) return kpipe_malformed_("kpipe: malformed on_send batch");
	if (!kpipe_region_ensure_(&kpipe_results_, 8u * (uint32_t)count, 0)) return kpipe_malformed_("kpipe: out of memory for batch results");
	uint32_t off = 0, used = 0;
	int any = 0;
	for (int32_t i = 0; i < count; i++) {
		uint32_t size = kpipe_get32_(kpipe_in_.ptr + off);
		const uint8_t *in = kpipe_in_.ptr + off + 4;
		int64_t res = fn ? kpipe_send_one_(in, size, fn, &used) : kpipe_send_view_one_(in, size, view_fn, &used);
		off += 4 + size;
		any |= res != 0;
		kpipe_put64_(kpipe_results_.ptr + 8 * i, (uint64_t)res);
	}
	if (!any) return 0;
	return kpipe_slice_(kpipe_results_.ptr, 8u * (uint32_t)count);
}

KPIPE_HOT_ int64_t kpipe_dispatch_on_send_batch(int32_t count, int32_t len, kpipe_on_send_fn fn) {
	return kpipe_send_batch_(count, len, fn, 0);
}

KPIPE_HOT_ int64_t kpipe_dispatch_on_send_view_batch(int32_t count, int32_t len, kpipe_on_send_view_fn fn) {
	return kpipe_send_batch_(count, len, 0, fn);
}

/* kpipe_ack_one_ decodes the acknowledgement in[0:len] and runs fn. */
static int64_t kpipe_ack_one_(const uint8_t *in, uint32_t len, kpipe_on_ack_fn fn) {
	kpipe_ack ack;
	if (len < 12) return kpipe_malformed_("kpipe: acknowledgement shorter than its fixed part");
	ack.offset = (int64_t)kpipe_get64_(in);
	uint32_t elen = kpipe_get32_(in + 8);
	if (elen > len - 12) return kpipe_malformed_("kpipe: malformed acknowledgement error");
	ack.error = kpipe_bytes_of(in + 12, (int32_t)elen);
	uint32_t off = 12 + elen;
	if (kpipe_features_ & KPIPE_FEATURE_ACK_NO_RECORD) {
		if (len - off != 12) return kpipe_malformed_("kpipe: malformed acknowledgement");
		ack.partition = (int32_t)kpipe_get32_(in + off);
		ack.timestamp = (int64_t)kpipe_get64_(in + off + 4);
		return fn(0, &ack) == KPIPE_CONTINUE ? 0 : KPIPE_FAIL;
	}
	kpipe_record r;
	if (kpipe_decode_record(in + off, len - off, &r) != KPIPE_CONTINUE) return KPIPE_FAIL;
	ack.partition = r.has_partition ? r.partition : -1;
	ack.timestamp = r.has_timestamp ? r.timestamp : -1;
	return fn(&r, &ack) == KPIPE_CONTINUE ? 0 : KPIPE_FAIL;
}

int64_t kpipe_dispatch_on_ack(int32_t len, kpipe_on_ack_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	return kpipe_ack_one_(kpipe_in_.ptr, (uint32_t)len, fn);
}

int64_t kpipe_dispatch_on_ack_batch(int32_t count, int32_t len, kpipe_on_ack_fn fn) {
	if (!kpipe_check_batch_(count, len, 4)) return kpipe_malformed_("kpipe: malformed on_ack batch");
	uint32_t off = 0;
	int64_t result = 0;
	for (int32_t i = 0; i < count; i++) {
		uint32_t size = kpipe_get32_(kpipe_in_.ptr + off);
		if (kpipe_ack_one_(kpipe_in_.ptr + off + 4, size, fn) != 0) result = KPIPE_FAIL;
		off += 4 + size;
	}
	return result;
}

/* kpipe_partition_one_ decodes a partition input and runs fn. */
static KPIPE_HOT_ inline int32_t kpipe_partition_one_(const uint8_t *in, uint32_t len, int32_t n, kpipe_partition_fn fn) {
	kpipe_record r;
	int32_t rc = (kpipe_features_ & KPIPE_FEATURE_PARTITION_KEY) ? kpipe_decode_key_(in, len, &r)
	                                                             : kpipe_decode_record(in, len, &r);
	if (rc != KPIPE_CONTINUE) return KPIPE_FAIL;
	int32_t p = fn(&r, n);
	if ((p >= 0 && p < n) || p == KPIPE_DEFAULT_PARTITION || p == KPIPE_FAIL) return p;
	return kpipe_malformed_("kpipe: partition out of range");
}

KPIPE_HOT_ int64_t kpipe_dispatch_partition(int32_t num_partitions, int32_t len, kpipe_partition_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	return kpipe_partition_one_(kpipe_in_.ptr, (uint32_t)len, num_partitions, fn);
}

KPIPE_HOT_ int64_t kpipe_dispatch_partition_batch(int32_t count, int32_t len, kpipe_partition_fn fn) {
	if (!kpipe_check_batch_(count, len, 8)) return kpipe_malformed_("kpipe: malformed partition batch");
	if (!kpipe_region_ensure_(&kpipe_results_, 4u * (uint32_t)count, 0)) return kpipe_malformed_("kpipe: out of memory for batch results");
	uint32_t off = 0;
	for (int32_t i = 0; i < count; i++) {
		int32_t n = (int32_t)kpipe_get32_(kpipe_in_.ptr + off);
		uint32_t size = kpipe_get32_(kpipe_in_.ptr + off + 4);
		kpipe_put32_(kpipe_results_.ptr + 4 * i, (uint32_t)kpipe_partition_one_(kpipe_in_.ptr + off + 8, size, n, fn));
		off += 8 + size;
	}
	return kpipe_slice_(kpipe_results_.ptr, 4u * (uint32_t)count);
}

int64_t kpipe_dispatch_serialize(int32_t target, int32_t len, kpipe_serialize_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	if (target != KPIPE_TARGET_KEY && target != KPIPE_TARGET_VALUE) return kpipe_malformed_("kpipe: unknown serializer target");
	kpipe_record r;
	if (kpipe_decode_record(kpipe_in_.ptr, (uint32_t)len, &r) != KPIPE_CONTINUE) return KPIPE_FAIL;
	kpipe_bytes out = kpipe_null;
	if (fn(target, &r, &out) != KPIPE_CONTINUE) return KPIPE_FAIL;
	if (out.len < 0) return KPIPE_NULL;
	if (out.len == 0) return 0;
	return kpipe_slice_(out.ptr, (uint32_t)out.len);
}

#endif /* KPIPE_IMPLEMENTATION */
