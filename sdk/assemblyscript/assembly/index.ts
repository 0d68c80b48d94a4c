// The AssemblyScript SDK for kpipe plugins. It implements the plugin ABI v1
// (sdk/ABI.md in the kpipe repository): the input buffer, the record and
// acknowledgement codecs, the batch hooks and the host functions. A plugin
// registers its hooks from top-level code and re-exports the ABI functions
// of the kinds it implements; see README.md.
//
// Build with --runtime minimal (the SDK collects garbage at the end of hook
// calls; see collectGarbage), --exportStart _initialize (so that the host runs the top-level
// code as the WASI reactor initialiser, before kpipe_init) and
// --use abort=kpipe-sdk/assembly/index/abort (the default abort is an import
// the host does not provide).

// Status codes (ABI section 5).
export const CONTINUE: i32 = 0;
export const DROP: i32 = -1;
export const FAIL: i32 = -2;
export const NULL: i32 = -3;
export const DEFAULT_PARTITION: i32 = -4;

// Kinds (ABI section 2).
export const KIND_INTERCEPTOR: i32 = 1;
export const KIND_SERIALIZER: i32 = 2;
export const KIND_PARTITIONER: i32 = 4;

// Feature bits (ABI section 8.1).
export const FEATURE_PARTITION_KEY: u64 = 1;
export const FEATURE_ACK_NO_RECORD: u64 = 2;
/** on_send returns the setters' edits instead of the whole record (ABI 8.2). */
export const FEATURE_EDITS: u64 = 4;

// Serializer targets.
export const TARGET_KEY: i32 = 0;
export const TARGET_VALUE: i32 = 1;

// Log levels. kpipe shows info and debug messages only with
// --log-level info (or debug).
export const LOG_TRACE: i32 = 1;
export const LOG_DEBUG: i32 = 2;
export const LOG_INFO: i32 = 3;
export const LOG_WARN: i32 = 4;
export const LOG_ERROR: i32 = 5;

