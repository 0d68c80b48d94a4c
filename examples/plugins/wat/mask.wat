;; mask.wat: a consume interceptor (kpipe ABI v2, sdk/ABI.md section 10)
;; that masks every ASCII digit of a consumed record's value with '*', such
;; as card or account numbers, before the application reads it. Written by
;; hand in the WebAssembly text format, with no language runtime.
;;
;; kpipe_on_consume rewrites the value in the input buffer, where it is, and
;; returns the record part of its input (after the 8-byte offset) as the new
;; record; a value without digits, a null or empty value, returns 0
;; ("unchanged"), which costs nothing to copy back.
(module
  (memory (export "memory") 1)

  ;; Consume-side kinds need the marker of version 2.
  (func (export "kpipe_abi_v2"))

  ;; Bit 3: consume interceptor.
  (func (export "kpipe_kinds") (result i32) (i32.const 8))
  ;; The input buffer starts at address 1024 (address 0 would mean "no
  ;; buffer") and takes the rest of memory, grown as needed.
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $pages i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x7ff00000))
      (then (return (i32.const 0))))
    (local.set $pages
      (i32.shr_u
        (i32.add (local.get $size) (i32.const 66559)) ;; 1024 + 65535
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1024))

  ;; $field returns the address of the length of the key (target 0) or of
  ;; the value (target 1) of the consumed record at 1024 (ABI 10.1: i64
  ;; offset, then the record of 4.1, whose topic length is at byte 16).
  (func $field (param $target i32) (result i32)
    (local $p i32) (local $n i32)
    (local.set $p (i32.add (i32.const 1052) (i32.load (i32.const 1048))))
    (if (local.get $target)
      (then
        (local.set $n (i32.load (local.get $p)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (if (i32.ne (local.get $n) (i32.const -1))
          (then (local.set $p (i32.add (local.get $p) (local.get $n)))))))
    (local.get $p))
  ;; $mask replaces every ASCII digit of the n bytes at v with '*' and says
  ;; whether it replaced any.
  (func $mask (param $v i32) (param $n i32) (result i32)
    (local $i i32) (local $changed i32)
    (if (i32.le_s (local.get $n) (i32.const 0)) (then (return (i32.const 0))))
    (loop $next
      (if (i32.lt_u (i32.sub (i32.load8_u (i32.add (local.get $v) (local.get $i))) (i32.const 48)) (i32.const 10))
        (then
          (i32.store8 (i32.add (local.get $v) (local.get $i)) (i32.const 42))
          (local.set $changed (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $changed))

  ;; $record_result is the slice of the record inside the input of length
  ;; len: it starts after the 8-byte offset.
  (func $record_result (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 1032) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $len) (i32.const 8)))))

  (func (export "kpipe_on_consume") (param $len i32) (result i64)
    (local $v i32)
    (local.set $v (call $field (i32.const 1)))
    (if (call $mask (i32.add (local.get $v) (i32.const 4)) (i32.load (local.get $v)))
      (then (return (call $record_result (local.get $len)))))
    (i64.const 0)))
