//! A consume interceptor (ABI v2) written with the Rust SDK: it masks every
//! ASCII digit of a consumed record's value with `*` before the application
//! reads it. With `FEATURE_EDITS` the SDK returns one set-value edit instead
//! of the whole record.

use std::borrow::Cow;

use kpipe::{Error, Plugin, Record, Verdict, FEATURE_EDITS};

#[derive(Default)]
struct Mask;

impl Plugin for Mask {
    fn init(&mut self) -> Result<(), Error> {
        kpipe::enable_features(FEATURE_EDITS);
        Ok(())
    }

    fn on_consume(&mut self, r: &mut Record, _offset: i64) -> Result<Verdict, Error> {
        if let Some(v) = r.value.as_ref() {
            if v.iter().any(u8::is_ascii_digit) {
                let masked = v.iter().map(|&c| if c.is_ascii_digit() { b'*' } else { c }).collect();
                r.set_value(Some(Cow::Owned(masked)));
            }
        }
        Ok(Verdict::Continue)
    }
}

kpipe::export_consume_plugin!(Mask, consume_interceptor);
