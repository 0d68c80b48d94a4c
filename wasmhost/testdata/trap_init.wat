;; trap_init.wat: a reactor whose _initialize traps.
(module
  (memory (export "memory") 2)
  (func (export "_initialize") unreachable)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
