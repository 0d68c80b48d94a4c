;; reserved_export.wat: a complete interceptor that exports a global under
;; the name the host reserves for its interrupt flag (ABI section 3), so the
;; host cannot instrument it and falls back to wazero's termination checks.
(module
  (memory (export "memory") 2)
  (global (export "kpipe.interrupt") (mut i32) (i32.const 0))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    ;; the record's partition 2 means: loop for ever
    (if (i32.eq (i32.load (i32.const 65540)) (i32.const 2))
      (then (loop $forever (br $forever))))
    (i64.const 0)))
