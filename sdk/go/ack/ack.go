// Package ack makes a Go plugin receive acknowledgements: importing it
// exports kpipe_on_ack and kpipe_on_ack_batch (ABI sections 5.2 and 5.5),
// which call the OnAck method of the registered interceptor.
//
//	import (
//		kpipe "github.com/kpipe/kpipe/sdk/go"
//		_ "github.com/kpipe/kpipe/sdk/go/ack"
//	)
//
// An interceptor that has no OnAck does not import it, and then the module
// has no acknowledgement hooks at all: the host keeps no record for it until
// the broker answers and makes no acknowledgement calls. The SDK checks both
// ways when an instance starts: an interceptor with OnAck in a module that
// does not import this package, or this package imported without an
// interceptor with OnAck, fails kpipe_init with a message saying so.
package ack

import "github.com/kpipe/kpipe/sdk/go/internal/ackexport"

func init() { ackexport.Linked = true }
