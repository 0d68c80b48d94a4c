//! The record and acknowledgement encodings (ABI sections 4.1, 4.2, 8.1).

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::cell::{Cell, OnceCell};
use core::ops::{Deref, DerefMut};

use crate::Error;

/// Bytes a setter accepts: byte strings, strings, vectors, borrowed or owned.
pub trait IntoBytes<'a> {
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> IntoBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a, const N: usize> IntoBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(&self[..])
    }
}

impl<'a> IntoBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> IntoBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> IntoBytes<'a> for alloc::string::String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl<'a> IntoBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}

/// A record header. Names may repeat; a value may be null (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: Cow<'a, [u8]>,
    pub value: Option<Cow<'a, [u8]>>,
}

/// recycle turns an empty header list of one lifetime into one of another,
/// keeping its allocation: collecting a vector's own iterator into a vector
/// of an element of the same layout reuses its buffer.
pub(crate) fn recycle<'a, 'b>(mut v: Vec<Header<'a>>) -> Vec<Header<'b>> {
    v.clear();
    v.into_iter().map(|_| -> Header<'b> { unreachable!() }).collect()
}

/// The fields of a record (ABI section 4.1), which a [`Record`]
/// dereferences to: read them as `record.key`, `record.headers` and so on.
/// Build a record of your own with `Record::from(RecordFields { .. })`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFields<'a> {
    pub topic: Cow<'a, [u8]>,
    /// `None` is a null key, which differs from an empty one.
    pub key: Option<Cow<'a, [u8]>>,
    /// `None` is a null value: a tombstone.
    pub value: Option<Cow<'a, [u8]>>,
    pub headers: Vec<Header<'a>>,
    /// The partition the record names, if any.
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch, if set.
    pub timestamp: Option<i64>,
}

impl<'a> RecordFields<'a> {
    /// The value of the first header named `name`; `Some(None)` if its value
    /// is null, `None` if there is no such header.
    pub fn header(&self, name: &[u8]) -> Option<Option<&[u8]>> {
        self.headers.iter().find(|h| h.name.as_ref() == name).map(|h| h.value.as_deref())
    }

    /// The change of set header (edit op 1): the first header named `name`
    /// gets `value` and the later ones go, or the header is appended.
    fn put_header(&mut self, name: Cow<'a, [u8]>, value: Option<Cow<'a, [u8]>>) {
        match self.headers.iter().position(|h| h.name == name) {
            Some(i) => {
                self.headers[i].value = value;
                let mut j = 0;
                self.headers.retain(|h| {
                    j += 1;
                    j <= i + 1 || h.name != name
                });
            }
            None => self.headers.push(Header { name, value }),
        }
    }

    /// The change of remove header (edit op 3); returns how many went.
    fn remove_headers(&mut self, name: &[u8]) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| h.name.as_ref() != name);
        before - self.headers.len()
    }

    /// Applies the edit list `log` (ABI 8.2, without its count), which
    /// this SDK's setters wrote: the setters' changes, in their order.
    /// The bytes are copied, since the log is not kept.
    fn replay(&mut self, mut log: &[u8]) {
        fn take<'b>(log: &mut &'b [u8], n: usize) -> &'b [u8] {
            let (head, tail) = log.split_at(n);
            *log = tail;
            head
        }
        fn bytes(log: &mut &[u8]) -> Option<Cow<'static, [u8]>> {
            let n = get_u32(take(log, 4), 0);
            if n == u32::MAX {
                return None;
            }
            Some(Cow::Owned(take(log, n as usize).to_vec()))
        }
        while let Some((&op, rest)) = log.split_first() {
            log = rest;
            match op {
                1 | 2 => {
                    let name = bytes(&mut log).unwrap_or_default();
                    let value = bytes(&mut log);
                    if op == 1 {
                        self.put_header(name, value);
                    } else {
                        self.headers.push(Header { name, value });
                    }
                }
                3 => {
                    let name = bytes(&mut log).unwrap_or_default();
                    self.remove_headers(&name);
                }
                4 => self.key = bytes(&mut log),
                5 => self.value = bytes(&mut log),
                6 => self.partition = Some(get_u32(take(&mut log, 4), 0) as i32),
                7 => self.partition = None,
                8 => self.timestamp = u64_at(take(&mut log, 8), 0).map(|t| t as i64),
                9 => self.timestamp = None,
                _ => self.topic = bytes(&mut log).unwrap_or_default(),
            }
        }
    }
}

