//! The record and acknowledgement encodings (ABI sections 4.1, 4.2, 8.1).

use alloc::borrow::Cow;
use alloc::vec::Vec;

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

/// A record (ABI section 4.1). Its bytes borrow the host's input, which the
/// next call overwrites: copy what you keep. Change it through the setters,
/// which make the SDK send it back to the host; after changing a field
/// directly, call [`Record::mark_changed`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
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
    changed: bool,
    /// The edit log (ABI 8.2), kept while `FEATURE_EDITS` is on: the
    /// setters append their edit; `whole` means a change it cannot express.
    pub(crate) log_edits: bool,
    pub(crate) whole: bool,
    pub(crate) edits: Vec<u8>,
    pub(crate) edit_count: u32,
}

fn put_len_bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

impl<'a> Record<'a> {
    /// The value of the first header named `name`; `Some(None)` if its value
    /// is null, `None` if there is no such header.
    pub fn header(&self, name: &[u8]) -> Option<Option<&[u8]>> {
        self.headers.iter().find(|h| h.name.as_ref() == name).map(|h| h.value.as_deref())
    }

    /// Sets the first header named `name` to `value` and removes the later
    /// ones of that name, or appends the header if there is none.
    pub fn set_header(&mut self, name: impl IntoBytes<'a>, value: impl IntoBytes<'a>) {
        self.put_header(name.into_bytes(), Some(value.into_bytes()));
    }

    /// Like `set_header`, with a null value.
    pub fn set_header_null(&mut self, name: impl IntoBytes<'a>) {
        self.put_header(name.into_bytes(), None);
    }

    /// Appends an edit of op to the log, with its operands written by f.
    fn edit(&mut self, op: u8, f: impl FnOnce(&mut Vec<u8>)) {
        if self.log_edits && !self.whole {
            self.edits.push(op);
            f(&mut self.edits);
            self.edit_count += 1;
        }
    }

