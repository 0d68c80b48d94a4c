;; tailcall.wat: tail calls (wazero's experimental tail-call feature).
(module
  (memory 1)
  (type $t (func (param i64 i64) (result i64)))
  (table 1 funcref)
  (elem (i32.const 0) $sum)
  (func $sum (type $t)
    (if (result i64) (i64.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call $sum (i64.sub (local.get 0) (i64.const 1)) (i64.add (local.get 1) (local.get 0))))))
  (func (export "run") (result i64)
    (return_call_indirect (type $t) (i64.const 1000) (i64.const 0) (i32.const 0))))
