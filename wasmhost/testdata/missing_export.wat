;; missing_export.wat: declares the serializer kind but exports no
;; kpipe_serialize.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 2))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0)))
