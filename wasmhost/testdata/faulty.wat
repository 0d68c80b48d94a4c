;; faulty.wat: an interceptor, serializer and partitioner whose kpipe_on_send
;; misbehaves on demand. The record's partition field (buffer offset 4) picks
;; the behaviour, so one module covers every fault the host must contain:
;;
;;    0  return 0 (unchanged)          7  set_error("bad record"), KPIPE_ERROR
;;    1  trap (unreachable)            8  return -9 (an unknown status)
;;    2  endless loop that writes      9  return the input unchanged as a slice
;;       memory
;;    3  grow memory until it fails,  10  KPIPE_DROP
;;       then trap                    11  return the input plus one trailing byte
;;    4  proc_exit(3)                 12  return the input with the partition
;;    5  result pointer out of bounds     flag cleared
;;    6  result of 100000 bytes       13  endless loop-free recursion
;;                                    14  a loop of as many iterations as
;;                                        the record's timestamp, return 0
;;
;; kpipe_serialize returns null for the key and the input for the value.
;; kpipe_partition returns the record's partition field, sign-extended, if
;; the record names a partition, and num_partitions-1 otherwise.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "bad record")
  ;; The input buffer starts at page 1 and ends where memory ends.
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 7))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $need i32)
    ;; pages needed for 64 KiB + size bytes
    (local.set $need
      (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65536)) (i32.const 65535))
                 (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 65536))
  (func $slice (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (local $n i64)
    (block $b14 (block $b13 (block $b12 (block $b11 (block $b10 (block $b9 (block $b8 (block $b7 (block $b6
    (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b11 $b12 $b13 $b14 $b0
        (i32.load (i32.const 65540))))
      (return (i64.const 0)))
      unreachable)
      (loop $forever
        (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (br $forever))
      unreachable)
      (loop $grow
        (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      unreachable)
      (call $proc_exit (i32.const 3))
      unreachable)
      (return (call $slice (i32.const 0x7fff0000) (i32.const 16))))
      (return (call $slice (i32.const 0) (i32.const 100000))))
      (call $set_error (i32.const 16) (i32.const 10))
      (return (i64.const -2)))
      (return (i64.const -9)))
      (return (call $slice (i32.const 65536) (local.get $len))))
      (return (i64.const -1)))
      (return (call $slice (i32.const 65536) (i32.add (local.get $len) (i32.const 1)))))
    (i32.store (i32.const 65536) (i32.and (i32.load (i32.const 65536)) (i32.const -2)))
    (return (call $slice (i32.const 65536) (local.get $len))))
    ;; 13: loop-free recursion that takes for ever (about 2^60 calls)
    (drop (call $fib (i64.const 60)))
    (return (i64.const 0)))
    ;; 14: count down the record's timestamp in a loop, then return 0
    (local.set $n (i64.load (i32.const 65544)))
    (loop $count
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $count (i64.gt_s (local.get $n) (i64.const 0))))
    (i64.const 0))
  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_serialize") (param $target i32) (param $len i32) (result i64)
    (if (i32.eqz (local.get $target)) (then (return (i64.const -3))))
    (call $slice (i32.const 65536) (local.get $len)))
  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64)
    (if (i32.and (i32.load (i32.const 65536)) (i32.const 1))
      (then (return (i64.extend_i32_s (i32.load (i32.const 65540))))))
    (i64.extend_i32_s (i32.sub (local.get $n) (i32.const 1)))))
