//! The Rust SDK for kpipe plugins: interceptors, serializers and partitioners
//! compiled to WebAssembly and run by the kpipe host next to a Kafka producer.
//! It implements the plugin ABI v1 (`sdk/ABI.md` in the kpipe repository):
//! the input buffer, the record and acknowledgement codecs, the batch hooks
//! and the host functions, so that a plugin is a type implementing [`Plugin`]
//! and one [`export_plugin!`] line:
//!
//! ```no_run
//! use kpipe::{Plugin, Record, Verdict, Error};
//!
//! #[derive(Default)]
//! struct Stamp;
//!
//! impl Plugin for Stamp {
//!     #[inline] // inlined into the single and the batch export
//!     fn on_send(&mut self, r: &mut Record) -> Result<Verdict, Error> {
//!         r.set_header("kpipe-stamp", "sdk");
//!         Ok(Verdict::Continue)
//!     }
//! }
//!
//! kpipe::export_plugin!(Stamp, interceptor);
//! ```
//!
//! The crate is `no_std` and needs only `alloc`: a plugin built for
//! `wasm32-wasip1` with the standard library gets its allocator from there;
//! a `no_std` plugin (for `wasm32-unknown-unknown`) supplies a
//! `#[global_allocator]` and a `#[panic_handler]`. A panic aborts: the
//! host sees a trap, logs it as a fault and replaces the instance.
//!
//! State is per instance: the host runs a pool of instances of the module,
//! each with its own plugin value, created by `Default` (then [`Plugin::init`]).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod codec;
mod host;
#[doc(hidden)]
pub mod rt;

pub use codec::{decode_record, encode_record, record_size, Ack, Header, IntoBytes, Record, RecordFields};
pub use host::{config, enable_features, log, log_enabled, Level};

use alloc::borrow::Cow;
use alloc::string::String;

/// Kind bits of `kpipe_kinds` (ABI section 2).
pub const KIND_INTERCEPTOR: i32 = 1;
pub const KIND_SERIALIZER: i32 = 2;
pub const KIND_PARTITIONER: i32 = 4;
/// The consume-side kinds of ABI version 2 (section 10), exported with
/// [`export_consume_plugin!`].
pub const KIND_CONSUME_INTERCEPTOR: i32 = 8;
pub const KIND_DESERIALIZER: i32 = 16;

/// Feature bits of [`enable_features`] (ABI section 8.1). With
/// `FEATURE_PARTITION_KEY`, [`Plugin::partition`] gets a record that has
/// only its key; with `FEATURE_ACK_NO_RECORD`, [`Plugin::on_ack`] gets no
/// record.
pub const FEATURE_PARTITION_KEY: u64 = 1;
pub const FEATURE_ACK_NO_RECORD: u64 = 2;
/// With `FEATURE_EDITS` (ABI section 8.2), a record changed through the
/// setters is returned to the host as the list of their edits instead of
/// the whole record, which costs both sides far less; after
/// [`Record::mark_changed`] the whole record is sent.
pub const FEATURE_EDITS: u64 = 4;

/// What `on_send` decided. A record changed through the [`Record`] setters
/// is sent back to the host with `Continue`; an unchanged one costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Drop,
}

/// Which field a serializer serializes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

/// A hook's error: the host logs its message with the plugin's name and
/// hook, and counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub Cow<'static, str>);

impl Error {
    pub fn new(msg: impl Into<Cow<'static, str>>) -> Self {
        Error(msg.into())
    }
}

impl From<&'static str> for Error {
    fn from(s: &'static str) -> Self {
        Error(Cow::Borrowed(s))
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(Cow::Owned(s))
    }
}

/// A plugin. Implement the hooks of the kinds you export with
/// [`export_plugin!`]; the others are never called.
pub trait Plugin {
    /// Called once per instance before any hook: read [`config`] and ask
    /// for [`enable_features`] here. An error fails the plugin's load.
    fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// An interceptor's hook: change the record through its setters, drop
    /// it, or fail (the record then goes on as it was).
    fn on_send(&mut self, _record: &mut Record) -> Result<Verdict, Error> {
        Err(Error::from("on_send is not implemented"))
    }
    /// Called once per record that went through `on_send`, when it was
    /// delivered or failed; `record` is `None` with `FEATURE_ACK_NO_RECORD`.
    fn on_ack(&mut self, _record: Option<&Record>, _ack: &Ack) -> Result<(), Error> {
        Ok(())
    }
    /// A partitioner's hook: `Some(p)` with `0 <= p < num_partitions`, or
    /// `None` for the host's default partitioner.
    fn partition(&mut self, _record: &Record, _num_partitions: i32) -> Result<Option<i32>, Error> {
        Ok(None)
    }
    /// A serializer's hook: the serialized key or value, `None` for null.
    /// Never called for a null key or value.
    fn serialize<'a>(&mut self, _target: Target, _record: &Record<'a>) -> Result<Option<Cow<'a, [u8]>>, Error> {
        Err(Error::from("serialize is not implemented"))
    }
    /// A consume interceptor's hook (ABI v2): `record` is one a consumer
    /// fetched, at `offset`, with its partition set. Change its key, value,
    /// headers or timestamp through the setters (the host keeps its topic,
    /// partition and offset), drop it, or fail (the plugin's `on_failure`
    /// decides what happens to it).
    fn on_consume(&mut self, _record: &mut Record, _offset: i64) -> Result<Verdict, Error> {
        Err(Error::from("on_consume is not implemented"))
    }
    /// A deserializer's hook (ABI v2): the key or value the application
    /// reads, `None` for null. Never called for a null key or value.
    fn deserialize<'a>(&mut self, _target: Target, _record: &Record<'a>, _offset: i64) -> Result<Option<Cow<'a, [u8]>>, Error> {
        Err(Error::from("deserialize is not implemented"))
    }
}

