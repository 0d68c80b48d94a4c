//! Checks the consume side (ABI v2) against the ABI test vectors
//! (sdk/testdata): each consumed record decodes with its offset and
//! partition, and masking its value gives results/mask_digits.

use std::borrow::Cow;
use std::fs;
use std::path::PathBuf;

use kpipe::{Error, Plugin, Record, Target, Verdict};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Default)]
struct Mask {
    seen: Vec<(i64, Option<i32>)>,
}

impl Plugin for Mask {
    fn on_consume(&mut self, r: &mut Record, offset: i64) -> Result<Verdict, Error> {
        self.seen.push((offset, r.partition));
        if let Some(v) = r.value.as_ref() {
            let masked: Vec<u8> = v.iter().map(|&c| if c.is_ascii_digit() { b'*' } else { c }).collect();
            r.set_value(Some(Cow::Owned(masked)));
        }
        Ok(Verdict::Continue)
    }
    fn deserialize<'a>(&mut self, t: Target, r: &Record<'a>, _offset: i64) -> Result<Option<Cow<'a, [u8]>>, Error> {
        let b = match t {
            Target::Key => r.key.as_ref(),
            Target::Value => r.value.as_ref(),
        };
        match b {
            Some(b) if !b.is_empty() => Ok(Some(Cow::Owned(b[1..].to_vec()))),
            _ => Err(Error::from("too short")),
        }
    }
}

// One test: the runtime's state is a per-instance global, which tests on
// several threads would share.
#[test]
fn consume_side() {
    consumed_vectors();
    deserialize();
}

fn consumed_vectors() {
    let names = String::from_utf8(vector("records.txt")).unwrap();
    for name in names.split_whitespace() {
        let input = vector(&format!("consumed/{name}.bin"));
        let want = vector(&format!("results/mask_digits/{name}.bin"));
        kpipe::rt::write_input(&input);
        let mut m = Mask::default();
        let res = kpipe::rt::on_consume(&mut m, input.len() as i32);
        let offset = i64::from_le_bytes(input[..8].try_into().unwrap());
        assert_eq!(m.seen, vec![(offset, m.seen[0].1)], "{name}");
        assert!(offset >= 1 << 40 && m.seen[0].1.is_some(), "{name}: offset and partition");
        if res == 0 {
            // Nothing to change: no value. The vector's record is then the
            // input's, byte for byte.
            assert_eq!(&input[8..], &want[..], "{name}");
        } else {
            assert_eq!(res & 0xffff_ffff, want.len() as i64, "{name}");
            assert_eq!(kpipe::rt::last_output(), &want[..], "{name}: masked record");
        }
    }
}

fn deserialize() {
    let input = vector("consumed/full.bin");
    kpipe::rt::write_input(&input);
    let mut m = Mask::default();
    let res = kpipe::rt::deserialize(&mut m, 1, input.len() as i32);
    assert_eq!(kpipe::rt::last_output(), &br#""id":1,"amount":12.5}"#[..]);
    assert_eq!(res & 0xffff_ffff, 21);
    assert_eq!(kpipe::rt::deserialize(&mut m, 7, input.len() as i32), -2, "unknown target");
    kpipe::rt::write_input(&input[..4]);
    assert_eq!(kpipe::rt::on_consume(&mut m, 4), -2, "no offset");
}
