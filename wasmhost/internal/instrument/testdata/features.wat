;; features.wat: exercises every instruction family the rewriter decodes
;; that wazero's default features (WebAssembly 2.0) allow. run returns a
;; checksum that must be the same before and after the rewrite.
(module
  (type $pair (func (param i32) (result i32 i32)))
  (type $unop (func (param i32) (result i32)))
  (memory (export "memory") 1 4)
  (table $t 4 8 funcref)
  (table $ext 2 externref)
  (global $g (mut i64) (i64.const 7))
  (data $d "abcdefgh")
  (elem $e func $double $fact)
  (elem (table $t) (i32.const 0) func $double $fact)

  (func $double (type $unop) (i32.mul (local.get 0) (i32.const 2)))

  ;; recursion: function entry checks
  (func $fact (type $unop)
    (if (result i32) (i32.le_s (local.get 0) (i32.const 1))
      (then (i32.const 1))
      (else (i32.mul (local.get 0) (call $fact (i32.sub (local.get 0) (i32.const 1)))))))

  ;; a multi-value block with a type index
  (func $split (type $pair)
    local.get 0
    block $b (type $pair) (param i32) (result i32 i32)
      i32.const 16
      i32.shr_u
      local.get 0
      i32.const 0xffff
      i32.and
    end)

  (func $loops (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (loop $outer
      (block $skip
        (br_if $skip (i32.eqz (i32.rem_u (local.get $i) (i32.const 3))))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i)))))
      ;; br_table over a loop
      (block $a (block $b2 (block $c
        (br_table $a $b2 $c (i32.rem_u (local.get $i) (i32.const 4))))
        (local.set $acc (i64.add (local.get $acc) (i64.const 100))))
        (local.set $acc (i64.add (local.get $acc) (i64.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))

  (func $simd (result i64)
    (local $v v128)
    (v128.store offset=16 align=8 (i32.const 0)
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
        (v128.const i32x4 1 2 3 4) (v128.const i64x2 5 6)))
    (local.set $v (v128.load offset=16 (i32.const 0)))
    (local.set $v (i32x4.replace_lane 3 (local.get $v) (i32.const 9)))
    (local.set $v (v128.load32_lane 1 (i32.const 16) (local.get $v)))
    (local.set $v (i32x4.add (local.get $v) (i32x4.splat (i32.const 1))))
    (i64.add
      (i64x2.extract_lane 0 (local.get $v))
      (i64.extend_i32_s (i32x4.extract_lane 3 (local.get $v)))))

  (func $bulk (result i64)
    (memory.fill (i32.const 100) (i32.const 0x41) (i32.const 8))
    (memory.init $d (i32.const 110) (i32.const 0) (i32.const 0))
    (memory.copy (i32.const 120) (i32.const 100) (i32.const 16))
    (i64.add (i64.load (i32.const 120)) (i64.load (i32.const 128))))

  (func $numeric (result i64)
    (i64.add
      (i64.extend_i32_s (i32.extend8_s (i32.const 0xf0)))
      (i64.add
        (i64.trunc_sat_f64_s (f64.const 1e30))
        (i64.extend_i32_u (i32.trunc_sat_f32_u (f32.const -5))))))

  (func $refs (result i64)
    (local $r funcref)
    (table.set $t (i32.const 2) (ref.func $double))
    (local.set $r (table.get $t (i32.const 2)))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (table.fill $t (i32.const 3) (ref.null func) (i32.const 1))
    (table.init $t $e (i32.const 3) (i32.const 0) (i32.const 0))
    (table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 1))
    (i64.add
      (i64.extend_i32_u (table.size $t))
      (i64.add
        (i64.extend_i32_u (ref.is_null (local.get $r)))
        (i64.extend_i32_u (select (result i32) (i32.const 5) (i32.const 6) (ref.is_null (table.get $ext (i32.const 0))))))))

  (func (export "run") (result i64)
    (local $x i32) (local $y i32)
    (call $split (i32.const 0x00050007))
    (local.set $y)
    (local.set $x)
    (i64.add (call $loops (i32.const 50))
      (i64.add (call $simd)
        (i64.add (call $bulk)
          (i64.add (call $numeric)
            (i64.add (call $refs)
              (i64.add (global.get $g)
                (i64.extend_i32_u
                  (i32.add
                    (call_indirect $t (type $unop) (i32.const 6) (i32.const 1))
                    (i32.add (local.get $x) (local.get $y))))))))))
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (drop (memory.grow (i32.const 0)))
    (i64.add (i64.extend_i32_u (memory.size))))

  (func (export "drops") (data.drop $d) (elem.drop $e))
  (func (export "spin") (loop $l (br $l)))
  ;; endless recursion from inside a loop at the start of the function,
  ;; which therefore gets no entry check: the loop's check must do
  (func $deep (export "deep") (local i32)
    (local.set 0 (i32.const 1))
    (block (loop (call $deep) (br 1))))
  ;; loop-free recursion: only the function entry checks see it
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2))))))))