// Host functions (ABI section 6).
@external("kpipe", "config_get")
declare function host_config_get(buf: usize, limit: i32): i32;
@external("kpipe", "log_enabled")
declare function host_log_enabled(level: i32): i32;
@external("kpipe", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("kpipe", "set_error")
declare function host_set_error(ptr: usize, len: i32): void;
@external("kpipe", "enable_features")
declare function host_enable_features(features: u64): u64;

/** A record header. Names may repeat; a null value is null. */
export class Header {
  constructor(public name: Uint8Array, public value: Uint8Array | null) {}
}

/**
 * A record (ABI section 4.1). Its byte arrays are views of the host's input,
 * which the next call overwrites, and the SDK reuses one Record object for
 * every record: copy what you keep. Change it through the setters, which
 * make the SDK send it back; after changing a field directly, call
 * markChanged().
 *
 * An on_send (or on_consume) hook gets the record undecoded, as the C SDK's
 * kpipe_view: the first read of any field, or a setter that needs the
 * fields, checks the whole encoding and finds its fields, and topic, key,
 * value and headers become views on first use. With FEATURE_EDITS a header
 * setter called before the headers were read only logs its edit (the
 * headers are rebuilt from the input and the log when read). A stamp that
 * sets a header on every record therefore neither decodes nor allocates
 * (wasmhost's BenchmarkSDKStampParts, as-stamp; docs/performance.md). If
 * the record turns out malformed when read, its fields read as empty (an
 * empty topic, null key and value, no headers) and the call fails with the
 * decoder's error, whatever the hook returns; a hook that only logged
 * edits never reads it, and the host applies them to the record it sent.
 */
export class Record {
  // The record's encoding in the input, and whether its fields were found:
  // 0 not yet, 1 found, -1 malformed (decodeError says why).
  private off: i32 = 0;
  private len: i32 = 0;
  private state: i32 = 0;
  // Where the fields are in the input, for the views made on first use.
  private topicOff: i32 = 0;
  private topicLen: i32 = 0;
  private keyOff: i32 = 0;
  private keyLen: i32 = -1;
  private valueOff: i32 = 0;
  private valueLen: i32 = -1;
  private headersOff: i32 = 0;
  private headerCount: i32 = 0;
  // The views, valid while their flag is set: reset clears the flags and
  // leaves the references, since storing a reference costs a call into the
  // garbage collector (its write barrier) on every record.
  private _topic: Uint8Array | null = null;
  private topicRead: bool = false;
  private _key: Uint8Array | null = null;
  private keyRead: bool = false;
  private _value: Uint8Array | null = null;
  private valueRead: bool = false;
  private _headers: Header[] | null = null;
  private headersRead: bool = false;
  private _hasPartition: bool = false;
  private _partition: i32 = 0;
  private _hasTimestamp: bool = false;
  private _timestamp: i64 = 0;

  changed: bool = false;
  /** With FEATURE_EDITS the setters log their edits (ABI 8.2); whole is
   * set by markChanged, after which the whole record is sent. */
  logEdits: bool = false;
  whole: bool = false;

  get hasPartition(): bool { this.decode(); return this._hasPartition; }
  set hasPartition(b: bool) { this.decode(); this._hasPartition = b; }
  get partition(): i32 { this.decode(); return this._partition; }
  set partition(p: i32) { this.decode(); this._partition = p; }
  get hasTimestamp(): bool { this.decode(); return this._hasTimestamp; }
  set hasTimestamp(b: bool) { this.decode(); this._hasTimestamp = b; }
  /** Milliseconds since the Unix epoch. */
  get timestamp(): i64 { this.decode(); return this._timestamp; }
  set timestamp(ms: i64) { this.decode(); this._timestamp = ms; }

  get topic(): Uint8Array {
    if (!this.topicRead) {
      this.decode();
      this._topic = view(this.topicOff, this.topicLen);
      this.topicRead = true;
    }
    return this._topic!;
  }
  set topic(t: Uint8Array) { this._topic = t; this.topicRead = true; }
  get key(): Uint8Array | null {
    if (!this.keyRead) {
      this.decode();
      this._key = this.keyLen < 0 ? null : view(this.keyOff, this.keyLen);
      this.keyRead = true;
    }
    return this._key;
  }
  set key(k: Uint8Array | null) { this._key = k; this.keyRead = true; }
  get value(): Uint8Array | null {
    if (!this.valueRead) {
      this.decode();
      this._value = this.valueLen < 0 ? null : view(this.valueOff, this.valueLen);
      this.valueRead = true;
    }
    return this._value;
  }
  set value(v: Uint8Array | null) { this._value = v; this.valueRead = true; }
  /** The headers, in order; names may repeat. */
  get headers(): Header[] {
    if (!this.headersRead) {
      this.decode();
      this._headers = this.readHeaders();
      this.headersRead = true;
    }
    return this._headers!;
  }
  set headers(h: Header[]) { this._headers = h; this.headersRead = true; }

  /** reset makes this the undecoded record at input[off, off+len). */
  @inline reset(off: i32, len: i32): void {
    this.off = off; this.len = len; this.state = 0;
    this.topicRead = false; this.keyRead = false; this.valueRead = false; this.headersRead = false;
    this.changed = false; this.logEdits = false; this.whole = false;
  }

  /** resetKey makes this a record of only a key, at input[keyOff, keyOff+keyLen). */
  resetKey(keyOff: i32, keyLen: i32): void {
    this.reset(0, 0);
    this.state = 1;
    this.topicOff = 0; this.topicLen = 0;
    this.keyOff = keyOff; this.keyLen = keyLen;
    this.valueOff = 0; this.valueLen = -1;
    this.headersOff = 0; this.headerCount = 0;
    this._hasPartition = false; this._partition = 0;
    this._hasTimestamp = false; this._timestamp = 0;
  }

  /** decode finds the fields once, checking the whole encoding, and says
   * whether it is well-formed; a malformed record reads as empty. */
  @inline decode(): bool {
    if (this.state == 0) this.state = this.findFields() ? 1 : -1;
    return this.state > 0;
  }

  /** Whether the record turned out malformed when read. */
  get malformed(): bool { return this.state < 0; }

  private findFields(): bool {
    if (findFields(this, this.off, this.len)) return true;
    this.topicOff = 0; this.topicLen = 0;
    this.keyLen = -1; this.valueLen = -1;
    this.headerCount = 0;
    this._hasPartition = false; this._partition = 0;
    this._hasTimestamp = false; this._timestamp = 0;
    return false;
  }

  /** fields sets where findFields found the fields. */
  setFields(topicOff: i32, topicLen: i32, keyOff: i32, keyLen: i32, valueOff: i32, valueLen: i32, headersOff: i32, headerCount: i32): void {
    this.topicOff = topicOff; this.topicLen = topicLen;
    this.keyOff = keyOff; this.keyLen = keyLen;
    this.valueOff = valueOff; this.valueLen = valueLen;
    this.headersOff = headersOff; this.headerCount = headerCount;
  }

  setFixed(hasPartition: bool, partition: i32, hasTimestamp: bool, timestamp: i64): void {
    this._hasPartition = hasPartition; this._partition = partition;
    this._hasTimestamp = hasTimestamp; this._timestamp = timestamp;
  }

  /** readHeaders decodes the headers (decodeAt checked them), then applies
   * the header edits that setters logged before they were read. */
  private readHeaders(): Header[] {
    const hs = new Array<Header>(0);
    let p = this.headersOff;
    const at = changetype<usize>(input);
    for (let i = 0; i < this.headerCount; i++) {
      let n = load<i32>(at + <usize>p); p += 4;
      const name = view(p, n); p += n;
      n = load<i32>(at + <usize>p); p += 4;
      let v: Uint8Array | null = null;
      if (n >= 0) { v = view(p, n); p += n; }
      hs.push(new Header(name, v));
    }
    if (!this.logEdits) return hs;
    return replayHeaderEdits(hs);
  }

  /** The index of the first header named name, or -1. */
  headerIndex(name: string): i32 {
    const n = bytesOf(name);
    const hs = this.headers;
    for (let i = 0; i < hs.length; i++) {
      if (equal(hs[i].name, n)) return i;
    }
    return -1;
  }

  /** Sets the first header named name, removes the later ones, or appends. */
  setHeader(name: string, value: string): void {
    if (this.logEdits && !this.headersRead) {
      editOp(1);
      editString(name);
      editString(value);
      this.changed = true;
      return;
    }
    this.setHeaderBytes(name, bytesOf(value));
  }

  setHeaderBytes(name: string, value: Uint8Array | null): void {
    const logOnly = this.logEdits && !this.headersRead;
    if (this.logEdits) {
      editOp(1);
      editString(name);
      editNullable(value);
    }
    this.changed = true;
    if (logOnly) return;
    const hs = this.headers;
    const i = this.headerIndex(name);
    if (i < 0) {
      hs.push(new Header(bytesOf(name), value));
      return;
    }
    hs[i].value = value;
    this._headers = withoutLater(hs, i);
  }

  /** Appends a header, whether or not one of that name exists. */
  appendHeader(name: string, value: Uint8Array | null): void {
    const logOnly = this.logEdits && !this.headersRead;
    if (this.logEdits) {
      editOp(2);
      editString(name);
      editNullable(value);
    }
    this.changed = true;
    if (!logOnly) this.headers.push(new Header(bytesOf(name), value));
  }

  /** Removes every header named name and returns how many there were. */
  removeHeader(name: string): i32 {
    const n = bytesOf(name);
    const hs = this.headers;
    const kept: Header[] = [];
    for (let j = 0; j < hs.length; j++) {
      if (!equal(hs[j].name, n)) kept.push(hs[j]);
    }
    const removed = hs.length - kept.length;
    if (removed > 0) {
      this._headers = kept;
      this.changed = true;
      if (this.logEdits) {
        editOp(3);
        editBytes(n);
      }
    }
    return removed;
  }

  setTopic(topic: string): void {
    const t = bytesOf(topic);
    this.topic = t;
    this.changed = true;
    if (this.logEdits) { editOp(10); editBytes(t); }
  }
  setKey(key: Uint8Array | null): void {
    this.key = key;
    this.changed = true;
    if (this.logEdits) { editOp(4); editNullable(key); }
  }
  setValue(value: Uint8Array | null): void {
    this.value = value;
    this.changed = true;
    if (this.logEdits) { editOp(5); editNullable(value); }
  }
  setPartition(p: i32): void {
    this.decode();
    this._hasPartition = true;
    this._partition = p;
    this.changed = true;
    if (this.logEdits) { editOp(6); store<i32>(editReserve(4), p); }
  }
  clearPartition(): void {
    this.decode();
    this._hasPartition = false;
    this._partition = 0;
    this.changed = true;
    if (this.logEdits) editOp(7);
  }
  setTimestamp(ms: i64): void {
    this.decode();
    this._hasTimestamp = true;
    this._timestamp = ms;
    this.changed = true;
    if (this.logEdits) { editOp(8); store<i64>(editReserve(8), ms); }
  }
  clearTimestamp(): void {
    this.decode();
    this._hasTimestamp = false;
    this._timestamp = 0;
    this.changed = true;
    if (this.logEdits) editOp(9);
  }
  markChanged(): void { this.changed = true; this.whole = true; }
}

/** An acknowledgement (ABI 4.2, 8.1); partition and timestamp are -1 if none. */
export class Ack {
  offset: i64 = 0;
  error: string = "";
  partition: i32 = -1;
  timestamp: i64 = -1;
  delivered(): bool { return this.error.length == 0 && this.offset >= 0; }
}

/** The UTF-8 bytes of s. */
export function bytesOf(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** The string of UTF-8 bytes b. */
export function stringOf(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.length);
}

function equal(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  return memory.compare(a.dataStart, b.dataStart, a.length) == 0;
}

/** hs without the headers after index i that have the name of hs[i]. */
function withoutLater(hs: Header[], i: i32): Header[] {
  const n = hs[i].name;
  const kept: Header[] = [];
  for (let j = 0; j < hs.length; j++) {
    if (j <= i || !equal(hs[j].name, n)) kept.push(hs[j]);
  }
  return kept;
}

/** replayHeaderEdits applies the header edits of the log (ops 1 to 3) to
 * hs, in order, skipping the others, whose setters changed the record
 * directly. */
function replayHeaderEdits(hs: Header[]): Header[] {
  const at = changetype<usize>(edits);
  let p = editsAt + 4;
  for (let k: u32 = 0; k < editCount; k++) {
    const op = load<u8>(at + <usize>p); p++;
    if (op == 1 || op == 2 || op == 3) {
      const nlen = load<i32>(at + <usize>p); p += 4;
      const name = Uint8Array.wrap(edits, p, nlen); p += nlen;
      if (op == 3) {
        const kept: Header[] = [];
        for (let j = 0; j < hs.length; j++) if (!equal(hs[j].name, name)) kept.push(hs[j]);
        hs = kept;
        continue;
      }
      const vlen = load<i32>(at + <usize>p); p += 4;
      let v: Uint8Array | null = null;
      if (vlen >= 0) { v = Uint8Array.wrap(edits, p, vlen); p += vlen; }
      let i = -1;
      if (op == 1) {
        for (let j = 0; j < hs.length; j++) if (equal(hs[j].name, name)) { i = j; break; }
      }
      if (i < 0) hs.push(new Header(name, v));
      else { hs[i].value = v; hs = withoutLater(hs, i); }
    } else if (op == 4 || op == 5 || op == 10) {
      const n = load<i32>(at + <usize>p); p += 4;
      if (n > 0) p += n;
    } else if (op == 6) p += 4;
    else if (op == 8) p += 8;
  }
  return hs;
}

// The edit log of the record on_send is running on (ABI 8.2), at
// edits[editsAt, editsEnd): a u32 header written when it is sent,
// then the edits. A batch keeps each record's log where it was written, the
// next one after it, and returns it there.
let edits = new ArrayBuffer(256);
let editsCap: i32 = 256;
let editsAt: i32 = 0;
let editsEnd: i32 = 0;
let editCount: u32 = 0;

// The log's writers are inlined into the setters: the host charges every
// call inside the guest (a check of its time limit and stack budget), and
// a header stamp is mostly these (wasmhost's BenchmarkSDKStampParts,
// as-stamp).

/** editReserve returns the address of n more bytes of the log. */
@inline function editReserve(n: i32): usize {
  if (editsEnd + n > editsCap) growEdits(n);
  const p = changetype<usize>(edits) + <usize>editsEnd;
  editsEnd += n;
  return p;
}

function growEdits(n: i32): void {
  const used = editsEnd;
  let cap = editsCap * 2;
  if (cap < used + n) cap = used + n;
  const bigger = new ArrayBuffer(cap);
  memory.copy(changetype<usize>(bigger), changetype<usize>(edits), used);
  edits = bigger;
  editsCap = cap;
}

@inline function editOp(op: u8): void {
  store<u8>(editReserve(1), op);
  editCount++;
}

function editBytes(b: Uint8Array): void {
  const p = editReserve(4 + b.length);
  store<i32>(p, b.length);
  memory.copy(p + 4, b.dataStart, b.length);
}

// The logged form (u32 length, UTF-8) of string literals, by address. A
// literal lives in the module's data, below __heap_base, and never changes,
// so its address names it; converting the same UTF-16 to UTF-8 on every
// record cost more than copying it (BenchmarkSDKStampRatios,
// assemblyscript). Eight slots, chosen by address; a slot's address is 0
// until it holds a literal, and a string on the heap never matches one.
const literalAt = new StaticArray<usize>(8);
const literalSize = new StaticArray<i32>(8);
const literalLogged = new StaticArray<ArrayBuffer | null>(8);

/** editString logs the UTF-8 of s with its length. */
@inline function editString(s: string): void {
  const at = changetype<usize>(s);
  const slot = <i32>((at >> 3) & 7);
  if (unchecked(literalAt[slot]) == at) {
    const n = unchecked(literalSize[slot]);
    memory.copy(editReserve(n), changetype<usize>(unchecked(literalLogged[slot])), n);
  } else {
    editStringFirst(s);
  }
}

/** editString's path for a string on the heap, or a literal seen first. */
function editStringFirst(s: string): void {
  const at = changetype<usize>(s);
  const n = String.UTF8.byteLength(s);
  if (at < __heap_base) {
    const slot = <i32>((at >> 3) & 7);
    const logged = new ArrayBuffer(4 + n);
    store<i32>(changetype<usize>(logged), n);
    String.UTF8.encodeUnsafe(at, s.length, changetype<usize>(logged) + 4);
    unchecked(literalLogged[slot] = logged);
    unchecked(literalSize[slot] = 4 + n);
    unchecked(literalAt[slot] = at);
  }
  const p = editReserve(4 + n);
  store<i32>(p, n);
  String.UTF8.encodeUnsafe(at, s.length, p + 4);
}

function editNullable(b: Uint8Array | null): void {
  if (b === null) store<i32>(editReserve(4), -1);
  else editBytes(b);
}

// Hooks, registered from top-level code.
let onSendHook: ((r: Record) => i32) | null = null;
let onAckHook: ((r: Record | null, a: Ack) => i32) | null = null;
let partitionHook: ((r: Record, n: i32) => i32) | null = null;
let serializeHook: ((target: i32, r: Record) => Uint8Array | null) | null = null;
let initHook: (() => i32) | null = null;

/** on_send returns CONTINUE, DROP, or FAIL after setError. */
export function registerInterceptor(onSend: (r: Record) => i32): void { onSendHook = onSend; }
/** on_ack gets null for the record with FEATURE_ACK_NO_RECORD; returns CONTINUE or FAIL. */
export function registerAcks(onAck: (r: Record | null, a: Ack) => i32): void { onAckHook = onAck; }
/** partition returns a partition, DEFAULT_PARTITION, or FAIL. */
export function registerPartitioner(partition: (r: Record, n: i32) => i32): void { partitionHook = partition; }
/** serialize returns the bytes (null for null), or calls setError and returns null with failSerialize(). */
export function registerSerializer(serialize: (target: i32, r: Record) => Uint8Array | null): void { serializeHook = serialize; }
/** init runs once per instance before any hook: read config(), enableFeatures(); returns CONTINUE or FAIL. */
export function registerInit(init: () => i32): void { initHook = init; }

// Host function wrappers.
export function setError(msg: string): void {
  const b = String.UTF8.encode(msg);
  host_set_error(changetype<usize>(b), b.byteLength);
}

let serializeFailed = false;
/** Makes the current serialize call fail with msg (return null after it). */
export function failSerialize(msg: string): void {
  setError(msg);
  serializeFailed = true;
}

export function logEnabled(level: i32): bool { return host_log_enabled(level) != 0; }

export function log(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}

/** The plugin's config: its config block as JSON bytes, empty if none. */
export function config(): Uint8Array {
  const n = host_config_get(0, 0);
  const b = new Uint8Array(n > 0 ? n : 0);
  if (n > 0) host_config_get(b.dataStart, n);
  return b;
}

let features: u64 = 0;
let inInit = false;

/** Asks for features (only from init) and returns those the host enabled. */
export function enableFeatures(mask: u64): u64 {
  const got = host_enable_features(mask);
  if (inInit) features |= got;
  return got;
}

/** abort for --use abort=...: logs the message and traps. */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let m = "abort";
  if (message !== null) m += ": " + message;
  if (fileName !== null) m += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  log(LOG_ERROR, m);
  unreachable();
}

