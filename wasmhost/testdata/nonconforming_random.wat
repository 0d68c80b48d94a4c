;; nonconforming_random.wat: a partitioner that picks a random partition for
;; every record (WASI random_get), so that two instances disagree on the same
;; records. The host runs it; `kpipe plugin conformance` must refuse it,
;; since a plugin's instances must be interchangeable (ABI section 7).
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 8)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 4))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 458752)) (then (return (i32.const 0))))
    (i32.const 65536))
  ;; Four random bytes at address 0, as an unsigned number modulo n.
  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64)
    (drop (call $random_get (i32.const 0) (i32.const 4)))
    (i64.extend_i32_u (i32.rem_u (i32.load (i32.const 0)) (local.get $n)))))
