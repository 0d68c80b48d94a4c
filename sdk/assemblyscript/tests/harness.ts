// The test harness of tests/vectors.mjs: the SDK with a header-stamp
// interceptor, an acknowledgement recorder and a key-hash partitioner, all
// in one module. enable_features comes from the test, which grants what
// the KPIPE_TEST_FEATURES global asks for.
import * as kpipe from "../assembly/index";
export { kpipe_abi_v1, kpipe_kinds, kpipe_buffer, kpipe_init, kpipe_on_send, kpipe_on_send_batch, kpipe_on_ack, kpipe_on_ack_batch, kpipe_partition, kpipe_partition_batch } from "../assembly/index";

function murmur2(key: Uint8Array): u32 {
  const m: u32 = 0x5bd1e995;
  const len = key.length;
  let h: u32 = 0x9747b28c ^ <u32>len;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    let k = load<u32>(key.dataStart + <usize>i) * m;
    k ^= k >> 24;
    h = (h * m) ^ (k * m);
  }
  const rest = len - i;
  if (rest >= 3) h ^= <u32>key[i + 2] << 16;
  if (rest >= 2) h ^= <u32>key[i + 1] << 8;
  if (rest >= 1) {
    h ^= <u32>key[i];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  return h ^ (h >> 15);
}

/** The features the next kpipe_init asks for. */
let wanted: u64 = 0;
export function test_want_features(f: u64): void { wanted = f; }

/** What the last acknowledgement carried. */
export let lastAckOffset: i64 = 0;
export let lastAckPartition: i32 = 0;
export let lastAckTimestamp: i64 = 0;
export let lastAckErrorLength: i32 = 0;
export let lastAckHadRecord: bool = false;

kpipe.registerInit((): i32 => {
  kpipe.enableFeatures(wanted);
  return kpipe.CONTINUE;
});
/** Whether the interceptor also calls markChanged, so that the SDK sends the
 * whole record, rebuilt from the input and the edits logged before. */
let markChanged = false;
export function test_mark_changed(b: bool): void { markChanged = b; }

/** Whether the interceptor reads the record after setting the header. */
let readAfter = false;
export function test_read_after(b: bool): void { readAfter = b; }
/** How many headers the interceptor read, if it read them. */
export let headersRead: i32 = -1;

kpipe.registerInterceptor((r: kpipe.Record): i32 => {
  r.setHeader("kpipe-stamp", "sdk");
  if (readAfter) headersRead = r.headers.length;
  if (markChanged) r.markChanged();
  return kpipe.CONTINUE;
});
kpipe.registerAcks((r: kpipe.Record | null, a: kpipe.Ack): i32 => {
  lastAckOffset = a.offset;
  lastAckPartition = a.partition;
  lastAckTimestamp = a.timestamp;
  lastAckErrorLength = a.error.length;
  lastAckHadRecord = r !== null;
  return kpipe.CONTINUE;
});
kpipe.registerPartitioner((r: kpipe.Record, n: i32): i32 => {
  const key = r.key;
  if (key === null) return kpipe.DEFAULT_PARTITION;
  return <i32>((murmur2(key) & 0x7fffffff) % <u32>n);
});
