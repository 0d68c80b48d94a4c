;; stamp_edits.wat: the host's share of a header stamp. kpipe_on_send returns,
;; for every record and without reading it, the edit list that sets the header
;; kpipe-stamp to "sdk" (ABI section 8.2), as the SDK stamps do; so a call
;; costs what the WAT no-op's does plus what the host spends reading and
;; applying the edits. BenchmarkSDKStampRatios runs it as wat-edits.
(module
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))

  ;; One page to start with; kpipe_buffer grows the memory when the host asks
  ;; for a larger buffer.
  (memory (export "memory") 1)

  (func (export "kpipe_abi_v1"))

  ;; Bit 0: interceptor.
  (func (export "kpipe_kinds") (result i32) (i32.const 1))

  ;; Ask for KPIPE_FEATURE_ACK_NO_RECORD (bit 1) and KPIPE_FEATURE_EDITS (bit 2).
  (func (export "kpipe_init") (result i64)
    (drop (call $enable_features (i64.const 6)))
    (i64.const 0))

  ;; The input buffer starts at address 1024 (address 0 would mean "no
  ;; buffer") and takes the rest of memory, grown as needed.
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (local $pages i32)
    ;; Refuse sizes that cannot fit under the ABI's 2 GiB memory limit
    ;; (this also refuses "negative" sizes, compared unsigned).
    (if (i32.gt_u (local.get $size) (i32.const 0x7ff00000))
      (then (return (i32.const 0))))
    ;; pages = ceil((1024 + size) / 65536)
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

  ;; The edit list: count 1 with bit 31 set, edit 1 (set header), the name's
  ;; u32 length and bytes, the value's i32 length and bytes: 27 bytes at 16.
  (data (i32.const 16) "\01\00\00\80\01\0b\00\00\00kpipe-stamp\03\00\00\00sdk")

  ;; Every record gets the same edit list: ptr 16 << 32 | len 27.
  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0x100000001b))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0)))
