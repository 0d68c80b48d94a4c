;; nonconforming_batch.wat: an interceptor whose batch hook disagrees with
;; its per-record hook: kpipe_on_send leaves every record unchanged, but
;; kpipe_on_send_batch drops them all. Every call is well-formed, so the host
;; runs it; `kpipe plugin conformance` must refuse it (ABI section 5.5).
(module
  (memory (export "memory") 8)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  ;; The input buffer is pages 1 to 7; results go in the first page.
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 458752)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  ;; An array of count KPIPE_DROP (-1) results at address 0.
  (func (export "kpipe_on_send_batch") (param $count i32) (param $len i32) (result i64)
    (local $i i32)
    (if (i32.gt_u (local.get $count) (i32.const 8192)) (then (return (i64.const -2))))
    (memory.fill (i32.const 0) (i32.const 0xff) (i32.shl (local.get $count) (i32.const 3)))
    (i64.extend_i32_u (i32.shl (local.get $count) (i32.const 3)))))
