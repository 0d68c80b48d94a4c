;; key_error.wat: a serializer that fails every key (KPIPE_ERROR with the
;; message "no key schema") and returns every value as it gets the record
;; (its whole input). A record with a key fails at its key: kpipe plugin
;; test must not report the value as null.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "no key schema")
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 2))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_serialize") (param $target i32) (param $len i32) (result i64)
    (if (i32.eqz (local.get $target))
      (then
        (call $set_error (i32.const 16) (i32.const 13))
        (return (i64.const -2))))
    (i64.or (i64.const 0x0001000000000000) (i64.extend_i32_u (local.get $len)))))
