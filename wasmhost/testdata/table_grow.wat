;; table_grow.wat: an interceptor with a table without a maximum, whose
;; kpipe_on_send grows that table by as many elements as the record's
;; partition field (buffer offset 4) says: it returns 0 if the table grew,
;; and KPIPE_ERROR with the message "table.grow refused" if table.grow
;; failed (-1). The host bounds tables (MaxTableElements), so a growth past
;; the bound must fail, not cost the host 8 bytes of memory an element.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (table $t 1 funcref)
  (memory (export "memory") 2)
  (data (i32.const 16) "table.grow refused")
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (if (i32.eq (table.grow $t (ref.null func) (i32.load (i32.const 65540))) (i32.const -1))
      (then
        (call $set_error (i32.const 16) (i32.const 18))
        (return (i64.const -2))))
    (i64.const 0)))
