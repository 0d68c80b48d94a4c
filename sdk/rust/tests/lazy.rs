//! Checks the record that on_send gives a hook, which is decoded on first
//! read: setters called before only log their edit, the first read sees
//! them applied, a malformed record fails only once read, and with
//! FEATURE_EDITS the edit list returned means what the whole record
//! returned without the feature means, singly and in batches.

use std::borrow::Cow;
use std::fs;
use std::path::PathBuf;

use kpipe::{decode_record, encode_record, Error, Header, Plugin, Record, RecordFields, Verdict, FEATURE_EDITS};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn names() -> Vec<String> {
    String::from_utf8(vector("records.txt")).unwrap().split_whitespace().map(String::from).collect()
}

type Hook = fn(&mut Record) -> Result<Verdict, Error>;

struct Run(Hook);

impl Plugin for Run {
    fn on_send(&mut self, r: &mut Record) -> Result<Verdict, Error> {
        (self.0)(r)
    }
}

fn stamp(r: &mut Record) -> Result<Verdict, Error> {
    r.set_header("kpipe-stamp", "sdk");
    Ok(Verdict::Continue)
}

fn read(r: &mut Record) -> Result<Verdict, Error> {
    let _ = r.key.is_some();
    Ok(Verdict::Continue)
}

/// Writes, reads what it wrote, and writes more, with every kind of edit.
fn write_read_write(r: &mut Record) -> Result<Verdict, Error> {
    r.set_header("kpipe-stamp", "sdk");
    r.append_header("kpipe-stamp", Some(Cow::Borrowed(&b"again"[..])));
    r.set_key(Some(Cow::Borrowed(&b"k2"[..])));
    r.set_timestamp(Some(7));
    assert_eq!(r.header(b"kpipe-stamp"), Some(Some(&b"sdk"[..])), "the first read sees the logged edits");
    assert_eq!(r.headers.iter().filter(|h| h.name.as_ref() == b"kpipe-stamp").count(), 2);
    assert_eq!(r.key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(r.timestamp, Some(7));
    assert_eq!(r.remove_header(b"kpipe-stamp"), 2);
    r.set_header_null("null-header");
    r.set_value(None);
    r.set_partition(Some(3));
    r.set_topic("other");
    Ok(Verdict::Continue)
}

/// Logs an edit, then asks for the whole record to be sent.
fn whole(r: &mut Record) -> Result<Verdict, Error> {
    r.set_header("kpipe-stamp", "sdk");
    r.set_partition(None);
    r.mark_changed();
    Ok(Verdict::Continue)
}

fn drop_it(r: &mut Record) -> Result<Verdict, Error> {
    r.set_header("kpipe-stamp", "sdk");
    Ok(Verdict::Drop)
}

fn field(b: &[u8], off: &mut usize) -> Option<Vec<u8>> {
    let n = u32::from_le_bytes(b[*off..*off + 4].try_into().unwrap());
    *off += 4;
    if n == u32::MAX {
        return None;
    }
    let v = b[*off..*off + n as usize].to_vec();
    *off += n as usize;
    Some(v)
}

/// Applies an edit list (ABI 8.2) to a record's fields, independently of
/// the SDK's setters.
fn apply(f: &mut RecordFields<'static>, list: &[u8]) {
    let count = u32::from_le_bytes(list[..4].try_into().unwrap());
    assert_eq!(count & 0x8000_0000, 0x8000_0000, "an edit list");
    let mut off = 4;
    for _ in 0..count & 0x7fff_ffff {
        let op = list[off];
        off += 1;
        match op {
            1 | 2 => {
                let name = field(list, &mut off).unwrap();
                let value = field(list, &mut off).map(Cow::Owned);
                match f.headers.iter().position(|h| h.name.as_ref() == name) {
                    Some(i) if op == 1 => {
                        f.headers[i].value = value;
                        let mut j = 0;
                        f.headers.retain(|h| {
                            j += 1;
                            j <= i + 1 || h.name.as_ref() != name
                        });
                    }
                    _ => f.headers.push(Header { name: Cow::Owned(name), value }),
                }
            }
            3 => {
                let name = field(list, &mut off).unwrap();
                f.headers.retain(|h| h.name.as_ref() != name);
            }
            4 => f.key = field(list, &mut off).map(Cow::Owned),
            5 => f.value = field(list, &mut off).map(Cow::Owned),
            6 => {
                f.partition = Some(i32::from_le_bytes(list[off..off + 4].try_into().unwrap()));
                off += 4;
            }
            7 => f.partition = None,
            8 => {
                f.timestamp = Some(i64::from_le_bytes(list[off..off + 8].try_into().unwrap()));
                off += 8;
            }
            9 => f.timestamp = None,
            10 => f.topic = Cow::Owned(field(list, &mut off).unwrap()),
            _ => panic!("unknown op {op}"),
        }
    }
    assert_eq!(off, list.len(), "trailing bytes after the edits");
}

/// Runs hook on one record and returns its result and output slice.
fn send(hook: Hook, input: &[u8], features: u64) -> (i64, Vec<u8>) {
    kpipe::rt::set_features(features);
    kpipe::rt::write_input(input);
    let res = kpipe::rt::on_send(&mut Run(hook), input.len() as i32);
    let out = if res > 0 { kpipe::rt::last_output()[..(res & 0xffff_ffff) as usize].to_vec() } else { Vec::new() };
    (res, out)
}

/// The record a result means: the input for 0, the record or edit list
/// applied to the input otherwise.
fn outcome(input: &[u8], res: i64, out: &[u8]) -> Vec<u8> {
    if res == 0 {
        return input.to_vec();
    }
    if out[3] & 0x80 == 0 {
        return out.to_vec();
    }
    let orig = decode_record(input).unwrap();
    let mut f: RecordFields<'static> = RecordFields {
        topic: Cow::Owned(orig.topic.to_vec()),
        key: orig.key.as_ref().map(|k| Cow::Owned(k.to_vec())),
        value: orig.value.as_ref().map(|v| Cow::Owned(v.to_vec())),
        headers: orig.headers.iter().map(|h| Header { name: Cow::Owned(h.name.to_vec()), value: h.value.as_ref().map(|v| Cow::Owned(v.to_vec())) }).collect(),
        partition: orig.partition,
        timestamp: orig.timestamp,
    };
    apply(&mut f, out);
    let mut b = Vec::new();
    encode_record(&Record::from(f), &mut b);
    b
}

