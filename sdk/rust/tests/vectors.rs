//! Checks the SDK against the ABI test vectors (sdk/testdata): the codec,
//! set_header, the batch loops and both acknowledgement encodings.

use std::fs;
use std::path::PathBuf;

use kpipe::{decode_record, encode_record, record_size, Ack, Error, Plugin, Record, Verdict};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn names(list: &str) -> Vec<String> {
    String::from_utf8(vector(list)).unwrap().split_whitespace().map(String::from).collect()
}

fn murmur2(b: &[u8]) -> u32 {
    const M: u32 = 0x5bd1e995;
    let mut h = 0x9747b28c ^ b.len() as u32;
    let mut chunks = b.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[derive(Default)]
struct Test {
    acks: Vec<(i64, Vec<u8>, i32, i64, bool)>,
}

impl Plugin for Test {
    fn on_send(&mut self, r: &mut Record) -> Result<Verdict, Error> {
        r.set_header("kpipe-stamp", "sdk");
        Ok(Verdict::Continue)
    }
    fn on_ack(&mut self, r: Option<&Record>, a: &Ack) -> Result<(), Error> {
        self.acks.push((a.offset, a.error.to_vec(), a.partition, a.timestamp, r.is_some()));
        Ok(())
    }
    fn partition(&mut self, r: &Record, n: i32) -> Result<Option<i32>, Error> {
        Ok(r.key.as_ref().map(|k| ((murmur2(k) & 0x7fffffff) % n as u32) as i32))
    }
}

#[test]
fn records() {
    for name in names("records.txt") {
        let b = vector(&format!("records/{name}.bin"));
        let mut r = decode_record(&b).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let mut out = Vec::new();
        encode_record(&r, &mut out);
        assert_eq!(out, b, "{name}: decode and encode changed the bytes");
        assert_eq!(record_size(&r), b.len(), "{name}: record_size");
        assert!(!r.changed());
        r.set_header("kpipe-stamp", "sdk");
        assert!(r.changed());
        out.clear();
        encode_record(&r, &mut out);
        assert_eq!(out, vector(&format!("results/set_header/{name}.bin")), "{name}: set_header");
        assert_eq!(r.remove_header(b"kpipe-stamp"), 1, "{name}: remove_header");
        assert_eq!(r.header(b"kpipe-stamp"), None);
    }
    let mut b = vector("records/full.bin");
    b.push(0);
    assert!(decode_record(&b).is_err(), "a trailing byte is refused");
    assert!(decode_record(&b[..b.len() - 2]).is_err(), "a short record is refused");
}

// One test runs everything that goes through the runtime, whose state is a
// per-instance global.
#[test]
fn runtime() {
    let records = names("records.txt");
    let mut p = Test::default();

    // Natively a result slice starts at address 0: it is an offset into
    // the buffer it names (last_output, last_results).
    for name in &records {
        let b = vector(&format!("records/{name}.bin"));
        kpipe::rt::write_input(&b);
        let r = kpipe::rt::on_send(&mut p, b.len() as i32);
        assert!(r > 0, "{name}: on_send returned {r}");
        assert_eq!(&kpipe::rt::last_output()[..r as usize], &vector(&format!("results/set_header/{name}.bin"))[..], "{name}: on_send");
    }
    let frame = vector("batch/on_send.bin");
    kpipe::rt::write_input(&frame);
    let r = kpipe::rt::on_send_batch(&mut p, records.len() as i32, frame.len() as i32);
    assert_eq!(r as usize, 8 * records.len(), "on_send_batch result");
    let results = kpipe::rt::last_results();
    for (i, name) in records.iter().enumerate() {
        let e = i64::from_le_bytes(results[8 * i..8 * i + 8].try_into().unwrap());
        let (off, n) = ((e >> 32) as usize, (e & 0xffffffff) as usize);
        assert_eq!(&kpipe::rt::last_output()[off..off + n], &vector(&format!("results/set_header/{name}.bin"))[..], "{name}: on_send_batch");
    }

    // With FEATURE_EDITS, on_send returns the edit list.
    kpipe::rt::set_features(kpipe::FEATURE_EDITS);
    for name in &records {
        let b = vector(&format!("records/{name}.bin"));
        kpipe::rt::write_input(&b);
        let r = kpipe::rt::on_send(&mut p, b.len() as i32);
        assert_eq!(&kpipe::rt::last_output()[..r as usize], &vector("results/edit_set_header.bin")[..], "{name}: on_send with edits");
    }
    kpipe::rt::set_features(0);

    for (features, frame) in [(0, "batch/partition.bin"), (kpipe::FEATURE_PARTITION_KEY, "batch/partition_key.bin")] {
        kpipe::rt::set_features(features);
        let b = vector(frame);
        kpipe::rt::write_input(&b);
        kpipe::rt::partition_batch(&mut p, records.len() as i32, b.len() as i32);
        assert_eq!(kpipe::rt::last_results(), &vector("results/keyhash.bin")[..], "{frame}");
    }

    for (features, suffix) in [(0, ".bin"), (kpipe::FEATURE_ACK_NO_RECORD, ".lean.bin")] {
        kpipe::rt::set_features(features);
        p.acks.clear();
        for name in names("acks.txt") {
            let b = vector(&format!("acks/{name}{suffix}"));
            kpipe::rt::write_input(&b);
            assert_eq!(kpipe::rt::on_ack(&mut p, b.len() as i32), 0, "{name}{suffix}");
        }
        let lean = features != 0;
        assert_eq!(
            p.acks,
            vec![
                (42, vec![], 2, 1700000000123, !lean),
                (-1, b"broker unreachable".to_vec(), -1, -1, !lean),
                (-1, b"MESSAGE_TOO_LARGE".to_vec(), 5, 1, !lean),
            ],
            "acks{suffix}"
        );
    }
    kpipe::rt::set_features(0);
}