// Buffers. The input buffer is handed to the host; out holds changed records
// and serialized bytes, results the result arrays of batch hooks.
let input = new ArrayBuffer(0);
let out = new ArrayBuffer(1024);
let outLen: i32 = 0;
let results = new ArrayBuffer(1024);

/** ensureOut makes room for n more bytes in out; inlined, as the batch
 * hook calls it for every changed record (wasmhost's BenchmarkSDKExamples,
 * assemblyscript/stamp/on_send/64). */
@inline function ensureOut(n: i32): void {
  if (outLen + n > out.byteLength) growOut(n);
}

function growOut(n: i32): void {
  let cap = out.byteLength * 2;
  if (cap < outLen + n) cap = outLen + n;
  const bigger = new ArrayBuffer(cap);
  memory.copy(changetype<usize>(bigger), changetype<usize>(out), outLen);
  out = bigger;
}

function ensureResults(n: i32): void {
  if (n > results.byteLength) results = new ArrayBuffer(n);
}

function slice(ptr: usize, n: i32): i64 {
  return (<i64>ptr << 32) | <i64>(<u32>n);
}

function fail(msg: string): i64 {
  setError(msg);
  return FAIL;
}

// Decoding.
let decodeError: string | null = null;

function view(off: i32, len: i32): Uint8Array {
  return Uint8Array.wrap(input, off, len);
}

