//! The consume side (ABI version 2, section 10): the runtime of
//! `kpipe_on_consume` and `kpipe_deserialize`, which
//! [`crate::export_consume_plugin!`] exports. Not for direct use.

use super::{change_one, fail, input, slice, NULL, OK, STATE};
use crate::codec::{decode_record, u64_at};
use crate::{Error, Plugin, Record, Target, FEATURE_EDITS};

const NO_OFFSET: &str = "kpipe: consumed record without its offset";

/// Splits a consumed record (ABI 10.1) into its offset and its record.
fn decode_consumed(b: &[u8]) -> Result<(i64, Record<'_>), Error> {
    let offset = u64_at(b, 0).ok_or(Error::from(NO_OFFSET))? as i64;
    Ok((offset, decode_record(&b[8..])?))
}

/// `kpipe_on_consume`.
pub fn on_consume<P: Plugin>(p: &mut P, len: i32) -> i64 {
    let st = STATE.get();
    let b = match input(&st.input, len) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let offset = match u64_at(b, 0) {
        Some(o) => o as i64,
        None => return fail(Error::from(NO_OFFSET)),
    };
    st.out.clear();
    let r = change_one(&b[8..], &mut st.out, &mut st.headers, st.features & FEATURE_EDITS != 0, |r| p.on_consume(r, offset));
    if r > 0 {
        return r + slice(st.out.as_ptr(), 0);
    }
    r
}

/// `kpipe_deserialize`.
pub fn deserialize<P: Plugin>(p: &mut P, target: i32, len: i32) -> i64 {
    let st = STATE.get();
    let target = match target {
        0 => Target::Key,
        1 => Target::Value,
        _ => return fail(Error::from("kpipe: unknown deserializer target")),
    };
    let b = match input(&st.input, len) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let (offset, r) = match decode_consumed(b) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    match p.deserialize(target, &r, offset) {
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
