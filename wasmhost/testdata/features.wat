;; features.wat: an interceptor and partitioner for the tests of the ABI
;; features (sdk/ABI.md section 8).
;;
;; kpipe_init asks enable_features for the mask in its config (up to 8 bytes,
;; a little-endian i64; missing bytes are 0) and keeps the answer in
;; $enabled: bit 0 (KPIPE_FEATURE_PARTITION_KEY) and bit 1
;; (KPIPE_FEATURE_ACK_NO_RECORD) decide how it reads its inputs.
;;
;; kpipe_on_send, chosen by the record's partition field:
;;   0  call enable_features(3), which outside kpipe_init must change nothing,
;;      then return KPIPE_ERROR with the 8 bytes of enable_features(-1) (the
;;      instance's set, little-endian) as the message
;;   1  trap, so that the next call needs a new instance
;; kpipe_partition and kpipe_partition_batch: the partition of a key is
;;   (key length + the sum of its bytes) % num_partitions, KPIPE_DEFAULT_PARTITION
;;   for a null key, the same whichever input encoding the host uses (the key
;;   alone with bit 0, else the record); an input that is not exactly the
;;   expected encoding is KPIPE_ERROR.
;; kpipe_on_ack and kpipe_on_ack_batch: return KPIPE_ERROR with their whole
;;   input as the message, so that the test can check what the host encoded.
(module
  (import "kpipe" "config_get" (func $config_get (param i32 i32) (result i32)))
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))

  (memory (export "memory") 1)

  ;; 16: the error message; 32: 8 bytes of scratch; 1024: the input buffer.
  (data (i32.const 16) "malformed input")
  (global $scratch i32 (i32.const 32))
  (global $buffer i32 (i32.const 1024))
  (global $enabled (mut i64) (i64.const 0))

  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 5))

  (func (export "kpipe_init") (result i64)
    ;; A config longer than 8 bytes is not copied: the mask stays 0.
    (drop (call $config_get (global.get $scratch) (i32.const 8)))
    (global.set $enabled (call $enable_features (i64.load (global.get $scratch))))
    (i64.const 0))

  ;; As in examples/plugins/wat/noop.wat.
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
    (global.get $buffer))

  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (if (i32.load offset=4 (global.get $buffer))
      (then unreachable))
    (drop (call $enable_features (i64.const 3)))
    (i64.store (global.get $scratch) (call $enable_features (i64.const -1)))
    (call $set_error (global.get $scratch) (i32.const 8))
    (i64.const -2))

  (func $malformed (result i64)
    (call $set_error (i32.const 16) (i32.const 15))
    (i64.const -2))

  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64)
    (call $partition (local.get $n) (global.get $buffer) (local.get $len)))

  ;; $partition is kpipe_partition for the $len-byte input at $in.
  (func $partition (param $n i32) (param $in i32) (param $len i32) (result i64)
    (local $topic_len i32)
    (local $key_len i32)
    (local $sum i32)
    (local $end i32)
    (if (i32.le_s (local.get $n) (i32.const 0))
      (then (return (call $malformed))))
    (if (i64.eqz (i64.and (global.get $enabled) (i64.const 1)))
      (then
        ;; A record (ABI 4.1): skip the 16 fixed bytes and the topic, and
        ;; check that the rest still has key, value and header count.
        (if (i32.lt_u (local.get $len) (i32.const 32))
          (then (return (call $malformed))))
        (local.set $topic_len (i32.load offset=16 (local.get $in)))
        (if (i32.gt_u (local.get $topic_len) (i32.sub (local.get $len) (i32.const 32)))
          (then (return (call $malformed))))
        (local.set $in (i32.add (local.get $in) (i32.add (i32.const 20) (local.get $topic_len))))
        (local.set $key_len (i32.load (local.get $in)))
        (if (i32.eq (local.get $key_len) (i32.const -1))
          (then (return (i64.const -4))))
        (if (i32.gt_u (local.get $key_len)
              (i32.sub (i32.sub (local.get $len) (i32.const 32)) (local.get $topic_len)))
          (then (return (call $malformed)))))
      (else
        ;; The key encoding: i32 length (-1 = null), then exactly that
        ;; many bytes.
        (if (i32.lt_u (local.get $len) (i32.const 4))
          (then (return (call $malformed))))
        (local.set $key_len (i32.load (local.get $in)))
        (if (i32.eq (local.get $key_len) (i32.const -1))
          (then
            (if (i32.ne (local.get $len) (i32.const 4))
              (then (return (call $malformed))))
            (return (i64.const -4))))
        (if (i32.ne (local.get $key_len) (i32.sub (local.get $len) (i32.const 4)))
          (then (return (call $malformed))))))
    ;; The key is at $in + 4.
    (local.set $sum (local.get $key_len))
    (local.set $in (i32.add (local.get $in) (i32.const 4)))
    (local.set $end (i32.add (local.get $in) (local.get $key_len)))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $in) (local.get $end)))
        (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $in))))
        (local.set $in (i32.add (local.get $in) (i32.const 1)))
        (br $bytes)))
    (i64.extend_i32_u (i32.rem_u (local.get $sum) (local.get $n))))

  ;; As keyhash.wat's: the results are written over the input.
  (func (export "kpipe_partition_batch") (param $count i32) (param $len i32) (result i64)
    (local $p i32)
    (local $end i32)
    (local $k i32)
    (local $size i32)
    (local.set $p (global.get $buffer))
    (local.set $end (i32.add (global.get $buffer) (local.get $len)))
    (block $done
      (loop $entries
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (if (i32.lt_u (i32.sub (local.get $end) (local.get $p)) (i32.const 8))
          (then (return (call $malformed))))
        (local.set $size (i32.load offset=4 (local.get $p)))
        (if (i32.gt_u (local.get $size)
              (i32.sub (i32.sub (local.get $end) (local.get $p)) (i32.const 8)))
          (then (return (call $malformed))))
        (i32.store
          (i32.add (global.get $buffer) (i32.shl (local.get $k) (i32.const 2)))
          (i32.wrap_i64
            (call $partition
              (i32.load (local.get $p))
              (i32.add (local.get $p) (i32.const 8))
              (local.get $size))))
        (local.set $p (i32.add (local.get $p) (i32.add (local.get $size) (i32.const 8))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $entries)))
    (if (i32.ne (local.get $p) (local.get $end))
      (then (return (call $malformed))))
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $buffer)) (i64.const 32))
      (i64.extend_i32_u (i32.shl (local.get $count) (i32.const 2)))))

  (func (export "kpipe_on_ack") (param $len i32) (result i64)
    (call $set_error (global.get $buffer) (local.get $len))
    (i64.const -2))
  (func (export "kpipe_on_ack_batch") (param $count i32) (param $len i32) (result i64)
    (call $set_error (global.get $buffer) (local.get $len))
    (i64.const -2)))
