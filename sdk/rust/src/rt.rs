//! The runtime behind [`crate::export_plugin!`]: the input buffer and the
//! dispatch of each ABI export to the plugin's hooks. Not for direct use.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::mem::ManuallyDrop;

#[path = "consume.rs"]
mod consume;
pub use consume::{deserialize, on_consume};

use crate::codec::{decode_ack, decode_key, decode_record, encode_record, get_u32, Header};
use crate::host::set_error;
use crate::{Error, Plugin, Record, RecordFields, Target, Verdict, FEATURE_ACK_NO_RECORD, FEATURE_EDITS, FEATURE_PARTITION_KEY};

const OK: i64 = 0;
const DROP: i64 = -1;
const FAIL: i64 = -2;
const NULL: i64 = -3;
const DEFAULT_PARTITION: i64 = -4;

/// A per-instance global. A WebAssembly instance runs one call at a time, on
/// one thread, so the value is never shared.
pub struct Global<T>(UnsafeCell<Option<T>>);

unsafe impl<T> Sync for Global<T> {}

impl<T: Default> Global<T> {
    pub const fn new() -> Self {
        Global(UnsafeCell::new(None))
    }

    /// The value, created by `Default` on first use.
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut T {
        // SAFETY: one call at a time per instance, and the hooks do not
        // reenter the runtime.
        unsafe { (*self.0.get()).get_or_insert_with(T::default) }
    }
}

/// The runtime's buffers and the features the instance enabled.
struct State {
    input: Vec<u8>,
    out: Vec<u8>,
    results: Vec<u8>,
    /// The header list that the records of on_send and on_consume borrow
    /// and give back, empty, with the capacity earlier records gave it: a
    /// hook that reads a record's headers then allocates nothing per
    /// record, which took about 0.66 of the time of allocating them
    /// (wasmhost's BenchmarkSDKStampRatios, rust, when every record was
    /// decoded).
    headers: Vec<Header<'static>>,
    features: u64,
    in_init: bool,
}

impl State {
    const fn new() -> Self {
        State { input: Vec::new(), out: Vec::new(), results: Vec::new(), headers: Vec::new(), features: 0, in_init: false }
    }
}

/// The runtime's state, a per-instance global like [`Global`], but made
/// at compile time: reaching it costs no check whether it exists.
struct StateCell(UnsafeCell<State>);

unsafe impl Sync for StateCell {}

impl StateCell {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut State {
        // SAFETY: as Global::get.
        unsafe { &mut *self.0.get() }
    }
}

static STATE: StateCell = StateCell(UnsafeCell::new(State::new()));

pub(crate) fn features_enabled(got: u64) {
    let st = STATE.get();
    if st.in_init {
        st.features |= got;
    }
}

fn fail(e: Error) -> i64 {
    set_error(&e.0);
    FAIL
}

/// Packs a slice of guest memory as `ptr << 32 | len`. Natively (in tests)
/// addresses do not fit in 32 bits, and every slice starts at address 0:
/// a result is then an offset into the buffer it names.
fn slice(p: *const u8, n: usize) -> i64 {
    #[cfg(target_arch = "wasm32")]
    let addr = p as usize as u64;
    #[cfg(not(target_arch = "wasm32"))]
    let addr = {
        let _ = p;
        0u64
    };
    (addr << 32 | n as u64) as i64
}

/// `kpipe_buffer`.
pub fn buffer(size: i32) -> i32 {
    if size < 0 {
        return 0;
    }
    let st = STATE.get();
    let size = (size as usize).max(1);
    if st.input.len() < size {
        st.input = Vec::new(); // let the old buffer go first
        st.input.resize(size, 0);
    }
    st.input.as_ptr() as usize as i32
}

fn input(buf: &[u8], len: i32) -> Result<&[u8], Error> {
    if len < 0 || len as usize > buf.len() {
        return Err(Error::from("kpipe: input longer than the buffer"));
    }
    Ok(&buf[..len as usize])
}

/// `kpipe_init`.
pub fn init<P: Plugin>(p: &mut P) -> i64 {
    STATE.get().in_init = true;
    let r = p.init();
    STATE.get().in_init = false;
    match r {
        Ok(()) => OK,
        Err(e) => fail(e),
    }
}

