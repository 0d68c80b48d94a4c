;; hostcalls.wat: an interceptor that exercises the kpipe host functions from
;; kpipe_on_send, chosen by the record's partition field:
;;
;;   0  copy the config into memory at 1024 and return it as KPIPE_ERROR's
;;      message (set_error), so the test can read it back
;;   1  log "hello from wasm" at level 3 (info) if log_enabled(3), return 0
;;   2  call log with a pointer past the end of memory (must trap)
;;   3  call set_error with a length past the end of memory (must trap)
;;   4  call config_get with a buffer past the end of memory (must trap)
;;   5  return enable_features(-1) as the result (must be 0)
(module
  (import "kpipe" "config_get" (func $config_get (param i32 i32) (result i32)))
  (import "kpipe" "log_enabled" (func $log_enabled (param i32) (result i32)))
  (import "kpipe" "log" (func $log (param i32 i32 i32)))
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))
  (memory (export "memory") 2)
  (data (i32.const 16) "hello from wasm")
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $n i32)
    (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b0 (i32.load (i32.const 65540))))
      (local.set $n (call $config_get (i32.const 1024) (i32.const 4096)))
      (call $set_error (i32.const 1024) (local.get $n))
      (return (i64.const -2)))
      (if (call $log_enabled (i32.const 3))
        (then (call $log (i32.const 3) (i32.const 16) (i32.const 15))))
      (return (i64.const 0)))
      (call $log (i32.const 3) (i32.const 131000) (i32.const 1000))
      (return (i64.const 0)))
      (call $set_error (i32.const 16) (i32.const -1))
      (return (i64.const 0)))
      (drop (call $config_get (i32.const 131070) (i32.const 100)))
      (return (i64.const 0)))
    (call $enable_features (i64.const -1)))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
