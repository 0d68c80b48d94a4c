/* noop.c: an interceptor written with the C SDK (sdk/c/kpipe.h) that leaves
 * every record unchanged. Its hook reads nothing, but the SDK has decoded
 * the record before calling it, so a call costs what the SDK's per-record
 * path costs over the hand-written WAT no-op (examples/plugins/wat/noop.wat):
 * wasmhost's BenchmarkSDKStampParts measures the C header stamp's parts with
 * it. */
#define KPIPE_IMPLEMENTATION
#include "kpipe.h"

static int32_t init(void) {
	kpipe_enable_features(KPIPE_FEATURE_ACK_NO_RECORD | KPIPE_FEATURE_EDITS);
	return KPIPE_CONTINUE;
}

static int32_t on_send(kpipe_record *r) {
	(void)r;
	return KPIPE_CONTINUE;
}

KPIPE_MODULE(KPIPE_KIND_INTERCEPTOR, init)
KPIPE_INTERCEPTOR(on_send)