/// A record (ABI section 4.1): its fields are those of [`RecordFields`],
/// which it dereferences to. Its bytes borrow the host's input, which the
/// next call overwrites: copy what you keep. Change it through the
/// setters, which make the SDK send it back to the host; after changing a
/// field directly, call [`Record::mark_changed`].
///
/// The record that `on_send` and `on_consume` get is decoded on first read: with
/// `FEATURE_EDITS`, setters called before anything reads it only log their
/// edit, so a hook that writes without reading (a header stamp) never
/// decodes it. The first read decodes it and applies the edits logged so
/// far; a record the host sent malformed then reads as empty, and the SDK
/// fails it whatever the hook returns.
pub struct Record<'a> {
    /// The encoding the fields are decoded from on first read.
    input: &'a [u8],
    fields: OnceCell<RecordFields<'a>>,
    /// Why decoding `input` failed.
    malformed: Cell<Option<&'static str>>,
    /// An empty header list that decoding fills instead of allocating one,
    /// and where the runtime takes it back.
    spare: Cell<Option<&'a mut Vec<Header<'static>>>>,
    changed: bool,
    /// The edit log (ABI 8.2), kept while `FEATURE_EDITS` is on: the
    /// setters append their edit to `log` (the runtime's output, where the
    /// result goes) after `log_at`. `whole` means that the record is sent
    /// whole if changed: edits are off, or `mark_changed` was called.
    log: Option<&'a mut Vec<u8>>,
    log_at: usize,
    whole: bool,
    edit_count: u32,
}

impl<'a> From<RecordFields<'a>> for Record<'a> {
    fn from(f: RecordFields<'a>) -> Self {
        let r = Record::lazy(&[], None, None, false);
        let _ = r.fields.set(f);
        r
    }
}

impl Default for Record<'_> {
    fn default() -> Self {
        Record::from(RecordFields::default())
    }
}

impl<'a> Deref for Record<'a> {
    type Target = RecordFields<'a>;

    fn deref(&self) -> &RecordFields<'a> {
        self.fields.get_or_init(|| self.decode())
    }
}

impl<'a> DerefMut for Record<'a> {
    fn deref_mut(&mut self) -> &mut RecordFields<'a> {
        self.fields_mut()
    }
}

/// A copy decoded (as the original reads), marked changed if the original
/// is; it logs no edits.
impl Clone for Record<'_> {
    fn clone(&self) -> Self {
        let mut r = Record::from(RecordFields::clone(self));
        r.input = self.input;
        r.malformed.set(self.malformed.get());
        r.changed = self.changed;
        r.whole = self.whole;
        r
    }
}

impl core::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Record").field("fields", &**self).field("changed", &self.changed).finish()
    }
}

/// Records are equal if their fields are and both or neither were changed.
impl PartialEq for Record<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other && self.changed == other.changed
    }
}

impl Eq for Record<'_> {}

impl<'a> Record<'a> {
    /// A record of the encoding `input`, decoded on first read into
    /// `headers` (empty) if given. With `log_edits`, the setters append
    /// their edits to `log` (`FEATURE_EDITS`), after the list's count that
    /// the runtime wrote; the runtime writes a changed record to `log`.
    pub(crate) fn lazy(input: &'a [u8], headers: Option<&'a mut Vec<Header<'static>>>, log: Option<&'a mut Vec<u8>>, log_edits: bool) -> Self {
        let log_at = log.as_ref().map_or(0, |l| l.len());
        Record {
            input,
            fields: OnceCell::new(),
            malformed: Cell::new(None),
            spare: Cell::new(headers),
            changed: false,
            log,
            log_at,
            whole: !log_edits,
            edit_count: 0,
        }
    }