// One test: the runtime's state is a per-instance global, which tests on
// several threads would share.
#[test]
fn lazy_record() {
    let hooks: [(&str, Hook); 5] = [("stamp", stamp), ("read", read), ("write_read_write", write_read_write), ("whole", whole), ("drop", drop_it)];
    for name in names() {
        let input = vector(&format!("records/{name}.bin"));
        for (hname, hook) in hooks {
            let (res, out) = send(hook, &input, 0);
            let (eres, eout) = send(hook, &input, FEATURE_EDITS);
            let what = format!("{name}, {hname}");
            match hname {
                "read" => assert!(res == 0 && eres == 0, "{what}: a read changes nothing"),
                "drop" => assert!(res == -1 && eres == -1, "{what}: dropped"),
                _ => {
                    assert!(res > 0 && eres > 0, "{what}: changed ({res}, {eres})");
                    assert_eq!(out[3] & 0x80, 0, "{what}: a whole record without the feature");
                    assert_eq!(eout[3] & 0x80 != 0, hname != "whole", "{what}: an edit list with the feature, unless sent whole");
                    assert_eq!(outcome(&input, eres, &eout), out, "{what}: the edit list means the whole record");
                }
            }
            if hname == "stamp" {
                assert_eq!(out, vector(&format!("results/set_header/{name}.bin")), "{what}");
                assert_eq!(eout, vector("results/edit_set_header.bin"), "{what}");
            }
        }
    }

    // A malformed record fails once a hook or a setter reads it; a hook
    // that only logs edits never reads it.
    let bad = &vector("records/full.bin")[..40];
    assert!(send(stamp, bad, FEATURE_EDITS).0 > 0, "a stamp with edits does not decode the record");
    assert_eq!(send(stamp, bad, 0).0, -2, "without edits, the setter decodes the record");
    assert_eq!(send(read, bad, FEATURE_EDITS).0, -2, "a read decodes the record");
    assert_eq!(send(whole, bad, FEATURE_EDITS).0, -2, "a whole record is decoded to be sent");

    // Batches give each record the result of a single call.
    let frame = vector("batch/on_send.bin");
    for features in [0, FEATURE_EDITS] {
        let singles: Vec<Vec<u8>> = names()
            .iter()
            .map(|name| {
                let (res, out) = send(write_read_write, &vector(&format!("records/{name}.bin")), features);
                assert!(res > 0);
                out
            })
            .collect();
        kpipe::rt::set_features(features);
        kpipe::rt::write_input(&frame);
        let res = kpipe::rt::on_send_batch(&mut Run(write_read_write), singles.len() as i32, frame.len() as i32);
        assert_eq!(res as usize, 8 * singles.len(), "on_send_batch result");
        let results = kpipe::rt::last_results().to_vec();
        for (i, want) in singles.iter().enumerate() {
            let e = i64::from_le_bytes(results[8 * i..8 * i + 8].try_into().unwrap());
            let (off, n) = ((e >> 32) as usize, (e & 0xffff_ffff) as usize);
            assert_eq!(&kpipe::rt::last_output()[off..off + n], &want[..], "batch record {i}, features {features}");
        }
    }
    kpipe::rt::set_features(0);
}
