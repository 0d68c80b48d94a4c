// stamp.ts: a header-stamping interceptor written with the AssemblyScript SDK.
// It sets the header kpipe-stamp to "sdk" on every record (replacing an
// existing one), and counts the acknowledgements its instance sees, logging
// every 1000th at info level (kpipe shows it with --log-level info). The
// count is per instance: the host runs several. It asks for
// FEATURE_ACK_NO_RECORD, since it reads only the outcome of an
// acknowledgement, and for FEATURE_EDITS, with which the SDK returns the
// header it sets instead of the whole record.
import * as kpipe from "kpipe-sdk/assembly/index";
export { kpipe_abi_v1, kpipe_kinds, kpipe_buffer, kpipe_init, kpipe_on_send, kpipe_on_send_batch, kpipe_on_ack, kpipe_on_ack_batch } from "kpipe-sdk/assembly/index";

let delivered: u64 = 0;

kpipe.registerInit((): i32 => {
  kpipe.enableFeatures(kpipe.FEATURE_ACK_NO_RECORD | kpipe.FEATURE_EDITS);
  return kpipe.CONTINUE;
});

kpipe.registerInterceptor((r: kpipe.Record): i32 => {
  r.setHeader("kpipe-stamp", "sdk");
  return kpipe.CONTINUE;
});

kpipe.registerAcks((r: kpipe.Record | null, ack: kpipe.Ack): i32 => {
  if (ack.delivered()) {
    delivered++;
    if (delivered % 1000 == 0) kpipe.log(kpipe.LOG_INFO, "stamp: another 1000 records delivered");
  }
  return kpipe.CONTINUE;
});
