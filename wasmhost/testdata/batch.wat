;; batch.wat: an interceptor and partitioner with the optional batch hooks
;; (ABI section 5.5), whose results the record's partition field (record
;; offset 4) chooses, the same in the per-record and the batch hooks:
;;
;;    0  unchanged (0)                 4  an unknown status (-9)
;;    1  KPIPE_DROP                    5  a slice outside memory
;;    2  set_error("bad record"),      6  trap (unreachable)
;;       KPIPE_ERROR                   7  the record plus one trailing byte
;;    3  the record with its partition    (does not decode)
;;       flag cleared, as a slice
;;       pointing into the input
;;
;; The mode of the batch's first record can instead choose the result of
;; the whole kpipe_on_send_batch call (kpipe_on_send returns 0 for these):
;;
;;   20  set_error("whole batch"), KPIPE_ERROR
;;   21  a result array one entry short
;;   22  a result array outside memory
;;   23  0 (every record unchanged), whatever the other records say
;;   24  an unknown status (-9)
;;
;; kpipe_partition returns the mode of a record that names a partition
;; (the test's choice of partition or status code), and num_partitions - 1
;; otherwise; kpipe_partition_batch does the same for each record. If the
;; first record's mode is 99 it traps instead, and if it is 98 the result
;; array is one entry short.
;;
;; kpipe_on_ack logs "ack <offset>" at info level, and kpipe_on_ack_batch
;; logs "batch <count>" and then "ack <offset>" for each acknowledgement,
;; so that a test can count what was delivered, and how. An acknowledgement
;; with offset -7 makes either hook fail with set_error("bad ack").
;;
;; Memory: messages at 16, number formatting at 512, the on_send_batch
;; result array at 4096 (at most 7680 records, else a trap), the input
;; buffer from 65536 to the end of memory.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (import "kpipe" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "bad record")
  (data (i32.const 32) "whole batch")
  (data (i32.const 48) "bad ack")
  (data (i32.const 64) "ack ")
  (data (i32.const 80) "batch ")
  (global $buffer i32 (i32.const 65536))
  (global $results i32 (i32.const 4096))

  (func (export "kpipe_abi_v1"))
  ;; interceptor | partitioner
  (func (export "kpipe_kinds") (result i32) (i32.const 5))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $need i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x7fe00000)) (then (return (i32.const 0))))
    (local.set $need
      (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65536)) (i32.const 65535))
                 (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $buffer))

  (func $slice (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; $one is kpipe_on_send for the $len-byte record at $rec.
  (func $one (param $rec i32) (param $len i32) (result i64)
    (block $m7 (block $m6 (block $m5 (block $m4 (block $m3 (block $m2 (block $m1 (block $m0
      (br_table $m0 $m1 $m2 $m3 $m4 $m5 $m6 $m7 $m0
        (i32.load offset=4 (local.get $rec))))
      (return (i64.const 0)))
      (return (i64.const -1)))
      (call $set_error (i32.const 16) (i32.const 10))
      (return (i64.const -2)))
      (i32.store (local.get $rec) (i32.and (i32.load (local.get $rec)) (i32.const -2)))
      (return (call $slice (local.get $rec) (local.get $len))))
      (return (i64.const -9)))
      (return (call $slice (i32.const 0x7fff0000) (i32.const 64))))
      unreachable)
    (call $slice (local.get $rec) (i32.add (local.get $len) (i32.const 1))))

  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (if (i32.ge_u (i32.load offset=4 (global.get $buffer)) (i32.const 20))
      (then (return (i64.const 0))))
    (call $one (global.get $buffer) (local.get $len)))

  (func (export "kpipe_on_send_batch") (param $count i32) (param $len i32) (result i64)
    (local $p i32)
    (local $k i32)
    (local $size i32)
    (if (i32.gt_u (local.get $count) (i32.const 7680)) (then unreachable))
    ;; The first record's mode, after its 4-byte size.
    (block $each (block $m24 (block $m23 (block $m22 (block $m21 (block $m20
      (br_table $m20 $m21 $m22 $m23 $m24 $each
        (i32.sub (i32.load offset=8 (global.get $buffer)) (i32.const 20))))
      (call $set_error (i32.const 32) (i32.const 11))
      (return (i64.const -2)))
      (return (call $slice (global.get $results)
        (i32.shl (i32.sub (local.get $count) (i32.const 1)) (i32.const 3)))))
      (return (call $slice (i32.const 0x7fff0000) (i32.shl (local.get $count) (i32.const 3)))))
      (return (i64.const 0)))
      (return (i64.const -9)))
    (local.set $p (global.get $buffer))
    (block $done
      (loop $entries
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (local.set $size (i32.load (local.get $p)))
        (i64.store
          (i32.add (global.get $results) (i32.shl (local.get $k) (i32.const 3)))
          (call $one (i32.add (local.get $p) (i32.const 4)) (local.get $size)))
        (local.set $p (i32.add (local.get $p) (i32.add (local.get $size) (i32.const 4))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $entries)))
    (call $slice (global.get $results) (i32.shl (local.get $count) (i32.const 3))))

  ;; $part is kpipe_partition for the record at $rec.
  (func $part (param $n i32) (param $rec i32) (result i32)
    (if (i32.and (i32.load (local.get $rec)) (i32.const 1))
      (then (return (i32.load offset=4 (local.get $rec)))))
    (i32.sub (local.get $n) (i32.const 1)))

  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64)
    (i64.extend_i32_s (call $part (local.get $n) (global.get $buffer))))

  ;; Results over the input, as in examples/plugins/wat/keyhash.wat.
  (func (export "kpipe_partition_batch") (param $count i32) (param $len i32) (result i64)
    (local $p i32)
    (local $k i32)
    (local $first i32)
    (local.set $first (i32.load offset=12 (global.get $buffer)))
    (if (i32.eq (local.get $first) (i32.const 99)) (then unreachable))
    (local.set $p (global.get $buffer))
    (block $done
      (loop $entries
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (i32.store
          (i32.add (global.get $buffer) (i32.shl (local.get $k) (i32.const 2)))
          (call $part (i32.load (local.get $p)) (i32.add (local.get $p) (i32.const 8))))
        (local.set $p
          (i32.add (local.get $p) (i32.add (i32.load offset=4 (local.get $p)) (i32.const 8))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $entries)))
    (if (i32.eq (local.get $first) (i32.const 98))
      (then (local.set $count (i32.sub (local.get $count) (i32.const 1)))))
    (call $slice (global.get $buffer) (i32.shl (local.get $count) (i32.const 2))))

  ;; $itoa writes the decimal form of $v at $dst and returns its length.
  (func $itoa (param $v i64) (param $dst i32) (result i32)
    (local $neg i32)
    (local $end i32)
    (local $p i32)
    (local $t i32)
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (local.set $neg (i32.const 1))
        (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    ;; Digits backwards into [dst+1, dst+21), then moved to the front.
    (local.set $end (i32.add (local.get $dst) (i32.const 21)))
    (local.set $p (local.get $end))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $v) (i64.const 0))))
    (if (local.get $neg)
      (then
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.const 45))))
    (local.set $t (i32.sub (local.get $end) (local.get $p)))
    (call $copy (local.get $dst) (local.get $p) (local.get $t))
    (local.get $t))

  ;; $copy copies $n bytes from $src to $dst, front to back (without the
  ;; bulk memory instructions, which the host's instrumenter may not know).
  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $bytes
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $bytes))))

  ;; $say logs the $plen-byte prefix at $prefix followed by $v.
  (func $say (param $prefix i32) (param $plen i32) (param $v i64)
    (call $copy (i32.const 512) (local.get $prefix) (local.get $plen))
    (call $log (i32.const 3) (i32.const 512)
      (i32.add (local.get $plen)
        (call $itoa (local.get $v) (i32.add (i32.const 512) (local.get $plen))))))

  ;; $ack logs the acknowledgement at $a and says whether it is a bad one.
  (func $ack (param $a i32) (result i32)
    (call $say (i32.const 64) (i32.const 4) (i64.load (local.get $a)))
    (i64.eq (i64.load (local.get $a)) (i64.const -7)))

  (func (export "kpipe_on_ack") (param $len i32) (result i64)
    (if (call $ack (global.get $buffer))
      (then
        (call $set_error (i32.const 48) (i32.const 7))
        (return (i64.const -2))))
    (i64.const 0))

  (func (export "kpipe_on_ack_batch") (param $count i32) (param $len i32) (result i64)
    (local $p i32)
    (local $k i32)
    (local $bad i32)
    (call $say (i32.const 80) (i32.const 6) (i64.extend_i32_u (local.get $count)))
    (local.set $p (global.get $buffer))
    (block $done
      (loop $entries
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (local.set $bad
          (i32.or (local.get $bad) (call $ack (i32.add (local.get $p) (i32.const 4)))))
        (local.set $p
          (i32.add (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 4))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $entries)))
    (if (local.get $bad)
      (then
        (call $set_error (i32.const 48) (i32.const 7))
        (return (i64.const -2))))
    (i64.const 0)))
