/* mask.c: a consume interceptor written with the C SDK's consume side
 * (sdk/c/kpipe_consume.h, ABI v2). It masks every ASCII digit of a consumed
 * record's value with '*' before the application reads it, in place: the
 * value points into the input buffer, which a hook may change. It asks for
 * KPIPE_FEATURE_EDITS, so the SDK returns one set-value edit instead of the
 * whole record. */
#define KPIPE_IMPLEMENTATION
#include "kpipe_consume.h"

static int32_t init(void) {
	kpipe_enable_features(KPIPE_FEATURE_EDITS);
	return KPIPE_CONTINUE;
}

static int32_t on_consume(kpipe_record *r, int64_t offset) {
	(void)offset;
	uint8_t *v = (uint8_t *)r->value.ptr; /* the input buffer */
	int changed = 0;
	for (int32_t i = 0; i < r->value.len; i++) {
		if (v[i] >= '0' && v[i] <= '9') {
			v[i] = '*';
			changed = 1;
		}
	}
	if (changed) kpipe_record_set_value(r, r->value);
	return KPIPE_CONTINUE;
}

KPIPE_CONSUME_MODULE(KPIPE_KIND_CONSUME_INTERCEPTOR, init)
KPIPE_CONSUME_INTERCEPTOR(on_consume)
