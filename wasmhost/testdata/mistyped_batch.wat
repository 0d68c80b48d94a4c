;; mistyped_batch.wat: an interceptor whose optional kpipe_on_send_batch has
;; the wrong type (one parameter instead of count and len). The host must
;; refuse it at load time, naming the export.
(module
  (memory (export "memory") 1)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_send_batch") (param $len i32) (result i64) (i64.const 0)))
