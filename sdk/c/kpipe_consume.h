/* kpipe_consume.h: the consume side of the kpipe plugin SDK for C (plugin ABI
 * version 2, sdk/ABI.md section 10): consume interceptors, which see, change
 * or drop every record a consumer fetched before the application does, and
 * deserializers. It builds on kpipe.h, which it includes.
 *
 * Use: in exactly one C file of the plugin,
 *
 *     #define KPIPE_IMPLEMENTATION
 *     #include "kpipe_consume.h"
 *
 *     KPIPE_CONSUME_MODULE(KPIPE_KIND_CONSUME_INTERCEPTOR, my_init)  // or NULL
 *     KPIPE_CONSUME_INTERCEPTOR(my_on_consume)
 *     KPIPE_DESERIALIZER(my_deserialize)
 *
 * KPIPE_CONSUME_MODULE is KPIPE_MODULE plus the marker of version 2, which
 * the consume kinds need; a module may also implement producer-side kinds
 * (their KPIPE_INTERCEPTOR, ... macros work the same). A consumed record is
 * a kpipe_record with its partition set and, when the broker gave one, its
 * timestamp; the hooks also get its offset. Change it with the kpipe_record
 * setters: the host takes its key, value, headers and timestamp, and keeps
 * the topic, partition and offset the record was read from. */
#ifndef KPIPE_CONSUME_H
#define KPIPE_CONSUME_H

#include "kpipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The consume-side kinds, bits of kpipe_kinds (ABI section 10). */
#define KPIPE_KIND_CONSUME_INTERCEPTOR 8
#define KPIPE_KIND_DESERIALIZER 16

/* Hook types. An on_consume hook returns KPIPE_CONTINUE (the record, changed
 * through the setters or not, goes on), KPIPE_DROP (the application never
 * sees it) or KPIPE_FAIL (after kpipe_set_error; the plugin's on_failure
 * policy decides). A deserialize hook sets *out (null: len -1) from
 * record->key or record->value, as target says, and returns KPIPE_CONTINUE,
 * or KPIPE_FAIL. */
typedef int32_t (*kpipe_on_consume_fn)(kpipe_record *record, int64_t offset);
typedef int32_t (*kpipe_deserialize_fn)(int32_t target, const kpipe_record *record, int64_t offset, kpipe_bytes *out);

/* Dispatchers of kpipe_on_consume and kpipe_deserialize. */
int64_t kpipe_dispatch_on_consume(int32_t len, kpipe_on_consume_fn fn);
int64_t kpipe_dispatch_deserialize(int32_t target, int32_t len, kpipe_deserialize_fn fn);

#define KPIPE_CONSUME_MODULE(kinds, init_fn)                                           \
	KPIPE_MODULE(kinds, init_fn)                                                       \
	KPIPE_EXPORT_(kpipe_abi_v2) void kpipe_abi_v2(void) {}

#define KPIPE_CONSUME_INTERCEPTOR(fn)                                                  \
	KPIPE_EXPORT_(kpipe_on_consume) int64_t kpipe_on_consume(int32_t len) {            \
		return kpipe_dispatch_on_consume(len, fn);                                     \
	}

#define KPIPE_DESERIALIZER(fn)                                                         \
	KPIPE_EXPORT_(kpipe_deserialize) int64_t kpipe_deserialize(int32_t target, int32_t len) { \
		return kpipe_dispatch_deserialize(target, len, fn);                            \
	}

#ifdef __cplusplus
}
#endif

#endif /* KPIPE_CONSUME_H */

/* Implementation, on kpipe.h's (the same translation unit). */
#if defined(KPIPE_IMPLEMENTATION) && !defined(KPIPE_CONSUME_IMPLEMENTATION_DONE_)
#define KPIPE_CONSUME_IMPLEMENTATION_DONE_

/* A consumed record is an i64 offset, then the record (ABI 10.1). */
#define KPIPE_CONSUMED_FIXED_ 8u

/* The on_consume hook of the current call and the record's offset, for the
 * trampoline that runs it through kpipe.h's on_send path (which decodes the
 * record and returns it whole, or as edits with KPIPE_FEATURE_EDITS). */
static kpipe_on_consume_fn kpipe_consume_fn_;
static int64_t kpipe_consume_offset_;

static int32_t kpipe_consume_tramp_(kpipe_record *r) { return kpipe_consume_fn_(r, kpipe_consume_offset_); }

int64_t kpipe_dispatch_on_consume(int32_t len, kpipe_on_consume_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	if ((uint32_t)len < KPIPE_CONSUMED_FIXED_) return kpipe_malformed_("kpipe: consumed record without its offset");
	kpipe_consume_fn_ = fn;
	kpipe_consume_offset_ = (int64_t)kpipe_get64_(kpipe_in_.ptr);
	uint32_t used = 0;
	int64_t rc = kpipe_send_one_(kpipe_in_.ptr + KPIPE_CONSUMED_FIXED_, (uint32_t)len - KPIPE_CONSUMED_FIXED_, kpipe_consume_tramp_, &used);
	kpipe_consume_fn_ = 0;
	return rc;
}

int64_t kpipe_dispatch_deserialize(int32_t target, int32_t len, kpipe_deserialize_fn fn) {
	if (!kpipe_input_ok_(len)) return kpipe_malformed_("kpipe: input longer than the buffer");
	if ((uint32_t)len < KPIPE_CONSUMED_FIXED_) return kpipe_malformed_("kpipe: consumed record without its offset");
	if (target != KPIPE_TARGET_KEY && target != KPIPE_TARGET_VALUE) return kpipe_malformed_("kpipe: unknown deserializer target");
	kpipe_record r;
	if (kpipe_decode_record(kpipe_in_.ptr + KPIPE_CONSUMED_FIXED_, (uint32_t)len - KPIPE_CONSUMED_FIXED_, &r) != KPIPE_CONTINUE) return KPIPE_FAIL;
	kpipe_bytes out = kpipe_null;
	if (fn(target, &r, (int64_t)kpipe_get64_(kpipe_in_.ptr), &out) != KPIPE_CONTINUE) return KPIPE_FAIL;
	if (out.len < 0) return KPIPE_NULL;
	if (out.len == 0) return 0;
	return kpipe_slice_(out.ptr, (uint32_t)out.len);
}

#endif /* KPIPE_IMPLEMENTATION */