// The record every hook gets: one per instance, reset for each record.
const rec = new Record();

/** Checks the record at input[off, off+len) and gives r where its fields
 * are, or returns false (decodeError says why). It makes no views: the
 * Record makes them when the hook reads a field. */
function findFields(r: Record, off: i32, len: i32): bool {
  const at = changetype<usize>(input);
  const end = off + len;
  if (len < 16) { decodeError = "kpipe: record shorter than its fixed part"; return false; }
  const flags = load<u32>(at + <usize>off);
  if ((flags & ~3) != 0) { decodeError = "kpipe: reserved record flag bits are set"; return false; }
  let p = off + 16;
  if (end - p < 4) { decodeError = "kpipe: malformed topic"; return false; }
  const topicLen = load<i32>(at + <usize>p); p += 4;
  if (topicLen < 0 || topicLen > end - p) { decodeError = "kpipe: malformed topic"; return false; }
  const topicOff = p; p += topicLen;
  if (end - p < 4) { decodeError = "kpipe: malformed key or value"; return false; }
  const keyLen = load<i32>(at + <usize>p); p += 4;
  if (keyLen < -1 || keyLen > end - p) { decodeError = "kpipe: malformed key or value"; return false; }
  const keyOff = p; if (keyLen > 0) p += keyLen;
  if (end - p < 4) { decodeError = "kpipe: malformed key or value"; return false; }
  const valueLen = load<i32>(at + <usize>p); p += 4;
  if (valueLen < -1 || valueLen > end - p) { decodeError = "kpipe: malformed key or value"; return false; }
  const valueOff = p; if (valueLen > 0) p += valueLen;
  if (end - p < 4) { decodeError = "kpipe: malformed header count"; return false; }
  const count = load<u32>(at + <usize>p); p += 4;
  if (<u64>count * 8 > <u64>(end - p)) { decodeError = "kpipe: header count does not fit the record"; return false; }
  const headersOff = p;
  for (let i: u32 = 0; i < count; i++) {
    let n = load<i32>(at + <usize>p); p += 4;
    if (n < 0 || n > end - p) { decodeError = "kpipe: malformed header name"; return false; }
    p += n;
    if (end - p < 4) { decodeError = "kpipe: malformed header value"; return false; }
    n = load<i32>(at + <usize>p); p += 4;
    if (n < -1 || n > end - p) { decodeError = "kpipe: malformed header value"; return false; }
    if (n > 0) p += n;
  }
  if (p != end) { decodeError = "kpipe: trailing bytes after the record"; return false; }
  r.setFields(topicOff, topicLen, keyOff, keyLen, valueOff, valueLen, headersOff, <i32>count);
  const hasPartition = (flags & 1) != 0;
  const hasTimestamp = (flags & 2) != 0;
  r.setFixed(hasPartition, hasPartition ? load<i32>(at + <usize>off, 4) : 0,
    hasTimestamp, hasTimestamp ? load<i64>(at + <usize>off, 8) : 0);
  return true;
}

