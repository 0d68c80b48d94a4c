;; wasi_sleep.wat: an interceptor whose kpipe_on_send, for a record whose
;; partition field (buffer offset 4) is 1, asks WASI to sleep for an hour (poll_oneoff with one clock subscription, which Go's
;; time.Sleep and C's nanosleep become), and whose kpipe_init does the same
;; when the plugin has no config. The call timeout, the load timeout and a
;; cancelled context must each end the sleep: a guest blocked in the host
;; is stopped like one that loops. kpipe_on_send returns 0 otherwise.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "kpipe" "config_get" (func $config_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Sleeps for an hour: one subscription at 0 (userdata 7, tag 0 = clock,
  ;; clock 1 = monotonic, a relative timeout of 3600 s, precision 0),
  ;; its event written at 1024, the number of events at 2048.
  (func $sleep_an_hour
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 0) (i32.const 1024) (i32.const 1) (i32.const 2048))))
  (func (export "kpipe_init") (result i64)
    (if (i32.eqz (call $config_get (i32.const 0) (i32.const 0)))
      (then (call $sleep_an_hour)))
    (i64.const 0))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_buffer") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "kpipe_on_send") (param $len i32) (result i64)
    (if (i32.eq (i32.load (i32.const 65540)) (i32.const 1))
      (then (call $sleep_an_hour)))
    (i64.const 0)))
