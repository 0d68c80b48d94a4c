//! A key-hash partitioner written with the Rust SDK: a keyed record goes
//! where Kafka's Java client puts it, `(murmur2(key) & 0x7fffffff) % n`; a
//! null key goes to the host's default partitioner. It needs only the key,
//! so `init` asks for `FEATURE_PARTITION_KEY` and fails without it.
use kpipe::{Error, Plugin, Record};

fn murmur2(b: &[u8]) -> u32 {
    const M: u32 = 0x5bd1e995;
    let mut h = 0x9747b28c ^ b.len() as u32;
    let mut words = b.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let rest = words.remainder();
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
struct Keyhash;

impl Plugin for Keyhash {
    fn init(&mut self) -> Result<(), Error> {
        if kpipe::enable_features(kpipe::FEATURE_PARTITION_KEY) & kpipe::FEATURE_PARTITION_KEY == 0 {
            return Err("keyhash: the host does not offer KPIPE_FEATURE_PARTITION_KEY".into());
        }
        Ok(())
    }

    fn partition(&mut self, r: &Record, n: i32) -> Result<Option<i32>, Error> {
        Ok(r.key.as_ref().map(|k| ((murmur2(k) & 0x7fffffff) % n as u32) as i32))
    }
}

kpipe::export_plugin!(Keyhash, partitioner);
