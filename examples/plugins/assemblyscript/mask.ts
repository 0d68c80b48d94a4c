// mask.ts: a consume interceptor (ABI v2) written with the AssemblyScript
// SDK's consume side. It masks every ASCII digit of a consumed record's value
// with '*' before the application reads it, and asks for FEATURE_EDITS, with
// which the SDK returns one set-value edit instead of the whole record.
import * as kpipe from "kpipe-sdk/assembly/index";
export { kpipe_abi_v1, kpipe_abi_v2, kpipe_kinds, kpipe_buffer, kpipe_init, kpipe_on_consume } from "kpipe-sdk/assembly/index";

kpipe.registerInit((): i32 => {
  kpipe.enableFeatures(kpipe.FEATURE_EDITS);
  return kpipe.CONTINUE;
});

kpipe.registerConsumeInterceptor((r: kpipe.Record, offset: i64): i32 => {
  const v = r.value;
  if (v === null) return kpipe.CONTINUE;
  let masked: Uint8Array | null = null;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c < 48 || c > 57) continue;
    if (masked === null) masked = v.slice();
    masked[i] = 42;
  }
  if (masked !== null) r.setValue(masked);
  return kpipe.CONTINUE;
});
