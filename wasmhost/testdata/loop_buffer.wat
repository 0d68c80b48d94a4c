;; loop_buffer.wat: an interceptor whose kpipe_buffer never returns. Loading
;; it must end at the plugin's load timeout, or when its context is
;; cancelled, with an error naming kpipe_buffer.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0)))
