/* stamp.c: a header-stamping interceptor written with the C SDK
 * (sdk/c/kpipe.h). It sets the header kpipe-stamp to "sdk" on every record
 * (replacing an existing one), and counts the acknowledgements its instance
 * sees, logging every 1000th at info level (run kpipe with --log-level info
 * to see it). The count is per instance: the host runs several.
 *
 * It asks for KPIPE_FEATURE_ACK_NO_RECORD: it reads only the outcome of an
 * acknowledgement, so the host need not encode the record for it. And for
 * KPIPE_FEATURE_EDITS: the SDK then returns the one header it sets instead
 * of the whole record. Its hook takes a kpipe_view, not a kpipe_record: it
 * only writes, so with edits the SDK never decodes the record. (Built with
 * -DSTAMP_WHOLE_RECORD it does not ask for edits, to measure what they save;
 * the view then decodes the record and sends it whole.) */
#define KPIPE_IMPLEMENTATION
#include "kpipe.h"

static uint64_t acked, failed;

static int32_t init(void) {
#ifdef STAMP_WHOLE_RECORD
	kpipe_enable_features(KPIPE_FEATURE_ACK_NO_RECORD);
#else
	kpipe_enable_features(KPIPE_FEATURE_ACK_NO_RECORD | KPIPE_FEATURE_EDITS);
#endif
	return KPIPE_CONTINUE;
}

static int32_t on_send(kpipe_view *v) {
	kpipe_view_set_header(v, kpipe_str("kpipe-stamp"), kpipe_str("sdk"));
	return KPIPE_CONTINUE;
}

static int32_t on_ack(const kpipe_record *r, const kpipe_ack *ack) {
	(void)r; /* NULL: the record is not sent with KPIPE_FEATURE_ACK_NO_RECORD */
	if (ack->error.len > 0) failed++;
	else if (++acked % 1000 == 0) kpipe_log(KPIPE_LOG_INFO, "stamp: another 1000 records delivered");
	return KPIPE_CONTINUE;
}

KPIPE_MODULE(KPIPE_KIND_INTERCEPTOR, init)
KPIPE_VIEW_INTERCEPTOR(on_send)
KPIPE_ACKS(on_ack)
