;; upper.wat: an interceptor that upper-cases the ASCII letters of every
;; record's value, written by hand against the kpipe plugin ABI v1
;; (sdk/ABI.md) with no language runtime. A value that starts with "poison"
;; makes it trap: a plugin fault, for testing what a pipeline does with a
;; record its plugin fails on (on_failure, dead-letter topics).
;;
;; The value is changed in place in the input buffer. With the feature
;; KPIPE_FEATURE_EDITS (ABI 8.2), which kpipe_init asks for, the result is an
;; edit list that sets the value, written over the bytes just before the
;; value's length prefix (the header, op 5, and the prefix and value as they
;; are): the host decodes only the value instead of the whole record. A host
;; without the feature gets the whole record (ABI 4.1), changed in place. A
;; record with a null or empty value is returned unchanged (0).
(module
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))

  (memory (export "memory") 1)

  ;; 1 if the host granted KPIPE_FEATURE_EDITS.
  (global $edits (mut i32) (i32.const 0))

  ;; Ask for KPIPE_FEATURE_EDITS (bit 2); either answer will do.
  (func (export "kpipe_init") (result i64)
    (global.set $edits (i32.wrap_i64
      (i64.shr_u (i64.and (call $enable_features (i64.const 4)) (i64.const 4)) (i64.const 2))))
    (i64.const 0))

  (func (export "kpipe_abi_v1"))

  ;; Bit 0: interceptor.
  (func (export "kpipe_kinds") (result i32) (i32.const 1))

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

  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $p i32)
    (local $n i32)
    (local $end i32)
    (local $c i32)   ;; the value's first byte's address
    (local $len8 i32) ;; a byte of the value
    (local $w i64)    ;; eight bytes of the value
    (local $h i64)    ;; w without the top bit of each byte
    ;; Skip flags, partition, timestamp (16 bytes), then the topic.
    (local.set $p (i32.add (i32.const 1040)
      (i32.add (i32.const 4) (i32.load (i32.const 1040)))))
    ;; Skip the key (length -1: null, no bytes).
    (local.set $n (i32.load (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (local.set $p (i32.add (local.get $p) (local.get $n)))))
    ;; The value.
    (local.set $n (i32.load (local.get $p)))
    (if (i32.le_s (local.get $n) (i32.const 0))
      (then (return (i64.const 0))))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    ;; "poison" (little-endian "pois" and "on") traps.
    (if (i32.ge_u (local.get $n) (i32.const 6))
      (then
        (if (i32.and
              (i32.eq (i32.load (local.get $p)) (i32.const 0x73696f70))
              (i32.eq (i32.load16_u (i32.add (local.get $p) (i32.const 4))) (i32.const 0x6e6f)))
          (then unreachable))))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $c (local.get $p))
;; Eight bytes at a time: in each byte whose top bit is clear, h + 0x1f
    ;; reaches 0x80 from 'a' on and h + 0x05 from 'z' + 1 on, so their
    ;; top bits differ exactly for 'a' to 'z' (no carry crosses a byte,
    ;; as h <= 0x7f); moved down to bit 5 (0x20), that flips those bytes to
    ;; upper case. The bytes left over go one at a time below.
    (block $words_done
      (loop $words
        (br_if $words_done (i32.gt_u (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
        (local.set $w (i64.load (local.get $p)))
        (local.set $h (i64.and (local.get $w) (i64.const 0x7f7f7f7f7f7f7f7f)))
        (i64.store (local.get $p)
          (i64.xor (local.get $w)
            (i64.shr_u
              (i64.and
                (i64.and
                  (i64.xor (i64.add (local.get $h) (i64.const 0x1f1f1f1f1f1f1f1f))
                           (i64.add (local.get $h) (i64.const 0x0505050505050505)))
                  (i64.xor (local.get $w) (i64.const -1)))
                (i64.const 0x8080808080808080))
              (i64.const 2))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $words)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $len8 (i32.load8_u (local.get $p)))
        (if (i32.lt_u (i32.sub (local.get $len8) (i32.const 97)) (i32.const 26))
          (then (i32.store8 (local.get $p) (i32.sub (local.get $len8) (i32.const 32)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (if (global.get $edits)
      (then
        ;; One edit, "set value" (op 5), whose operand is the value's
        ;; length prefix and bytes where they are: the list starts 9 bytes
        ;; before the value (at least 1024 + 24 - 5: the record's header,
        ;; topic length and key length come first).
        (i32.store (i32.sub (local.get $c) (i32.const 9)) (i32.const 0x80000001))
        (i32.store8 (i32.sub (local.get $c) (i32.const 5)) (i32.const 5))
        (return (i64.or
          (i64.shl (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 9))) (i64.const 32))
          (i64.extend_i32_u (i32.add (local.get $n) (i32.const 9)))))))
    ;; The whole record, changed in place: (1024 << 32) | len.
    (i64.or (i64.shl (i64.const 1024) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
