;; consume_v1.wat: declares the consume interceptor kind (ABI v2) but exports
;; only the marker of v1: the host refuses it and says which marker to add.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 8))
  (func (export "kpipe_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "kpipe_on_consume") (param i32) (result i64) (i64.const 0)))
