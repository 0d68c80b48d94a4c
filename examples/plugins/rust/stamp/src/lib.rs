//! A header-stamping interceptor written with the Rust SDK: it sets the
//! header `kpipe-stamp` to `sdk` on every record (replacing an existing one),
//! and counts the acknowledgements its instance sees, logging every 1000th at
//! info level (kpipe shows it with `--log-level info`). The count is per
//! instance: the host runs several. It asks for `FEATURE_ACK_NO_RECORD`,
//! since it reads only the outcome of an acknowledgement, and for
//! `FEATURE_EDITS`, with which the SDK returns the header it sets instead of
//! the whole record.
use kpipe::{Ack, Error, Level, Plugin, Record, Verdict};

#[derive(Default)]
struct Stamp {
    delivered: u64,
}

impl Plugin for Stamp {
    fn init(&mut self) -> Result<(), Error> {
        kpipe::enable_features(kpipe::FEATURE_ACK_NO_RECORD | kpipe::FEATURE_EDITS);
        Ok(())
    }

    // #[inline] lets the SDK's dispatch, which calls on_send from the single
    // and the batch hook, inline it: about 2,030 -> 1,900 instructions per call
    // (wasmhost's BenchmarkSDKStampParts, rust-stamp).
    #[inline]
    fn on_send(&mut self, r: &mut Record) -> Result<Verdict, Error> {
        r.set_header("kpipe-stamp", "sdk");
        Ok(Verdict::Continue)
    }

    fn on_ack(&mut self, _record: Option<&Record>, ack: &Ack) -> Result<(), Error> {
        if ack.delivered() {
            self.delivered += 1;
            if self.delivered % 1000 == 0 {
                kpipe::log(Level::Info, "stamp: another 1000 records delivered");
            }
        }
        Ok(())
    }
}

kpipe::export_plugin!(Stamp, interceptor, acks);
