;; keyhash.wat: a partitioner that places keyed records exactly where Kafka's
;; Java client does, written by hand against the kpipe plugin ABI v1
;; (sdk/ABI.md) with no language runtime.
;;
;; The partition is (murmur2(key) & 0x7fffffff) % num_partitions, with Kafka's
;; murmur2 (seed 0x9747b28c), the same as the Java DefaultPartitioner for keyed
;; records and franz-go's KafkaHasher. A record with a null key goes to the
;; host's default partitioner (KPIPE_DEFAULT_PARTITION). A malformed input is
;; reported with set_error and KPIPE_ERROR.
;;
;; The partition depends on the key alone, so kpipe_init enables the feature
;; KPIPE_FEATURE_PARTITION_KEY (ABI section 8): the host then passes only the
;; key (i32 length, -1 for null, then the bytes) instead of the whole record,
;; which saves it encoding topic, value and headers, and saves this module
;; finding the key behind the topic. A host that does not grant the feature
;; (one older than it) would pass records, which this module does not parse:
;; kpipe_init fails instead, and the plugin does not load.
;;
;; kpipe_partition_batch (ABI section 5.5) computes the same partition for
;; each record of a batch in one call, and writes the results over the
;; input (see there), so it needs no memory besides the input buffer.
(module
  (import "kpipe" "set_error" (func $set_error (param i32 i32)))
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))

  (memory (export "memory") 1)

  ;; Error messages, below the input buffer at 1024.
  (data (i32.const 16) "keyhash: malformed input")
  (global $err_malformed i32 (i32.const 16))
  (global $err_malformed_len i32 (i32.const 24))
  (data (i32.const 64) "keyhash: partition count is not positive")
  (global $err_count i32 (i32.const 64))
  (global $err_count_len i32 (i32.const 40))
  (data (i32.const 128) "keyhash: the host does not offer KPIPE_FEATURE_PARTITION_KEY")
  (global $err_feature i32 (i32.const 128))
  (global $err_feature_len i32 (i32.const 60))

  (global $buffer i32 (i32.const 1024))

  (func (export "kpipe_abi_v1"))

  ;; Bit 2: partitioner.
  (func (export "kpipe_kinds") (result i32) (i32.const 4))

  ;; kpipe_init asks for KPIPE_FEATURE_PARTITION_KEY (bit 0) and fails if
  ;; the host does not enable it. Features can only be enabled here (or in
  ;; _initialize): the host fixes them when the instance is created.
  (func (export "kpipe_init") (result i64)
    (if (i64.eqz (i64.and (call $enable_features (i64.const 1)) (i64.const 1)))
      (then
        (call $set_error (global.get $err_feature) (global.get $err_feature_len))
        (return (i64.const -2))))
    (i64.const 0))

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
    (global.get $buffer))

  ;; murmur2 of the $len bytes at $p, as Kafka computes it.
  (func $murmur2 (param $p i32) (param $len i32) (result i32)
    (local $h i32)
    (local $k i32)
    (local $end i32)
    ;; h = seed ^ len
    (local.set $h (i32.xor (i32.const 0x9747b28c) (local.get $len)))
    ;; Whole 4-byte little-endian words.
    (local.set $end
      (i32.add (local.get $p) (i32.and (local.get $len) (i32.const -4))))
    (block $done
      (loop $words
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $k (i32.mul (i32.load (local.get $p)) (i32.const 0x5bd1e995)))
        (local.set $k (i32.xor (local.get $k) (i32.shr_u (local.get $k) (i32.const 24))))
        (local.set $k (i32.mul (local.get $k) (i32.const 0x5bd1e995)))
        (local.set $h
          (i32.xor (i32.mul (local.get $h) (i32.const 0x5bd1e995)) (local.get $k)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $words)))
    ;; The 1 to 3 trailing bytes, each unsigned.
    (block $tail0
      (block $tail1
        (block $tail2
          (block $tail3
            (br_table $tail0 $tail1 $tail2 $tail3
              (i32.and (local.get $len) (i32.const 3))))
          ;; 3 bytes left
          (local.set $h
            (i32.xor (local.get $h)
              (i32.shl (i32.load8_u offset=2 (local.get $p)) (i32.const 16)))))
        ;; 2 or more bytes left
        (local.set $h
          (i32.xor (local.get $h)
            (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 8)))))
      ;; 1 or more bytes left
      (local.set $h
        (i32.mul
          (i32.xor (local.get $h) (i32.load8_u (local.get $p)))
          (i32.const 0x5bd1e995))))
    ;; Final mix.
    (local.set $h (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 13))))
    (local.set $h (i32.mul (local.get $h) (i32.const 0x5bd1e995)))
    (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 15))))

  ;; kpipe_partition(num_partitions, len): the key encoding is in the buffer.
  (func (export "kpipe_partition") (param $n i32) (param $len i32) (result i64)
    (call $partition (local.get $n) (global.get $buffer) (local.get $len)))

  ;; $partition is kpipe_partition for the $len-byte key encoding at $in:
  ;; i32 key length (-1 = null), then the key, which must end the input.
  (func $partition (param $n i32) (param $in i32) (param $len i32) (result i64)
    (local $key_len i32)
    (if (i32.le_s (local.get $n) (i32.const 0))
      (then
        (call $set_error (global.get $err_count) (global.get $err_count_len))
        (return (i64.const -2))))
    (if (i32.lt_u (local.get $len) (i32.const 4))
      (then (return (call $malformed))))
    (local.set $key_len (i32.load (local.get $in)))
    ;; A null key (-1): let the host's default partitioner choose.
    (if (i32.eq (local.get $key_len) (i32.const -1))
      (then (return (i64.const -4))))
    ;; The key must be exactly the rest of the input (any other negative
    ;; length is huge as an unsigned number, and differs from it).
    (if (i32.ne (local.get $key_len) (i32.sub (local.get $len) (i32.const 4)))
      (then (return (call $malformed))))
    (i64.extend_i32_u
      (i32.rem_u
        (i32.and
          (call $murmur2 (i32.add (local.get $in) (i32.const 4)) (local.get $key_len))
          (i32.const 0x7fffffff))
        (local.get $n))))

  ;; kpipe_partition_batch(count, len): the buffer holds $count entries, each
  ;; an i32 partition count, a u32 size and the key encoding of that size.
  ;; The result is an array of $count i32, one per record, with
  ;; kpipe_partition's meaning.
  ;;
  ;; The array is written over the input, result k at buffer + 4k. That is
  ;; safe: every entry is at least 8 bytes long, so entry k starts at or
  ;; after buffer + 8k and entry k+1 at or after buffer + 8k + 8, beyond the
  ;; end of result k; and result k is written only after entry k was read.
  ;; It also bounds the array by the input, so any count the buffer can hold
  ;; works, with no memory to grow. An entry that does not fit in the input
  ;; makes the whole call fail (KPIPE_ERROR); a malformed key encoding inside
  ;; a well-formed entry fails that record alone, as in kpipe_partition.
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
        ;; The 8-byte header, then the key encoding, must fit before the end
        ;; (compared unsigned, after the subtraction, so nothing wraps).
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
    ;; The slice buffer << 32 | 4 * count.
    (i64.or
      (i64.shl (i64.extend_i32_u (global.get $buffer)) (i64.const 32))
      (i64.extend_i32_u (i32.shl (local.get $count) (i32.const 2)))))

  (func $malformed (result i64)
    (call $set_error (global.get $err_malformed) (global.get $err_malformed_len))
    (i64.const -2)))
