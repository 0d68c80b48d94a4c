;; init_error.wat: kpipe_init reports an error with set_error.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "no config")
  (func (export "kpipe_init") (result i64)
    (call $set_error (i32.const 16) (i32.const 9))
    (i64.const -2))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
