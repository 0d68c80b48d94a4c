;; noop.wat: an interceptor that leaves every record alone, written by hand
;; against the kpipe plugin ABI v1 (sdk/ABI.md) with no language runtime.
;;
;; kpipe_on_send returns 0 ("unchanged") and kpipe_on_ack returns 0, so a call
;; costs only the crossing into the module and the copy of the record into its
;; input buffer: the baseline against which other plugins are measured.
;;
;; The optional batch hooks (ABI section 5.5) do the same for a whole batch:
;; kpipe_on_send_batch returns 0 ("every record unchanged") and
;; kpipe_on_ack_batch returns 0, so one crossing serves any number of records.
;;
;; The acknowledgements are not even read, so kpipe_init enables the feature
;; KPIPE_FEATURE_ACK_NO_RECORD (ABI section 8): the host then encodes each
;; acknowledgement without its record (offset, error, partition, timestamp:
;; 24 bytes for a delivered record instead of the whole record again). A host
;; that does not offer the feature passes full acknowledgements, which serve
;; as well, so kpipe_init ignores the answer.
(module
  (import "kpipe" "enable_features" (func $enable_features (param i64) (result i64)))

  ;; One page to start with; kpipe_buffer grows the memory when the host asks
  ;; for a larger buffer.
  (memory (export "memory") 1)

  (func (export "kpipe_abi_v1"))

  ;; Bit 0: interceptor.
  (func (export "kpipe_kinds") (result i32) (i32.const 1))

  ;; Ask for KPIPE_FEATURE_ACK_NO_RECORD (bit 1); either answer will do.
  (func (export "kpipe_init") (result i64)
    (drop (call $enable_features (i64.const 2)))
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

  (func (export "kpipe_on_send") (param $len i32) (result i64) (i64.const 0))
  (func (export "kpipe_on_ack") (param $len i32) (result i64) (i64.const 0))

  ;; The batch hooks need not even look at their input: the host asks for the
  ;; whole call's result, and 0 is a valid one for any count.
  (func (export "kpipe_on_send_batch") (param $count i32) (param $len i32) (result i64)
    (i64.const 0))
  (func (export "kpipe_on_ack_batch") (param $count i32) (param $len i32) (result i64)
    (i64.const 0)))
