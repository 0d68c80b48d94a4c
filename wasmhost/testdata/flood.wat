;; flood.wat: an interceptor whose kpipe_on_send writes 100 MiB to stderr:
;; 1600 fd_write calls of the same 64 KiB, 1024 lines of 63 "x" and a
;; newline, then returns 0. It checks that a plugin flooding its output
;; puts only a bounded amount in kpipe's log.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $i i32)
    ;; 64 KiB of lines at 131072: "x" * 63 + "\n".
    (memory.fill (i32.const 131072) (i32.const 0x78) (i32.const 65536))
    (local.set $i (i32.const 0))
    (loop $nl
      (i32.store8 (i32.add (i32.const 131135) (i32.shl (local.get $i) (i32.const 6))) (i32.const 10))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $nl (i32.lt_u (local.get $i) (i32.const 1024))))
    ;; One iovec at 0: {131072, 65536}; the count written goes to 8.
    (i32.store (i32.const 0) (i32.const 131072))
    (i32.store (i32.const 4) (i32.const 65536))
    (local.set $i (i32.const 0))
    (loop $write
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $write (i32.lt_u (local.get $i) (i32.const 1600))))
    (i64.const 0)))
