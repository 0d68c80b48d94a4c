;; logbytes: an interceptor whose on_send logs, at error level, a message of
;; bytes that are not printable text: a NUL, a terminal escape sequence, a
;; line break and a byte that is not UTF-8 (TestLogMessageEscaped).
(module
  (import "kpipe" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "a\00b\1b[31mred\nx\ff")
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) i32.const 1)
  (func (export "kpipe_buffer") (param i32) (result i32) i32.const 1024)
  (func (export "kpipe_on_send") (param i32) (result i64)
    (call $log (i32.const 5) (i32.const 16) (i32.const 14))
    i64.const 0))