/** Decodes the record at input[off, off+len) into rec, or returns null
 * (decodeError): for the hooks that get the record decoded. */
function decodeAt(off: i32, len: i32): Record | null {
  rec.reset(off, len);
  return rec.decode() ? rec : null;
}

/** Decodes the FEATURE_PARTITION_KEY input into rec: a record with only a key. */
function decodeKeyAt(off: i32, len: i32): Record | null {
  if (len < 4) { decodeError = "kpipe: malformed key input"; return null; }
  const n = load<i32>(changetype<usize>(input) + <usize>off);
  if (!(n == -1 && len == 4) && (n < 0 || n != len - 4)) { decodeError = "kpipe: malformed key input"; return null; }
  rec.resetKey(off + 4, n);
  return rec;
}

function fieldSize(b: Uint8Array | null): i32 { return b === null ? 4 : 4 + b.length; }

/** The size of r's encoding. */
export function recordSize(r: Record): i32 {
  let n = 16 + 4 + r.topic.length + fieldSize(r.key) + fieldSize(r.value) + 4;
  for (let i = 0; i < r.headers.length; i++) n += 4 + r.headers[i].name.length + fieldSize(r.headers[i].value);
  return n;
}

function putField(p: usize, b: Uint8Array | null): usize {
  if (b === null) { store<i32>(p, -1); return p + 4; }
  store<i32>(p, b.length);
  memory.copy(p + 4, b.dataStart, b.length);
  return p + 4 + <usize>b.length;
}