    /// Decodes `input` and applies the edits logged so far.
    fn decode(&self) -> RecordFields<'a> {
        let mut spare = self.spare.take();
        let headers = match spare {
            Some(ref mut h) => recycle(core::mem::take(*h)),
            None => Vec::new(),
        };
        self.spare.set(spare);
        match decode_fields(self.input, headers) {
            Ok(mut f) => {
                if let (Some(log), true) = (&self.log, self.edit_count > 0) {
                    f.replay(&log[self.log_at..log.len()]);
                }
                f
            }
            Err(e) => {
                self.malformed.set(Some(e));
                RecordFields::default()
            }
        }
    }

    fn fields_mut(&mut self) -> &mut RecordFields<'a> {
        if self.fields.get().is_none() {
            let f = self.decode();
            let _ = self.fields.set(f);
        }
        match self.fields.get_mut() {
            Some(f) => f,
            None => unreachable!(),
        }
    }

    /// Why the record's encoding could not be decoded, if it was read and
    /// could not.
    pub(crate) fn malformed(&self) -> Option<&'static str> {
        self.malformed.get()
    }

    /// The count of the edits logged, if they are all the changes made.
    pub(crate) fn edits(&self) -> Option<u32> {
        if self.whole {
            return None;
        }
        Some(self.edit_count)
    }

    /// Takes the log from the record, which logs no more.
    pub(crate) fn take_log(&mut self) -> Option<&'a mut Vec<u8>> {
        self.whole = true;
        self.log.take()
    }

    /// Gives a decoded record's header list back, emptied, to where
    /// decoding took it from; returns whether the record was decoded. An
    /// undecoded record owns nothing: the runtime then skips dropping it,
    /// which would call its drop glue (wasmhost's BenchmarkSDKStampParts,
    /// rust-stamp).
    #[inline(always)]
    pub(crate) fn give_back_headers(&mut self) -> bool {
        match (self.fields.get_mut(), self.spare.get_mut()) {
            (None, _) => false,
            (Some(f), Some(spare)) => {
                **spare = recycle(core::mem::take(&mut f.headers));
                true
            }
            (Some(_), None) => true,
        }
    }

    /// Logs the edit op, if edits are logged, with its operands: `name`
    /// (a u32 length and the bytes), `bytes` (an i32 length, -1 for null,
    /// and the bytes) and `fixed`; returns whether that is all there is to
    /// do, the record not being decoded (its first read applies the log).
    #[inline(always)]
    fn edit(&mut self, op: u8, name: Option<&[u8]>, bytes: Option<Option<&[u8]>>, fixed: &[u8]) -> bool {
        self.changed = true;
        let log = match &mut self.log {
            Some(log) if !self.whole => log,
            _ => return false,
        };
        let len = |b: Option<&[u8]>| b.map_or(0, |b| b.len());
        let n = 1 + name.map_or(0, |b| 4 + b.len()) + bytes.map_or(0, |b| 4 + len(b)) + fixed.len();
        log.reserve(n);
        // One reserve and one length update per edit: the stamp's whole
        // edit is then a few stores (wasmhost's BenchmarkSDKStampParts,
        // rust-stamp).
        let at = log.len();
        let dst = &mut log.spare_capacity_mut()[..n];
        let mut put = |off: usize, b: &[u8]| {
            for (d, s) in dst[off..off + b.len()].iter_mut().zip(b) {
                d.write(*s);
            }
            off + b.len()
        };
        let mut off = put(0, &[op]);
        if let Some(b) = name {
            off = put(off, &(b.len() as u32).to_le_bytes());
            off = put(off, b);
        }
        if let Some(b) = bytes {
            off = put(off, &b.map_or(u32::MAX, |b| b.len() as u32).to_le_bytes());
            off = put(off, b.unwrap_or_default());
        }
        put(off, fixed);
        // SAFETY: the n bytes after the length were written just above.
        unsafe { log.set_len(at + n) };
        self.edit_count += 1;
        self.fields.get().is_none()
    }

    /// Sets the first header named `name` to `value` and removes the later
    /// ones of that name, or appends the header if there is none.
    #[inline]
    pub fn set_header(&mut self, name: impl IntoBytes<'a>, value: impl IntoBytes<'a>) {
        let (name, value) = (name.into_bytes(), value.into_bytes());
        if !self.edit(1, Some(&name), Some(Some(&value)), &[]) {
            self.put_header(name, Some(value));
        }
    }

    /// Like `set_header`, with a null value.
    pub fn set_header_null(&mut self, name: impl IntoBytes<'a>) {
        let name = name.into_bytes();
        if !self.edit(1, Some(&name), Some(None), &[]) {
            self.put_header(name, None);
        }
    }

    /// set_header's change of the decoded record, apart so that a setter
    /// that only logs its edit is a few instructions inlined in the hook.
    #[inline(never)]
    fn put_header(&mut self, name: Cow<'a, [u8]>, value: Option<Cow<'a, [u8]>>) {
        self.fields_mut().put_header(name, value);
    }

    /// Appends a header, whether or not one of that name exists.
    pub fn append_header(&mut self, name: impl IntoBytes<'a>, value: Option<Cow<'a, [u8]>>) {
        let name = name.into_bytes();
        if !self.edit(2, Some(&name), Some(value.as_deref()), &[]) {
            self.fields_mut().headers.push(Header { name, value });
        }
    }

    /// Removes every header named `name` and returns how many there were.
    /// It reads the headers, so it decodes the record.
    pub fn remove_header(&mut self, name: &[u8]) -> usize {
        let removed = self.fields_mut().remove_headers(name);
        if removed > 0 {
            self.edit(3, Some(name), None, &[]);
        }
        removed
    }

    pub fn set_topic(&mut self, topic: impl IntoBytes<'a>) {
        let topic = topic.into_bytes();
        if !self.edit(10, Some(&topic), None, &[]) {
            self.fields_mut().topic = topic;
        }
    }

    /// Sets the key; `None` makes it null.
    pub fn set_key(&mut self, key: Option<Cow<'a, [u8]>>) {
        if !self.edit(4, None, Some(key.as_deref()), &[]) {
            self.fields_mut().key = key;
        }
    }

    /// Sets the value; `None` makes the record a tombstone.
    pub fn set_value(&mut self, value: Option<Cow<'a, [u8]>>) {
        if !self.edit(5, None, Some(value.as_deref()), &[]) {
            self.fields_mut().value = value;
        }
    }

    /// Sets or clears (`None`) the record's partition.
    pub fn set_partition(&mut self, partition: Option<i32>) {
        let logged = match partition {
            Some(p) => self.edit(6, None, None, &p.to_le_bytes()),
            None => self.edit(7, None, None, &[]),
        };
        if !logged {
            self.fields_mut().partition = partition;
        }
    }

    /// Sets or clears (`None`) the timestamp, in milliseconds since the epoch.
    pub fn set_timestamp(&mut self, millis: Option<i64>) {
        let logged = match millis {
            Some(t) => self.edit(8, None, None, &t.to_le_bytes()),
            None => self.edit(9, None, None, &[]),
        };
        if !logged {
            self.fields_mut().timestamp = millis;
        }
    }

    /// Tells the SDK that a field was changed directly.
    pub fn mark_changed(&mut self) {
        self.changed = true;
        self.whole = true;
    }

    /// Whether a setter (or `mark_changed`) changed the record.
    pub fn changed(&self) -> bool {
        self.changed
    }
}