/// Runs a hook that may change the record encoded in `b`, which it gets
/// undecoded (`Record` decodes it on first read). A changed record is
/// appended to `out`, as the hook's edit list with `edits`
/// (`FEATURE_EDITS`), else whole, and the result is its offset and length
/// in `out` (made an address by the caller). The setters write the edit
/// list straight into `out`, after room for its count.
pub(crate) fn change_one(b: &[u8], out: &mut Vec<u8>, headers: &mut Vec<Header<'static>>, edits: bool, hook: impl FnOnce(&mut Record) -> Result<Verdict, Error>) -> i64 {
    let start = out.len();
    if edits {
        out.extend_from_slice(&[0; 4]);
    }
    let mut r = ManuallyDrop::new(Record::lazy(b, Some(headers), Some(out), edits));
    let verdict = hook(&mut r);
    let changed = r.changed();
    let count = r.edits();
    if count.is_none() && changed && matches!(verdict, Ok(Verdict::Continue)) {
        // Sent whole: decoded now, while the edits logged before can
        // still be replayed from the log.
        let _: &RecordFields = &r;
    }
    let out = match r.take_log() {
        Some(o) => o,
        None => unreachable!(),
    };
    let mut res = match verdict {
        Err(e) => fail(e),
        Ok(Verdict::Drop) => DROP,
        Ok(Verdict::Continue) if !changed => OK,
        Ok(Verdict::Continue) => {
            match count {
                Some(n) => out[start..start + 4].copy_from_slice(&(0x8000_0000u32 | n).to_le_bytes()),
                None => {
                    out.truncate(start);
                    encode_record(&r, out);
                }
            }
            ((start as u64) << 32 | (out.len() - start) as u64) as i64
        }
    };
    // A record read for the first time, by the hook or just above, was
    // decoded only then: a malformed one fails whatever the hook said.
    if let Some(e) = r.malformed() {
        res = fail(Error::from(e));
    }
    if res <= 0 {
        out.truncate(start);
    }
    if r.give_back_headers() {
        // SAFETY: r is not used after; an undecoded one owns nothing.
        unsafe { ManuallyDrop::drop(&mut r) };
    }
    res
}

/// `kpipe_on_send`.
pub fn on_send<P: Plugin>(p: &mut P, len: i32) -> i64 {
    let st = STATE.get();
    let b = match input(&st.input, len) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    st.out.clear();
    let r = change_one(b, &mut st.out, &mut st.headers, st.features & FEATURE_EDITS != 0, |r| p.on_send(r));
    if r > 0 {
        return r + slice(st.out.as_ptr(), 0);
    }
    r
}

/// Checks that the input holds exactly count entries of prefix bytes ending
/// in a u32 size, and returns their (prefix offset, entry) pairs' offsets.
fn check_batch(b: &[u8], count: i32, prefix: usize) -> Result<(), Error> {
    let bad = || Error::from("kpipe: malformed batch");
    if count < 1 {
        return Err(bad());
    }
    let mut off = 0usize;
    for _ in 0..count {
        if b.len() - off < prefix {
            return Err(bad());
        }
        let size = get_u32(b, off + prefix - 4) as usize;
        off += prefix;
        if size > b.len() - off {
            return Err(bad());
        }
        off += size;
    }
    if off != b.len() {
        return Err(bad());
    }
    Ok(())
}

/// `kpipe_on_send_batch`.
pub fn on_send_batch<P: Plugin>(p: &mut P, count: i32, len: i32) -> i64 {
    let st = STATE.get();
    let b = match input(&st.input, len).and_then(|b| check_batch(b, count, 4).map(|_| b)) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    st.out.clear();
    st.results.clear();
    let (mut off, mut any) = (0usize, false);
    for _ in 0..count {
        let size = get_u32(b, off) as usize;
        let r = change_one(&b[off + 4..off + 4 + size], &mut st.out, &mut st.headers, st.features & FEATURE_EDITS != 0, |r| p.on_send(r));
        off += 4 + size;
        any |= r != OK;
        st.results.extend_from_slice(&r.to_le_bytes());
    }
    if !any {
        return OK;
    }
    // The changed records are in out, which may have moved while it grew:
    // their results become addresses only now.
    let base = slice(st.out.as_ptr(), 0);
    for chunk in st.results.chunks_exact_mut(8) {
        let r = i64::from_le_bytes(chunk.try_into().unwrap());
        if r > 0 {
            chunk.copy_from_slice(&(r + base).to_le_bytes());
        }
    }
    slice(st.results.as_ptr(), st.results.len())
}