/** Encodes r at address dst (recordSize(r) bytes) and returns the size. */
export function encodeRecordAt(r: Record, dst: usize): i32 {
  store<u32>(dst, (r.hasPartition ? 1 : 0) | (r.hasTimestamp ? 2 : 0));
  store<i32>(dst, r.hasPartition ? r.partition : 0, 4);
  store<i64>(dst, r.hasTimestamp ? r.timestamp : 0, 8);
  let p = putField(dst + 16, r.topic);
  p = putField(p, r.key);
  p = putField(p, r.value);
  store<u32>(p, r.headers.length);
  p += 4;
  for (let i = 0; i < r.headers.length; i++) {
    p = putField(p, r.headers[i].name);
    p = putField(p, r.headers[i].value);
  }
  return <i32>(p - dst);
}

/** Encodes r into out and returns its offset in out. */
function encodeToOut(r: Record): i32 {
  const n = recordSize(r);
  ensureOut(n);
  const start = outLen;
  encodeRecordAt(r, changetype<usize>(out) + <usize>start);
  outLen += n;
  return start;
}

// Garbage. Built with --runtime minimal, as the README says, the module has
// no collector of its own: the SDK collects at the end of a hook call (when
// no reference is left on the stack, as that runtime needs) once COLLECT_EVERY
// records have gone through hooks since the last collection, or at once if
// the memory grew since. It spares every record the shadow stack of the
// default runtime, incremental, which keeps references on a stack in
// memory for its collector to find while the code runs: the header stamp
// takes 2,793 instructions per record with it and 2,011 without
// (callgrind, wasmhost's BenchmarkSDKStampParts, as-stamp; the WAT no-op
// 1,035). Under the other runtimes the SDK leaves collection to them.
const COLLECT_EVERY: i32 = 256;
let sinceCollect: i32 = 0;
let pagesAtCollect: i32 = 0;

@inline function collectGarbage(records: i32): void {
  if (ASC_RUNTIME != 1) return; // Runtime.Minimal
  sinceCollect += records;
  if (sinceCollect >= COLLECT_EVERY || memory.size() != pagesAtCollect) {
    __collect();
    sinceCollect = 0;
    pagesAtCollect = memory.size();
  }
}

// The ABI exports (section 3). Re-export those of the kinds you implement.

export function kpipe_abi_v1(): void {}

export function kpipe_kinds(): i32 {
  let k = 0;
  if (onSendHook !== null) k |= KIND_INTERCEPTOR;
  if (serializeHook !== null) k |= KIND_SERIALIZER;
  if (partitionHook !== null) k |= KIND_PARTITIONER;
  return k | consumeKinds();
}

export function kpipe_buffer(size: i32): usize {
  if (size < 0) return 0;
  if (size == 0) size = 1;
  if (input.byteLength < size) {
    input = new ArrayBuffer(0); // let the old buffer go first
    input = new ArrayBuffer(size);
  }
  return changetype<usize>(input);
}

export function kpipe_init(): i64 {
  const r = initCall();
  collectGarbage(1);
  return r;
}
function initCall(): i64 {
  const h = initHook;
  if (h === null) return CONTINUE;
  inInit = true;
  const rc = h();
  inInit = false;
  return rc == CONTINUE ? CONTINUE : FAIL;
}

function inputOk(len: i32): bool { return len >= 0 && len <= input.byteLength; }

/** Runs on_send on the record at input[off, off+len): 0, a status, EDITS
 * (the result is the edit log), or the changed record's (offset in out)
 * << 32 | size. The record reaches the hook undecoded (see Record). */
@inline function sendOne(off: i32, len: i32): i64 {
  const r = rec;
  r.reset(off, len);
  r.logEdits = (features & FEATURE_EDITS) != 0;
  editsEnd = editsAt + 4;
  if (editsEnd > editsCap) growEdits(0);
  editCount = 0;
  const rc = onSendHook!(r);
  if (r.malformed) return fail(decodeError!);
  if (rc == DROP || rc == FAIL) return rc;
  if (rc != CONTINUE) return fail("kpipe: on_send returned an unknown status");
  if (!r.changed) return 0;
  if (r.logEdits && !r.whole) {
    store<u32>(changetype<usize>(edits) + <usize>editsAt, 0x80000000 | editCount);
    return EDITS;
  }
  if (!r.decode()) return fail(decodeError!);
  const start = encodeToOut(r);
  return slice(start, outLen - start);
}

/** What sendOne returns for a record whose result is the edit log, which
 * the caller returns where it is. */
const EDITS: i64 = 1;

/** Marks a batch result in edits, not in out, until the results become
 * addresses. Copying each record's log to out instead cost 48 more
 * instructions per record in batches of 64 (wasmhost's
 * BenchmarkSDKExamples, assemblyscript/stamp/on_send/64), against 17 that
 * single calls pay for the log's start (BenchmarkSDKStampParts, as-stamp). */
const IN_EDITS: i64 = 1 << 62;

