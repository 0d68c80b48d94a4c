;; noop.wat: the smallest complete plugin of every kind. Every hook leaves the
;; record alone: kpipe_on_send returns 0, kpipe_serialize returns an empty
;; slice, kpipe_partition defers to the default partitioner.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 7))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_serialize") (param $target i32) (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64) (i64.const -4)))
