;; slow_init.wat: an interceptor whose kpipe_init runs for a while. Its config
;; sets how long: each byte of the config adds 10 ms, measured with WASI's
;; monotonic clock; without config kpipe_init never returns. The hooks do
;; nothing. It checks that creating an instance is not held to the call
;; timeout, but to its own, longer limit.
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "kpipe" "config_get" (func $config_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func $now (result i64)
    ;; clock 1 is CLOCK_MONOTONIC; the time is written at address 0.
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0)))
    (i64.load (i32.const 0)))
  (func (export "kpipe_init") (result i64)
    (local $end i64)
    (local $n i32)
    (local.set $n (call $config_get (i32.const 0) (i32.const 0)))
    (if (i32.eqz (local.get $n))
      (then (loop $forever (br $forever))))
    ;; end = now + n * 10 ms
    (local.set $end (i64.add (call $now)
      (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 10000000))))
    (loop $spin
      (br_if $spin (i64.lt_u (call $now) (local.get $end))))
    (i64.const 0))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
