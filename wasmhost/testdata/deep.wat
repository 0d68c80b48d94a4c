;; deep.wat: an interceptor whose kpipe_on_send recurses as deep as the
;; record's partition field says (its input at offset 4), or without end if
;; that is 0: each call of $down calls itself until the count runs out. It
;; checks that deep recursion works within the stack budget, and that
;; endless recursion costs memory within a documented constant.
(module
  (memory (export "memory") 2)
  (global $sink (mut i64) (i64.const 0))
  (func $down (param $n i64) (param $limit i64) (result i64)
    (local $a i64) (local $b i64)
    (if (i64.eq (local.get $n) (local.get $limit)) (then (return (i64.const 0))))
    (local.set $a (i64.add (local.get $n) (i64.const 1)))
    (local.set $b (call $down (local.get $a) (local.get $limit)))
    (i64.add (local.get $a) (local.get $b)))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $limit i64)
    (local.set $limit (i64.extend_i32_u (i32.load (i32.const 65540))))
    (if (i64.eqz (local.get $limit)) (then (local.set $limit (i64.const -1))))
    (global.set $sink (call $down (i64.const 0) (local.get $limit)))
    (i64.const 0)))
