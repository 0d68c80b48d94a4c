;; missing_hooks.wat: a module that declares all three kinds but exports
;; none of their hooks; the load error must name every missing one.
(module
  (memory (export "memory") 2)
  (func (export "kpipe_abi_v1"))
  (func (export "kpipe_kinds") (result i32) (i32.const 7))
  (func (export "kpipe_buffer") (param $size i32) (result i32) (i32.const 65536)))
