;; loop_kinds.wat: an interceptor whose kpipe_kinds never returns. Loading
;; it must end at the plugin's load timeout, or when its context is
;; cancelled, with an error naming kpipe_kinds.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (loop $forever (br $forever)) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0)))
