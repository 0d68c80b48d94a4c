// Checks the AssemblyScript SDK against the ABI test vectors (sdk/testdata):
// node tests/vectors.mjs HARNESS.wasm [TESTDATA]. HARNESS.wasm is
// tests/harness.ts compiled as the README says (make sdk-examples-assemblyscript
// does). Each instance is fresh, as the host makes them; the host functions
// are stubs. Prints one line per failure and "N passed, N failed".
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [wasmPath, dir = new URL("../../testdata", import.meta.url).pathname] = process.argv.slice(2);
const module = new WebAssembly.Module(readFileSync(wasmPath));
const vector = (name) => new Uint8Array(readFileSync(join(dir, name)));
const names = (list) => new TextDecoder().decode(vector(list)).split("\n").filter(Boolean);
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL " + what); } };
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// instance returns a fresh instance after _initialize and kpipe_init with
// the given features granted.
function instance(features) {
  let mem = null, lastError = "";
  const kpipe = {
    config_get: () => 0,
    log_enabled: () => 1,
    log: (level, p, n) => console.log("log", level, new TextDecoder().decode(new Uint8Array(mem.buffer, p, n))),
    set_error: (p, n) => { lastError = new TextDecoder().decode(new Uint8Array(mem.buffer, p, n)); },
    enable_features: (f) => f & BigInt(features) & 7n,
  };
  const inst = new WebAssembly.Instance(module, { kpipe });
  const e = inst.exports;
  mem = e.memory;
  e._initialize();
  e.test_want_features(BigInt(features));
  check(e.kpipe_init() === 0n, "kpipe_init");
  const call = (bytes, fn, ...args) => {
    const p = e.kpipe_buffer(bytes.length);
    new Uint8Array(mem.buffer, p, bytes.length).set(bytes);
    return fn(...args, bytes.length);
  };
  const slice = (r) => new Uint8Array(mem.buffer, Number(r >> 32n), Number(r & 0xffffffffn));
  return { e, call, slice, error: () => lastError };
}