fn ack_one<P: Plugin>(p: &mut P, b: &[u8], lean: bool) -> i64 {
    let res = decode_ack(b, lean).and_then(|(ack, r)| p.on_ack(r.as_ref(), &ack));
    match res {
        Ok(()) => OK,
        Err(e) => fail(e),
    }
}

/// `kpipe_on_ack`.
pub fn on_ack<P: Plugin>(p: &mut P, len: i32) -> i64 {
    let st = STATE.get();
    let lean = st.features & FEATURE_ACK_NO_RECORD != 0;
    match input(&st.input, len) {
        Ok(b) => ack_one(p, b, lean),
        Err(e) => fail(e),
    }
}

/// `kpipe_on_ack_batch`.
pub fn on_ack_batch<P: Plugin>(p: &mut P, count: i32, len: i32) -> i64 {
    let st = STATE.get();
    let lean = st.features & FEATURE_ACK_NO_RECORD != 0;
    let b = match input(&st.input, len).and_then(|b| check_batch(b, count, 4).map(|_| b)) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let (mut off, mut result) = (0usize, OK);
    for _ in 0..count {
        let size = get_u32(b, off) as usize;
        if ack_one(p, &b[off + 4..off + 4 + size], lean) != OK {
            result = FAIL;
        }
        off += 4 + size;
    }
    result
}

fn partition_one<P: Plugin>(p: &mut P, b: &[u8], n: i32, key_only: bool) -> i64 {
    let r = if key_only { decode_key(b) } else { decode_record(b) };
    match r.and_then(|r| p.partition(&r, n)) {
        Ok(None) => DEFAULT_PARTITION,
        Ok(Some(x)) if x >= 0 && x < n => x as i64,
        Ok(Some(_)) => fail(Error::from("kpipe: partition out of range")),
        Err(e) => fail(e),
    }
}

/// `kpipe_partition`.
pub fn partition<P: Plugin>(p: &mut P, n: i32, len: i32) -> i64 {
    let st = STATE.get();
    let key_only = st.features & FEATURE_PARTITION_KEY != 0;
    match input(&st.input, len) {
        Ok(b) => partition_one(p, b, n, key_only),
        Err(e) => fail(e),
    }
}

/// `kpipe_partition_batch`.
pub fn partition_batch<P: Plugin>(p: &mut P, count: i32, len: i32) -> i64 {
    let st = STATE.get();
    let key_only = st.features & FEATURE_PARTITION_KEY != 0;
    let b = match input(&st.input, len).and_then(|b| check_batch(b, count, 8).map(|_| b)) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    st.results.clear();
    let mut off = 0usize;
    for _ in 0..count {
        let n = get_u32(b, off) as i32;
        let size = get_u32(b, off + 4) as usize;
        let r = partition_one(p, &b[off + 8..off + 8 + size], n, key_only) as i32;
        st.results.extend_from_slice(&r.to_le_bytes());
        off += 8 + size;
    }
    slice(st.results.as_ptr(), st.results.len())
}

/// `kpipe_serialize`.
pub fn serialize<P: Plugin>(p: &mut P, target: i32, len: i32) -> i64 {
    let st = STATE.get();
    let target = match target {
        0 => Target::Key,
        1 => Target::Value,
        _ => return fail(Error::from("kpipe: unknown serializer target")),
    };
    let b = match input(&st.input, len) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let r = match decode_record(b) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match p.serialize(target, &r) {
        Err(e) => fail(e),
        Ok(None) => NULL,
        Ok(Some(v)) if v.is_empty() => OK,
        Ok(Some(v)) => {
            st.out.clear();
            st.out.extend_from_slice(&v);
            slice(st.out.as_ptr(), st.out.len())
        }
    }
}

/// For tests: the results array of the last batch call.
#[doc(hidden)]
pub fn last_results() -> &'static [u8] {
    &STATE.get().results
}

/// For tests: the records changed by the last on_send call.
#[doc(hidden)]
pub fn last_output() -> &'static [u8] {
    &STATE.get().out
}

/// For tests: writes `b` to the input buffer.
#[doc(hidden)]
pub fn write_input(b: &[u8]) {
    buffer(b.len() as i32);
    STATE.get().input[..b.len()].copy_from_slice(b);
}

/// For tests: sets the enabled features.
#[doc(hidden)]
pub fn set_features(f: u64) {
    STATE.get().features = f;
}
