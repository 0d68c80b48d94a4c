;; consume.wat: a consume interceptor and deserializer (ABI v2) for the
;; host's tests. kpipe_on_consume looks at the first byte of the value:
;;
;;   '#'  KPIPE_DROP;
;;   '?'  KPIPE_ERROR with the message "refused";
;;   '!'  a trap;
;;   '~'  an invalid result (a slice outside memory);
;;   '^'  a new record whose value is "up", with the timestamp cleared;
;;   else the digits of the value are masked with '*' (0 if there are none).
;;
;; kpipe_deserialize strips the 5-byte prefix of Kafka's schema-registry
;; wire format (magic byte 0, a 4-byte schema id) from the key or the value,
;; fails with "no wire-format prefix" without one, and returns KPIPE_NULL
;; for data that is exactly the prefix.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "refused")
  (data (i32.const 32) "no wire-format prefix")
  ;; A record (ABI 4.1) with no flags, topic "", null key, value "up", no
  ;; headers.
  (data (i32.const 64) "\00\00\00\00" "\00\00\00\00" "\00\00\00\00\00\00\00\00" "\00\00\00\00"
    "\ff\ff\ff\ff" "\02\00\00\00" "up" "\00\00\00\00")

  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_abi_v2"))

  ;; Bits 3 and 4: consume interceptor and deserializer.
  (func (export "kpipe_kinds") (result i32) (i32.const 24))
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
    (local $v i32) (local $c i32)
    (local.set $v (call $field (i32.const 1)))
    (if (i32.gt_s (i32.load (local.get $v)) (i32.const 0))
      (then
        (local.set $c (i32.load8_u (i32.add (local.get $v) (i32.const 4))))
        (if (i32.eq (local.get $c) (i32.const 35)) (then (return (i64.const -1))))
        (if (i32.eq (local.get $c) (i32.const 63))
          (then
            (call $set_error (i32.const 16) (i32.const 7))
            (return (i64.const -2))))
        (if (i32.eq (local.get $c) (i32.const 33)) (then unreachable))
        (if (i32.eq (local.get $c) (i32.const 126))
          (then (return (i64.const 0x7fff000000000010))))
        (if (i32.eq (local.get $c) (i32.const 94))
          (then (return (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 34)))))))
    (if (call $mask (i32.add (local.get $v) (i32.const 4)) (i32.load (local.get $v)))
      (then (return (call $record_result (local.get $len)))))
    (i64.const 0))

  (func (export "kpipe_deserialize") (param $target i32) (param $len i32) (result i64)
    (local $f i32) (local $n i32)
    (local.set $f (call $field (local.get $target)))
    (local.set $n (i32.load (local.get $f)))
    (if (i32.or (i32.lt_s (local.get $n) (i32.const 5))
                (i32.ne (i32.load8_u (i32.add (local.get $f) (i32.const 4))) (i32.const 0)))
      (then
        (call $set_error (i32.const 32) (i32.const 21))
        (return (i64.const -2))))
    (if (i32.eq (local.get $n) (i32.const 5)) (then (return (i64.const -3))))
    (i64.or (i64.shl (i64.extend_i32_u (i32.add (local.get $f) (i32.const 9))) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $n) (i32.const 5))))))
