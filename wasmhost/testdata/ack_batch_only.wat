;; ack_batch_only.wat: an interceptor that exports kpipe_on_ack_batch but not
;; kpipe_on_ack. A batch hook needs its per-record hook (ABI section 5.5), so
;; the host must refuse it at load time.
(module
  (memory (export "memory") 1)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack_batch") (param $count i32) (param $len i32) (result i64) (i64.const 0)))