/// Exports a plugin type (which implements [`Plugin`] and `Default`) as the
/// module's plugin, with the hooks of the listed kinds: `interceptor` (with
/// `kpipe_on_send` and its batch hook), `acks` (`kpipe_on_ack` and its batch
/// hook; only with `interceptor`), `partitioner` (`kpipe_partition` and its
/// batch hook), `serializer`. Use it once, in the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty, $($kind:ident),+ $(,)?) => {
        static KPIPE_PLUGIN: $crate::rt::Global<$ty> = $crate::rt::Global::new();

        #[no_mangle]
        pub extern "C" fn kpipe_abi_v1() {}

        $crate::export_plugin!(@reactor);

        #[no_mangle]
        pub extern "C" fn kpipe_kinds() -> i32 {
            0 $(| $crate::export_plugin!(@kind $kind))+
        }

        #[no_mangle]
        pub extern "C" fn kpipe_buffer(size: i32) -> i32 {
            $crate::rt::buffer(size)
        }

        #[no_mangle]
        pub extern "C" fn kpipe_init() -> i64 {
            $crate::rt::init(KPIPE_PLUGIN.get())
        }

        $($crate::export_plugin!(@hooks $kind);)+
    };
    // `_initialize` makes the module a WASI reactor: it runs the linker's
    // constructors once, and wasm-ld then exports each function as it is.
    // Without it, a wasm32-wasip1 cdylib is linked as a command, whose
    // every export wasm-ld wraps in a call of the C library's destructors:
    // three more calls per hook, about 130 instructions in wazero's code
    // (wasmhost's BenchmarkSDKStampParts, rust-stamp).
    (@reactor) => {
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            extern "C" {
                fn __wasm_call_ctors();
            }
            // SAFETY: the linker's constructors, run once, first (the host
            // calls _initialize before any other export).
            unsafe { __wasm_call_ctors() }
        }
    };
    (@kind interceptor) => { $crate::KIND_INTERCEPTOR };
    (@kind acks) => { 0 };
    (@kind partitioner) => { $crate::KIND_PARTITIONER };
    (@kind serializer) => { $crate::KIND_SERIALIZER };
    (@kind consume_interceptor) => { $crate::KIND_CONSUME_INTERCEPTOR };
    (@kind deserializer) => { $crate::KIND_DESERIALIZER };
    (@hooks consume_interceptor) => {
        #[no_mangle]
        pub extern "C" fn kpipe_on_consume(len: i32) -> i64 {
            $crate::rt::on_consume(KPIPE_PLUGIN.get(), len)
        }
    };
    (@hooks deserializer) => {
        #[no_mangle]
        pub extern "C" fn kpipe_deserialize(target: i32, len: i32) -> i64 {
            $crate::rt::deserialize(KPIPE_PLUGIN.get(), target, len)
        }
    };
    (@hooks interceptor) => {
        #[no_mangle]
        pub extern "C" fn kpipe_on_send(len: i32) -> i64 {
            $crate::rt::on_send(KPIPE_PLUGIN.get(), len)
        }
        #[no_mangle]
        pub extern "C" fn kpipe_on_send_batch(count: i32, len: i32) -> i64 {
            $crate::rt::on_send_batch(KPIPE_PLUGIN.get(), count, len)
        }
    };
    (@hooks acks) => {
        #[no_mangle]
        pub extern "C" fn kpipe_on_ack(len: i32) -> i64 {
            $crate::rt::on_ack(KPIPE_PLUGIN.get(), len)
        }
        #[no_mangle]
        pub extern "C" fn kpipe_on_ack_batch(count: i32, len: i32) -> i64 {
            $crate::rt::on_ack_batch(KPIPE_PLUGIN.get(), count, len)
        }
    };
    (@hooks partitioner) => {
        #[no_mangle]
        pub extern "C" fn kpipe_partition(n: i32, len: i32) -> i64 {
            $crate::rt::partition(KPIPE_PLUGIN.get(), n, len)
        }
        #[no_mangle]
        pub extern "C" fn kpipe_partition_batch(count: i32, len: i32) -> i64 {
            $crate::rt::partition_batch(KPIPE_PLUGIN.get(), count, len)
        }
    };
    (@hooks serializer) => {
        #[no_mangle]
        pub extern "C" fn kpipe_serialize(target: i32, len: i32) -> i64 {
            $crate::rt::serialize(KPIPE_PLUGIN.get(), target, len)
        }
    };
}

/// Exports a plugin of the consume-side kinds of ABI version 2 (section
/// 10): [`export_plugin!`] with the marker `kpipe_abi_v2`, which those kinds
/// need. The kinds are `consume_interceptor` (`kpipe_on_consume`, calling
/// [`Plugin::on_consume`]) and `deserializer` (`kpipe_deserialize`, calling
/// [`Plugin::deserialize`]), and may be listed with the producer-side ones.
#[macro_export]
macro_rules! export_consume_plugin {
    ($ty:ty, $($kind:ident),+ $(,)?) => {
        $crate::export_plugin!($ty, $($kind),+);

        #[no_mangle]
        pub extern "C" fn kpipe_abi_v2() {}
    };
}
