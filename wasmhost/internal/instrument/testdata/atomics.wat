;; atomics.wat: atomic memory instructions (wazero's experimental threads
;; feature) in a loop.
(module
  (memory 1 1 shared)
  (func (export "run") (result i64)
    (local $i i32)
    (loop $l
      (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 3)))
      (atomic.fence)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (i64.atomic.store offset=16 (i32.const 0) (i64.const 5))
    (drop (memory.atomic.notify (i32.const 8) (i32.const 0)))
    (i64.add (i64.atomic.load (i32.const 16)) (i64.extend_i32_u (i32.atomic.load (i32.const 8))))))
