;; spin.wat: an interceptor whose kpipe_on_send counts down a loop of 10000
;; iterations before returning 0. It measures what loop termination checks
;; cost when a plugin runs with a call timeout.
(module
  (memory (export "memory") 2)
  (global $sink (mut i32) (i32.const 0))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $i i32)
    (local.set $i (i32.const 10000))
    (loop $l
      (global.set $sink (i32.add (global.get $sink) (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
