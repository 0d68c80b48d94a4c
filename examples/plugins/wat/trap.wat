;; trap.wat: an interceptor whose kpipe_on_send always traps, written by hand
;; against the kpipe plugin ABI v1 (sdk/ABI.md).
;;
;; It demonstrates fault isolation: the host logs and counts the fault, closes
;; the instance, sends the record as it was, and uses a fresh instance for the
;; next record. kpipe_on_ack succeeds, so acknowledgements still flow.
(module
  (memory (export "memory") 1)

  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))

  ;; The buffer takes the rest of memory from address 1024, grown as needed
  ;; (see noop.wat).
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $pages i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x7ff00000))
      (then (return (i32.const 0))))
    (local.set $pages
      (i32.shr_u (i32.add (local.get $size) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1024))

  (func (export "kpipe_on_send") (param $len i32) (result i64)
    unreachable)

  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
