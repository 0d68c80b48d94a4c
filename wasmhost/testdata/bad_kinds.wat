;; bad_kinds.wat: kpipe_kinds sets a bit (0x40) that no plugin kind uses.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 0x41))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