export function kpipe_on_send(len: i32): i64 {
  const r = onSendCall(len);
  collectGarbage(1);
  return r;
}
@inline function onSendCall(len: i32): i64 {
  if (onSendHook === null) return fail("kpipe: no interceptor is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  outLen = 0;
  editsAt = 0;
  const r = sendOne(0, len);
  if (r == EDITS) return slice(changetype<usize>(edits), editsEnd);
  return r > 0 ? r + slice(changetype<usize>(out), 0) : r;
}

/** Checks that input[0:len] holds exactly count entries of prefix bytes
 * ending in a u32 size. */
function batchOk(count: i32, len: i32, prefix: i32): bool {
  if (count < 1 || !inputOk(len)) return false;
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (len - off < prefix) return false;
    const size = load<u32>(changetype<usize>(input) + <usize>(off + prefix - 4));
    off += prefix;
    if (<u64>size > <u64>(len - off)) return false;
    off += <i32>size;
  }
  return off == len;
}

export function kpipe_on_send_batch(count: i32, len: i32): i64 {
  const r = onSendBatchCall(count, len);
  collectGarbage(count > 0 ? count : 1);
  return r;
}
function onSendBatchCall(count: i32, len: i32): i64 {
  if (onSendHook === null) return fail("kpipe: no interceptor is registered");
  if (!batchOk(count, len, 4)) return fail("kpipe: malformed on_send batch");
  ensureResults(8 * count);
  outLen = 0;
  editsAt = 0;
  let off = 0;
  let any = false;
  for (let i = 0; i < count; i++) {
    const size = load<i32>(changetype<usize>(input) + <usize>off);
    let r = sendOne(off + 4, size);
    if (r == EDITS) {
      r = IN_EDITS | slice(editsAt, editsEnd - editsAt);
      editsAt = editsEnd;
    }
    off += 4 + size;
    if (r != 0) any = true;
    store<i64>(changetype<usize>(results) + <usize>(8 * i), r);
  }
  if (!any) return 0;
  // out and edits may have moved while they grew: the results become
  // addresses now.
  const outBase = slice(changetype<usize>(out), 0);
  const editsBase = slice(changetype<usize>(edits), 0) - IN_EDITS;
  for (let i = 0; i < count; i++) {
    const p = changetype<usize>(results) + <usize>(8 * i);
    const r = load<i64>(p);
    if (r > 0) store<i64>(p, r + ((r & IN_EDITS) != 0 ? editsBase : outBase));
  }
  return slice(changetype<usize>(results), 8 * count);
}

function ackOne(off: i32, len: i32): i64 {
  if (len < 12) return fail("kpipe: acknowledgement shorter than its fixed part");
  const base = changetype<usize>(input) + <usize>off;
  const a = new Ack();
  a.offset = load<i64>(base);
  const elen = load<i32>(base, 8);
  if (elen < 0 || elen > len - 12) return fail("kpipe: malformed acknowledgement error");
  a.error = String.UTF8.decodeUnsafe(base + 12, elen);
  const rest = off + 12 + elen;
  const restLen = len - 12 - elen;
  let r: Record | null = null;
  if ((features & FEATURE_ACK_NO_RECORD) != 0) {
    if (restLen != 12) return fail("kpipe: malformed acknowledgement");
    a.partition = load<i32>(changetype<usize>(input) + <usize>rest);
    a.timestamp = load<i64>(changetype<usize>(input) + <usize>rest, 4);
  } else {
    r = decodeAt(rest, restLen);
    if (r === null) return fail(decodeError!);
    a.partition = r.hasPartition ? r.partition : -1;
    a.timestamp = r.hasTimestamp ? r.timestamp : -1;
  }
  return onAckHook!(r, a) == CONTINUE ? 0 : FAIL;
}