/// An acknowledgement (ABI sections 4.2 and 8.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The record's offset, -1 if it failed.
    pub offset: i64,
    /// Why it failed; empty if it was delivered.
    pub error: &'a [u8],
    /// The partition it was written to, -1 if none.
    pub partition: i32,
    /// Its timestamp in milliseconds since the epoch, -1 if none.
    pub timestamp: i64,
}

impl Ack<'_> {
    pub fn delivered(&self) -> bool {
        self.error.is_empty() && self.offset >= 0
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u32_at(b, off)? as u64 | (u32_at(b, off + 4)? as u64) << 32)
}

pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32_at(b, off).unwrap_or(0)
}

/// Reads a length-prefixed field at `*off`: `Some(None)` for a null one
/// (only if `nullable`), `None` if it is malformed.
fn field<'a>(b: &'a [u8], off: &mut usize, nullable: bool) -> Option<Option<&'a [u8]>> {
    let n = u32_at(b, *off)? as i32;
    *off += 4;
    if n == -1 && nullable {
        return Some(None);
    }
    if n < 0 {
        return None;
    }
    let v = b.get(*off..*off + n as usize)?;
    *off += n as usize;
    Some(Some(v))
}

/// Decodes a record's fields into `headers` (empty), which they borrow
/// from `b`, as `b` does; on a malformed encoding, says what is wrong.
fn decode_fields<'a>(b: &'a [u8], mut headers: Vec<Header<'a>>) -> Result<RecordFields<'a>, &'static str> {
    let flags = u32_at(b, 0).ok_or("kpipe: record shorter than its fixed part")?;
    if b.len() < 16 {
        return Err("kpipe: record shorter than its fixed part");
    }
    if flags & !3 != 0 {
        return Err("kpipe: reserved record flag bits are set");
    }
    let mut off = 16;
    let topic = field(b, &mut off, false).flatten().ok_or("kpipe: malformed topic")?;
    let key = field(b, &mut off, true).ok_or("kpipe: malformed key")?;
    let value = field(b, &mut off, true).ok_or("kpipe: malformed value")?;
    let count = u32_at(b, off).ok_or("kpipe: malformed header count")? as usize;
    off += 4;
    if count > (b.len() - off) / 8 {
        return Err("kpipe: header count does not fit the record");
    }
    headers.reserve(count);
    for _ in 0..count {
        let name = field(b, &mut off, false).flatten().ok_or("kpipe: malformed header name")?;
        let value = field(b, &mut off, true).ok_or("kpipe: malformed header value")?;
        headers.push(Header { name: Cow::Borrowed(name), value: value.map(Cow::Borrowed) });
    }
    if off != b.len() {
        return Err("kpipe: trailing bytes after the record");
    }
    Ok(RecordFields {
        topic: Cow::Borrowed(topic),
        key: key.map(Cow::Borrowed),
        value: value.map(Cow::Borrowed),
        headers,
        partition: if flags & 1 != 0 { Some(get_u32(b, 4) as i32) } else { None },
        timestamp: if flags & 2 != 0 { u64_at(b, 8).map(|t| t as i64) } else { None },
    })
}

