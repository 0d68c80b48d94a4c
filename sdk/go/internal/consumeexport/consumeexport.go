// Package consumeexport connects the SDK's consume-side handlers (package
// kpipe) with the exports that call them (package consume), which live apart
// so that only a plugin that imports package consume exports the marker of
// ABI v2 and the consume-side hooks: every other plugin stays a v1 module,
// which hosts that predate v2 load.
package consumeexport

// OnConsume and Deserialize implement kpipe_on_consume and
// kpipe_deserialize; package kpipe sets them in its init.
var (
	OnConsume   func(n int32) int64
	Deserialize func(target, n int32) int64
)

// Linked is set by package consume's init: the module exports the hooks.
var Linked bool