    fn put_header(&mut self, name: Cow<'a, [u8]>, value: Option<Cow<'a, [u8]>>) {
        self.changed = true;
        self.edit(1, |e| {
            put_len_bytes(e, &name);
            put_field(e, value.as_deref());
        });
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

    /// Appends a header, whether or not one of that name exists.
    pub fn append_header(&mut self, name: impl IntoBytes<'a>, value: Option<Cow<'a, [u8]>>) {
        self.changed = true;
        let name = name.into_bytes();
        self.edit(2, |e| {
            put_len_bytes(e, &name);
            put_field(e, value.as_deref());
        });
        self.headers.push(Header { name, value });
    }

    /// Removes every header named `name` and returns how many there were.
    pub fn remove_header(&mut self, name: &[u8]) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| h.name.as_ref() != name);
        let removed = before - self.headers.len();
        if removed > 0 {
            self.changed = true;
            self.edit(3, |e| put_len_bytes(e, name));
        }
        removed
    }

    pub fn set_topic(&mut self, topic: impl IntoBytes<'a>) {
        self.topic = topic.into_bytes();
        self.changed = true;
        let t = self.topic.clone();
        self.edit(10, |e| put_len_bytes(e, &t));
    }

    /// Sets the key; `None` makes it null.
    pub fn set_key(&mut self, key: Option<Cow<'a, [u8]>>) {
        self.edit(4, |e| put_field(e, key.as_deref()));
        self.key = key;
        self.changed = true;
    }

    /// Sets the value; `None` makes the record a tombstone.
    pub fn set_value(&mut self, value: Option<Cow<'a, [u8]>>) {
        self.edit(5, |e| put_field(e, value.as_deref()));
        self.value = value;
        self.changed = true;
    }

    /// Sets or clears (`None`) the record's partition.
    pub fn set_partition(&mut self, partition: Option<i32>) {
        match partition {
            Some(p) => self.edit(6, |e| e.extend_from_slice(&p.to_le_bytes())),
            None => self.edit(7, |_| {}),
        }
        self.partition = partition;
        self.changed = true;
    }

    /// Sets or clears (`None`) the timestamp, in milliseconds since the epoch.
    pub fn set_timestamp(&mut self, millis: Option<i64>) {
        match millis {
            Some(t) => self.edit(8, |e| e.extend_from_slice(&t.to_le_bytes())),
            None => self.edit(9, |_| {}),
        }
        self.timestamp = millis;
        self.changed = true;
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

fn malformed(what: &'static str) -> Error {
    Error::from(what)
}

/// Decodes a record; the record borrows `b`.
pub fn decode_record(b: &[u8]) -> Result<Record<'_>, Error> {
    let flags = u32_at(b, 0).ok_or(malformed("kpipe: record shorter than its fixed part"))?;
    if b.len() < 16 {
        return Err(malformed("kpipe: record shorter than its fixed part"));
    }
    if flags & !3 != 0 {
        return Err(malformed("kpipe: reserved record flag bits are set"));
    }
    let mut off = 16;
    let topic = field(b, &mut off, false).flatten().ok_or(malformed("kpipe: malformed topic"))?;
    let key = field(b, &mut off, true).ok_or(malformed("kpipe: malformed key"))?;
    let value = field(b, &mut off, true).ok_or(malformed("kpipe: malformed value"))?;
    let count = u32_at(b, off).ok_or(malformed("kpipe: malformed header count"))? as usize;
    off += 4;
    if count > (b.len() - off) / 8 {
        return Err(malformed("kpipe: header count does not fit the record"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = field(b, &mut off, false).flatten().ok_or(malformed("kpipe: malformed header name"))?;
        let value = field(b, &mut off, true).ok_or(malformed("kpipe: malformed header value"))?;
        headers.push(Header { name: Cow::Borrowed(name), value: value.map(Cow::Borrowed) });
    }
    if off != b.len() {
        return Err(malformed("kpipe: trailing bytes after the record"));
    }
    Ok(Record {
        topic: Cow::Borrowed(topic),
        key: key.map(Cow::Borrowed),
        value: value.map(Cow::Borrowed),
        headers,
        partition: if flags & 1 != 0 { Some(get_u32(b, 4) as i32) } else { None },
        timestamp: if flags & 2 != 0 { u64_at(b, 8).map(|t| t as i64) } else { None },
        ..Record::default()
    })
}

/// Decodes the `FEATURE_PARTITION_KEY` input: a record with only a key.
pub(crate) fn decode_key(b: &[u8]) -> Result<Record<'_>, Error> {
    let mut off = 0;
    let key = field(b, &mut off, true).ok_or(malformed("kpipe: malformed key input"))?;
    if off != b.len() {
        return Err(malformed("kpipe: malformed key input"));
    }
    Ok(Record { key: key.map(Cow::Borrowed), ..Record::default() })
}

/// Decodes an acknowledgement; with `lean`, the `FEATURE_ACK_NO_RECORD`
/// encoding, which has no record.
pub(crate) fn decode_ack(b: &[u8], lean: bool) -> Result<(Ack<'_>, Option<Record<'_>>), Error> {
    let offset = u64_at(b, 0).ok_or(malformed("kpipe: acknowledgement shorter than its fixed part"))? as i64;
    let elen = get_u32(b, 8) as usize;
    let error = b.get(12..12 + elen).ok_or(malformed("kpipe: malformed acknowledgement error"))?;
    let rest = &b[12 + elen..];
    if lean {
        if rest.len() != 12 {
            return Err(malformed("kpipe: malformed acknowledgement"));
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

/// Appends the edit list of `r` (ABI 8.2) to `out`, if its setters logged
/// every change; returns false (and appends nothing) otherwise.
pub(crate) fn encode_edits(r: &Record, out: &mut Vec<u8>) -> bool {
    if !r.log_edits || r.whole {
        return false;
    }
    out.extend_from_slice(&(0x8000_0000u32 | r.edit_count).to_le_bytes());
    out.extend_from_slice(&r.edits);
    true
}

/// Appends the encoding of `r` to `out`.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    out.reserve(record_size(r));
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
