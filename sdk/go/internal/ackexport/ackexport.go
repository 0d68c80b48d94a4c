// Package ackexport connects the SDK's acknowledgement handlers (package
// kpipe) with the exports that call them (package ack), which live apart so
// that only a plugin that imports package ack exports kpipe_on_ack.
package ackexport

// OnAck and OnAckBatch implement kpipe_on_ack and kpipe_on_ack_batch; package
// kpipe sets them in its init.
var (
	OnAck      func(n int32) int64
	OnAckBatch func(count, n int32) int64
)

// Linked is set by package ack's init: the module exports the hooks.
var Linked bool
