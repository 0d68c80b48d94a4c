;; many_problems.wat: a module with several problems at once, all of which
;; a load error must list: it is a WASI command (_start, no _initialize),
;; lacks kpipe_buffer, its kpipe_on_send has the wrong type, and it imports
;; a kpipe function that does not exist.
(module
  (import "kpipe" "open_socket" (func $open (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 1))
  (func (export "kpipe_on_send") (param $len i32) (result i32) (i32.const 0)))