export function kpipe_on_ack(len: i32): i64 {
  const r = onAckCall(len);
  collectGarbage(1);
  return r;
}
function onAckCall(len: i32): i64 {
  if (onAckHook === null) return fail("kpipe: no on_ack hook is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  return ackOne(0, len);
}

export function kpipe_on_ack_batch(count: i32, len: i32): i64 {
  const r = onAckBatchCall(count, len);
  collectGarbage(count > 0 ? count : 1);
  return r;
}
function onAckBatchCall(count: i32, len: i32): i64 {
  if (onAckHook === null) return fail("kpipe: no on_ack hook is registered");
  if (!batchOk(count, len, 4)) return fail("kpipe: malformed on_ack batch");
  let off = 0;
  let result: i64 = 0;
  for (let i = 0; i < count; i++) {
    const size = load<i32>(changetype<usize>(input) + <usize>off);
    if (ackOne(off + 4, size) != 0) result = FAIL;
    off += 4 + size;
  }
  return result;
}

function partitionOne(off: i32, len: i32, n: i32): i32 {
  const r = (features & FEATURE_PARTITION_KEY) != 0 ? decodeKeyAt(off, len) : decodeAt(off, len);
  if (r === null) return <i32>fail(decodeError!);
  const p = partitionHook!(r, n);
  if ((p >= 0 && p < n) || p == DEFAULT_PARTITION || p == FAIL) return p;
  return <i32>fail("kpipe: partition out of range");
}

export function kpipe_partition(n: i32, len: i32): i64 {
  const r = partitionCall(n, len);
  collectGarbage(1);
  return r;
}
function partitionCall(n: i32, len: i32): i64 {
  if (partitionHook === null) return fail("kpipe: no partitioner is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  return partitionOne(0, len, n);
}

export function kpipe_partition_batch(count: i32, len: i32): i64 {
  const r = partitionBatchCall(count, len);
  collectGarbage(count > 0 ? count : 1);
  return r;
}
function partitionBatchCall(count: i32, len: i32): i64 {
  if (partitionHook === null) return fail("kpipe: no partitioner is registered");
  if (!batchOk(count, len, 8)) return fail("kpipe: malformed partition batch");
  ensureResults(4 * count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const n = load<i32>(changetype<usize>(input) + <usize>off);
    const size = load<i32>(changetype<usize>(input) + <usize>off, 4);
    store<i32>(changetype<usize>(results) + <usize>(4 * i), partitionOne(off + 8, size, n));
    off += 8 + size;
  }
  return slice(changetype<usize>(results), 4 * count);
}

export function kpipe_serialize(target: i32, len: i32): i64 {
  const r = serializeCall(target, len);
  collectGarbage(1);
  return r;
}
function serializeCall(target: i32, len: i32): i64 {
  if (serializeHook === null) return fail("kpipe: no serializer is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  if (target != TARGET_KEY && target != TARGET_VALUE) return fail("kpipe: unknown serializer target");
  const r = decodeAt(0, len);
  if (r === null) return fail(decodeError!);
  serializeFailed = false;
  const v = serializeHook!(target, r);
  if (serializeFailed) return FAIL;
  if (v === null) return NULL;
  if (v.length == 0) return 0;
  outLen = 0;
  ensureOut(v.length);
  memory.copy(changetype<usize>(out), v.dataStart, v.length);
  return slice(changetype<usize>(out), v.length);
}

// The consume side (ABI version 2, section 10): consume interceptors, which
// see, change or drop every record a consumer fetched before the application
// does, and deserializers. A plugin registers them and re-exports
// kpipe_abi_v2 (which these kinds need) and kpipe_on_consume or
// kpipe_deserialize, beside the exports above.

export const KIND_CONSUME_INTERCEPTOR: i32 = 8;
export const KIND_DESERIALIZER: i32 = 16;

let onConsumeHook: ((r: Record, offset: i64) => i32) | null = null;
let deserializeHook: ((target: i32, r: Record, offset: i64) => Uint8Array | null) | null = null;

/** on_consume gets the fetched record (its partition set) and its offset; it
 * changes the record through the setters (the host takes its key, value,
 * headers and timestamp, and keeps its topic, partition and offset) and
 * returns CONTINUE, DROP, or FAIL after setError. */
export function registerConsumeInterceptor(onConsume: (r: Record, offset: i64) => i32): void { onConsumeHook = onConsume; }
/** deserialize returns the key or value the application reads (null for
 * null), or calls failDeserialize and returns null. */
export function registerDeserializer(deserialize: (target: i32, r: Record, offset: i64) => Uint8Array | null): void { deserializeHook = deserialize; }
/** Fails the current deserialize call with msg. */
export function failDeserialize(msg: string): void { failSerialize(msg); }

function consumeKinds(): i32 {
  let k = 0;
  if (onConsumeHook !== null) k |= KIND_CONSUME_INTERCEPTOR;
  if (deserializeHook !== null) k |= KIND_DESERIALIZER;
  return k;
}

export function kpipe_abi_v2(): void {}

/** The offset of the record kpipe_on_consume runs on, for consumeThrough. */
let consumeOffset: i64 = 0;

/** Runs the consume hook where sendOne runs an on_send hook, so that the
 * record's setters, edits and encoding work as on the producer side. */
function consumeThrough(r: Record): i32 { return onConsumeHook!(r, consumeOffset); }

export function kpipe_on_consume(len: i32): i64 {
  const r = onConsumeCall(len);
  collectGarbage(1);
  return r;
}
function onConsumeCall(len: i32): i64 {
  if (onConsumeHook === null) return fail("kpipe: no consume interceptor is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  if (len < 8) return fail("kpipe: consumed record without its offset");
  consumeOffset = load<i64>(changetype<usize>(input));
  const saved = onSendHook;
  onSendHook = consumeThrough;
  outLen = 0;
  editsAt = 0;
  const r = sendOne(8, len - 8);
  onSendHook = saved;
  if (r == EDITS) return slice(changetype<usize>(edits), editsEnd);
  return r > 0 ? r + slice(changetype<usize>(out), 0) : r;
}

export function kpipe_deserialize(target: i32, len: i32): i64 {
  const r = deserializeCall(target, len);
  collectGarbage(1);
  return r;
}
function deserializeCall(target: i32, len: i32): i64 {
  if (deserializeHook === null) return fail("kpipe: no deserializer is registered");
  if (!inputOk(len)) return fail("kpipe: input longer than the buffer");
  if (len < 8) return fail("kpipe: consumed record without its offset");
  if (target != TARGET_KEY && target != TARGET_VALUE) return fail("kpipe: unknown deserializer target");
  const r = decodeAt(8, len - 8);
  if (r === null) return fail(decodeError!);
  serializeFailed = false;
  const v = deserializeHook!(target, r, load<i64>(changetype<usize>(input)));
  if (serializeFailed) return FAIL;
  if (v === null) return NULL;
  if (v.length == 0) return 0;
  outLen = 0;
  ensureOut(v.length);
  memory.copy(changetype<usize>(out), v.dataStart, v.length);
  return slice(changetype<usize>(out), v.length);
}
