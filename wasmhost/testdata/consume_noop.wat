;; consume_noop.wat: a consume interceptor (ABI v2) that leaves every record
;; alone, for BenchmarkOnConsume: the fixed cost of a kpipe_on_consume call.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v2"))
  (func (export "kpipe_kinds") (result i32) (i32.const 8))
  ;; A buffer at 1024 that grows with the memory as needed.
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $pages i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x7ff00000))
      (then (return (i32.const 0))))
    (local.set $pages (i32.shr_u (i32.add (local.get $size) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1024))
  (func (export "kpipe_on_consume") (param $len i32) (result i64) (i64.const 0)))
