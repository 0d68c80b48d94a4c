;; filter.wat: a consume interceptor (kpipe ABI v2, sdk/ABI.md section 10)
;; that filters consumed records by the first byte of their value, and
;; fails on purpose for some, to show what the failure policies (on_failure)
;; do with the records a plugin fails on:
;;
;;   '#'  the record is dropped (KPIPE_DROP): the application never sees it;
;;   '?'  the hook fails with KPIPE_ERROR and the message "refused by filter";
;;   '!'  the hook traps (a fault: the host replaces the instance);
;;   else the record is passed on unchanged.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "refused by filter")

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

  (func (export "kpipe_on_consume") (param $len i32) (result i64)
    (local $v i32) (local $c i32)
    (local.set $v (call $field (i32.const 1)))
    (if (i32.le_s (i32.load (local.get $v)) (i32.const 0)) (then (return (i64.const 0))))
    (local.set $c (i32.load8_u (i32.add (local.get $v) (i32.const 4))))
    (if (i32.eq (local.get $c) (i32.const 35)) ;; '#'
      (then (return (i64.const -1))))
    (if (i32.eq (local.get $c) (i32.const 63)) ;; '?'
      (then
        (call $set_error (i32.const 16) (i32.const 17))
        (return (i64.const -2))))
    (if (i32.eq (local.get $c) (i32.const 33)) ;; '!'
      (then unreachable))
    (i64.const 0)))
