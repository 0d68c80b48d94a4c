// Checks the AssemblyScript SDK's consume side (ABI v2) against the ABI test
// vectors (sdk/testdata): node tests/consume.mjs HARNESS.wasm [TESTDATA],
// HARNESS.wasm being tests/consume_harness.ts compiled as the README says.
// Masking each consumed record's value must give results/mask_digits.
// Prints one line per failure and "N passed, N failed".
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [wasmPath, dir = new URL("../../testdata", import.meta.url).pathname] = process.argv.slice(2);
const module = new WebAssembly.Module(readFileSync(wasmPath));
const vector = (name) => new Uint8Array(readFileSync(join(dir, name)));
const names = new TextDecoder().decode(vector("records.txt")).split("\n").filter(Boolean);
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL " + what); } };
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

let mem = null, lastError = "";
const kpipe = {
  config_get: () => 0,
  log_enabled: () => 1,
  log: (level, p, n) => console.log("log", level, new TextDecoder().decode(new Uint8Array(mem.buffer, p, n))),
  set_error: (p, n) => { lastError = new TextDecoder().decode(new Uint8Array(mem.buffer, p, n)); },
  enable_features: () => 0n,
};
const e = new WebAssembly.Instance(module, { kpipe }).exports;
mem = e.memory;
e._initialize();
check(e.kpipe_init() === 0n, "kpipe_init");
check(e.kpipe_kinds() === 24, "kpipe_kinds declares both consume kinds");
const call = (bytes, fn, ...args) => {
  const p = e.kpipe_buffer(bytes.length);
  new Uint8Array(mem.buffer, p, bytes.length).set(bytes);
  return fn(...args, bytes.length);
};
const slice = (r) => new Uint8Array(mem.buffer, Number(r >> 32n), Number(r & 0xffffffffn));

for (const name of names) {
  const input = vector(`consumed/${name}.bin`);
  const want = vector(`results/mask_digits/${name}.bin`);
  const offset = new DataView(input.buffer).getBigInt64(0, true);
  const r = call(input, e.kpipe_on_consume);
  check(e.lastOffset.value === offset && offset >= 1n << 40n && e.lastHadPartition.value !== 0, `offset and partition ${name}`);
  // A record without digits comes back unchanged (0): then it is the input's.
  check(r === 0n ? equal(input.subarray(8), want) : equal(slice(r), want), `on_consume ${name}`);
  const d = call(input, e.kpipe_deserialize, 1);
  const rec = new DataView(input.buffer, 8);
  // The value field follows the 16-byte prefix, the topic and the key.
  let p = 16;
  p += 4 + rec.getUint32(p, true);
  const klen = rec.getInt32(p, true);
  p += 4 + (klen > 0 ? klen : 0);
  const vlen = rec.getInt32(p, true);
  if (vlen >= 1) check(d >= 0n && Number(d & 0xffffffffn) === vlen - 1, `deserialize ${name}`);
  else check(d === -2n && lastError === "too short", `deserialize fails ${name}`);
}
check(call(new Uint8Array(4), e.kpipe_on_consume) === -2n, "a consumed record without its offset is refused");
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
