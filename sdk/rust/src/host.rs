//! The host functions (ABI section 6). Compiled for anything but wasm32 they
//! do nothing, so that plugin logic can be tested natively with `cargo test`.

use alloc::vec::Vec;

/// Log levels. kpipe shows `Info` and `Debug` messages only when it runs
/// with `--log-level info` (or `debug`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Trace = 1,
    Debug = 2,
    Info = 3,
    Warn = 4,
    Error = 5,
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "kpipe")]
    extern "C" {
        pub fn config_get(buf: *mut u8, limit: i32) -> i32;
        pub fn log_enabled(level: i32) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn set_error(ptr: *const u8, len: i32);
        pub fn enable_features(features: i64) -> i64;
    }
}

/// The plugin's configuration: kpipe passes the plugin's `config` block as a
/// JSON object; empty if there is none.
pub fn config() -> Vec<u8> {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        let n = imports::config_get(core::ptr::null_mut(), 0);
        if n <= 0 {
            return Vec::new();
        }
        let mut buf = Vec::with_capacity(n as usize);
        imports::config_get(buf.as_mut_ptr(), n);
        buf.set_len(n as usize);
        buf
    }
    #[cfg(not(target_arch = "wasm32"))]
    Vec::new()
}

/// Whether a message at `level` would be logged.
pub fn log_enabled(level: Level) -> bool {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::log_enabled(level as i32) != 0
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = level;
        false
    }
}

/// Logs `msg` through the host's logger, which adds the plugin's name.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::log(level as i32, msg.as_ptr(), msg.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, msg);
}

pub(crate) fn set_error(msg: &str) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::set_error(msg.as_ptr(), msg.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = msg;
}

/// Asks for optional ABI features (`FEATURE_*`) and returns those the host
/// enabled. Only calls from [`crate::Plugin::init`] enable anything; the SDK
/// then decodes the inputs those features change.
pub fn enable_features(mask: u64) -> u64 {
    #[cfg(target_arch = "wasm32")]
    let got = unsafe { imports::enable_features(mask as i64) as u64 };
    #[cfg(not(target_arch = "wasm32"))]
    let got = mask & 7;
    crate::rt::features_enabled(got);
    got
}
