;; nonconforming_buffer.wat: an interceptor whose kpipe_buffer ignores the
;; size it is asked for: it always answers address 1024 of a 2-page memory.
;; Records that fit work; a record larger than the memory cannot be written,
;; and the host must refuse the buffer (ABI section 3.1), which
;; `kpipe plugin conformance` reports.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0)))