const records = names("records.txt");
{
  const { e, call, slice } = instance(0);
  for (const name of records) {
    const r = call(vector(`records/${name}.bin`), e.kpipe_on_send);
    check(r > 0n && equal(slice(r), vector(`results/set_header/${name}.bin`)), `on_send ${name}`);
  }
  const r = call(vector("batch/on_send.bin"), e.kpipe_on_send_batch, records.length);
  const results = new BigInt64Array(slice(r).slice().buffer);
  records.forEach((name, i) => check(equal(slice(results[i]), vector(`results/set_header/${name}.bin`)), `on_send_batch ${name}`));
  const parts = slice(call(vector("batch/partition.bin"), e.kpipe_partition_batch, records.length));
  check(equal(parts, vector("results/keyhash.bin")), "partition_batch");
}
{
  // With FEATURE_EDITS (4), on_send returns the edit list.
  const { e, call, slice } = instance(4);
  for (const name of records) {
    const r = call(vector(`records/${name}.bin`), e.kpipe_on_send);
    check(r > 0n && equal(slice(r), vector("results/edit_set_header.bin")), `on_send with edits ${name}`);
  }
  {
    // A batch returns each record's edit list where it was logged; a
    // batch whose logs outgrow the log's first buffer (256 bytes) too.
    const r = call(vector("batch/on_send.bin"), e.kpipe_on_send_batch, records.length);
    const results = new BigInt64Array(slice(r).slice().buffer);
    records.forEach((name, i) => check(equal(slice(results[i]), vector("results/edit_set_header.bin")), `on_send_batch with edits ${name}`));
    const one = vector("records/full.bin"), n = 40;
    const batch = new Uint8Array(n * (4 + one.length));
    for (let i = 0; i < n; i++) {
      new DataView(batch.buffer).setUint32(i * (4 + one.length), one.length, true);
      batch.set(one, i * (4 + one.length) + 4);
    }
    const many = new BigInt64Array(slice(call(batch, e.kpipe_on_send_batch, n)).slice().buffer);
    check(many.every((x) => equal(slice(x), vector("results/edit_set_header.bin"))), `on_send_batch with edits, ${n} records`);
  }
  // A header set before the headers were read, then markChanged: the whole
  // record, its headers rebuilt from the input and the logged edit.
  e.test_mark_changed(1);
  for (const name of records) {
    const r = call(vector(`records/${name}.bin`), e.kpipe_on_send);
    check(r > 0n && equal(slice(r), vector(`results/set_header/${name}.bin`)), `on_send with edits, then markChanged ${name}`);
  }
  const r = call(vector("batch/on_send.bin"), e.kpipe_on_send_batch, records.length);
  const results = new BigInt64Array(slice(r).slice().buffer);
  records.forEach((name, i) => check(equal(slice(results[i]), vector(`results/set_header/${name}.bin`)), `on_send_batch with edits, then markChanged ${name}`));
}
{
  const { e, call, slice } = instance(1);
  const parts = slice(call(vector("batch/partition_key.bin"), e.kpipe_partition_batch, records.length));
  check(equal(parts, vector("results/keyhash.bin")), "partition_batch with PARTITION_KEY");
}
{
  // The record reaches the hook undecoded: a malformed one (full.bin with a
  // trailing byte) fails with the decoder's error once it is read, whatever
  // the hook returns, or when a setter must decode it (no FEATURE_EDITS); a
  // hook that only logs edits never reads it.
  const full = vector("records/full.bin");
  const longer = new Uint8Array(full.length + 1);
  longer.set(full);
  const want = "kpipe: trailing bytes after the record";
  {
    const { e, call, slice } = instance(4);
    const r = call(longer, e.kpipe_on_send);
    check(r > 0n && equal(slice(r), vector("results/edit_set_header.bin")), "on_send with edits, unread malformed record");
  }
  for (const features of [4, 0]) {
    const { e, call, error } = instance(features);
    e.test_read_after(features === 4 ? 1 : 0);
    const r = call(longer, e.kpipe_on_send);
    check(r === -2n && error() === want, `on_send of a malformed record (features ${features}) fails: ${r} ${error()}`);
    if (features === 4) check(e.headersRead.value === 1, "a malformed record reads as having only the header set before");
    const ok = call(full, e.kpipe_on_send);
    check(ok > 0n, `on_send of the next, well-formed record (features ${features})`);
  }
}
{
  // Garbage: with markChanged every record allocates (its headers are
  // rebuilt). Built with --runtime minimal, the module collects only when
  // the SDK calls the collector at the end of a hook call; memory must stay
  // bounded and the results right.
  const { e, call, slice } = instance(4);
  e.test_mark_changed(1);
  const full = vector("records/full.bin"), want = vector("results/set_header/full.bin");
  let wrong = 0;
  for (let i = 0; i < 20000; i++) if (!equal(slice(call(full, e.kpipe_on_send)), want)) wrong++;
  check(wrong === 0, `${wrong} of 20000 allocating records wrong`);
  const bytes = e.memory.buffer.byteLength;
  check(bytes <= 1 << 20, `memory after 20000 allocating records: ${bytes} bytes, want at most 1 MiB`);
}
const acks = { delivered: [42n, 0, 2, 1700000000123n], failed: [-1n, 18, -1, -1n], failed_partitioned: [-1n, 17, 5, 1n] };
for (const [features, suffix] of [[0, ".bin"], [2, ".lean.bin"]]) {
  const { e, call } = instance(features);
  for (const name of names("acks.txt")) {
    check(call(vector(`acks/${name}${suffix}`), e.kpipe_on_ack) === 0n, `on_ack ${name}${suffix}`);
    const [offset, errLen, partition, ts] = acks[name];
    check(e.lastAckOffset.value === offset && e.lastAckErrorLength.value === errLen &&
      e.lastAckPartition.value === partition && e.lastAckTimestamp.value === ts &&
      e.lastAckHadRecord.value === (features === 0 ? 1 : 0), `ack fields ${name}${suffix}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
