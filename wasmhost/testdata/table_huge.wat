;; table_huge.wat: an interceptor whose table starts with 100 million
;; elements (800 MB of host memory in wazero), more than the host allows
;; (MaxTableElements): it must not load.
(module
  (table 100000000 funcref)
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0)))