/// Decodes a record; the record borrows `b`.
pub fn decode_record(b: &[u8]) -> Result<Record<'_>, Error> {
    Ok(Record::from(decode_fields(b, Vec::new())?))
}

/// Decodes the `FEATURE_PARTITION_KEY` input: a record with only a key.
pub(crate) fn decode_key(b: &[u8]) -> Result<Record<'_>, Error> {
    let mut off = 0;
    let key = field(b, &mut off, true).ok_or(Error::from("kpipe: malformed key input"))?;
    if off != b.len() {
        return Err(Error::from("kpipe: malformed key input"));
    }
    Ok(Record::from(RecordFields { key: key.map(Cow::Borrowed), ..RecordFields::default() }))
}

/// Decodes an acknowledgement; with `lean`, the `FEATURE_ACK_NO_RECORD`
/// encoding, which has no record.
pub(crate) fn decode_ack(b: &[u8], lean: bool) -> Result<(Ack<'_>, Option<Record<'_>>), Error> {
    let offset = u64_at(b, 0).ok_or(Error::from("kpipe: acknowledgement shorter than its fixed part"))? as i64;
    let elen = get_u32(b, 8) as usize;
    let error = b.get(12..12 + elen).ok_or(Error::from("kpipe: malformed acknowledgement error"))?;
    let rest = &b[12 + elen..];
    if lean {
        if rest.len() != 12 {
            return Err(Error::from("kpipe: malformed acknowledgement"));
        }
        let ack = Ack { offset, error, partition: get_u32(rest, 0) as i32, timestamp: u64_at(rest, 4).unwrap_or(0) as i64 };
        return Ok((ack, None));
    }
    let r = decode_record(rest)?;
    let ack = Ack { offset, error, partition: r.partition.unwrap_or(-1), timestamp: r.timestamp.unwrap_or(-1) };
    Ok((ack, Some(r)))
}

/// The size of a record's encoding.
pub fn record_size(r: &Record) -> usize {
    fields_size(r)
}

fn fields_size(r: &RecordFields) -> usize {
    let opt = |v: &Option<Cow<[u8]>>| v.as_ref().map_or(0, |v| v.len());
    32 + r.topic.len() + opt(&r.key) + opt(&r.value) + r.headers.iter().map(|h| 8 + h.name.len() + opt(&h.value)).sum::<usize>()
}

fn put_field(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(v) => {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
}

/// Appends the encoding of `r` to `out`.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    let r: &RecordFields = r;
    out.reserve(fields_size(r));
    let flags = r.partition.map_or(0, |_| 1u32) | r.timestamp.map_or(0, |_| 2u32);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&r.partition.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.timestamp.unwrap_or(0).to_le_bytes());
    put_field(out, Some(&r.topic));
    put_field(out, r.key.as_deref());
    put_field(out, r.value.as_deref());
    out.extend_from_slice(&(r.headers.len() as u32).to_le_bytes());
    for h in &r.headers {
        put_field(out, Some(&h.name));
        put_field(out, h.value.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let buf = [1u8, 2, 3];
        let mut v: Vec<Header<'_>> = Vec::with_capacity(8);
        v.push(Header { name: Cow::Borrowed(&buf[..]), value: None });
        let ptr = v.as_ptr() as usize;
        let w: Vec<Header<'static>> = recycle(v);
        assert!(w.is_empty() && w.capacity() >= 8 && w.as_ptr() as usize == ptr, "recycle allocated anew");
    }
}
