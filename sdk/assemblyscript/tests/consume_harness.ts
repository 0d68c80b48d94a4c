// The test harness of tests/consume.mjs: the SDK's consume side with a
// digit-masking consume interceptor and a deserializer that drops the first
// byte of the key or value.
import * as kpipe from "../assembly/index";
export { kpipe_abi_v1, kpipe_abi_v2, kpipe_kinds, kpipe_buffer, kpipe_init, kpipe_on_consume, kpipe_deserialize } from "../assembly/index";

/** What the last on_consume saw. */
export let lastOffset: i64 = 0;
export let lastHadPartition: bool = false;

kpipe.registerConsumeInterceptor((r: kpipe.Record, offset: i64): i32 => {
  lastOffset = offset;
  lastHadPartition = r.hasPartition;
  const v = r.value;
  if (v === null) return kpipe.CONTINUE;
  const masked = new Uint8Array(v.length);
  let changed = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c >= 48 && c <= 57) { masked[i] = 42; changed = true; } else masked[i] = c;
  }
  if (changed) r.setValue(masked);
  return kpipe.CONTINUE;
});

kpipe.registerDeserializer((target: i32, r: kpipe.Record, offset: i64): Uint8Array | null => {
  const b = target == kpipe.TARGET_KEY ? r.key : r.value;
  if (b === null || b.length == 0) {
    kpipe.failDeserialize("too short");
    return null;
  }
  return b.subarray(1);
});
