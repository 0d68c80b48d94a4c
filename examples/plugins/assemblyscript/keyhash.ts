// keyhash.ts: a key-hash partitioner written with the AssemblyScript SDK. A
// keyed record goes where Kafka's Java client puts it,
// (murmur2(key) & 0x7fffffff) % n; a null key goes to the host's default
// partitioner. It needs only the key, so init asks for
// FEATURE_PARTITION_KEY and fails without it.
import * as kpipe from "kpipe-sdk/assembly/index";
export { kpipe_abi_v1, kpipe_kinds, kpipe_buffer, kpipe_init, kpipe_partition, kpipe_partition_batch } from "kpipe-sdk/assembly/index";

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

kpipe.registerInit((): i32 => {
  if ((kpipe.enableFeatures(kpipe.FEATURE_PARTITION_KEY) & kpipe.FEATURE_PARTITION_KEY) == 0) {
    kpipe.setError("keyhash: the host does not offer KPIPE_FEATURE_PARTITION_KEY");
    return kpipe.FAIL;
  }
  return kpipe.CONTINUE;
});

kpipe.registerPartitioner((r: kpipe.Record, n: i32): i32 => {
  const key = r.key;
  if (key === null) return kpipe.DEFAULT_PARTITION;
  return <i32>((murmur2(key) & 0x7fffffff) % <u32>n);
});
