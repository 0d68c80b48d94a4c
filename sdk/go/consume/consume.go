// Package consume makes a Go plugin a consume-side plugin (ABI version 2,
// sdk/ABI.md section 10): importing it exports the marker kpipe_abi_v2 and
// the hooks kpipe_on_consume and kpipe_deserialize, which call the
// ConsumeInterceptor and Deserializer registered with
// kpipe.RegisterConsumeInterceptor and kpipe.RegisterDeserializer.
//
//	import (
//		kpipe "github.com/kpipe/kpipe/sdk/go"
//		_ "github.com/kpipe/kpipe/sdk/go/consume"
//	)
//
// A plugin that only runs around a producer does not import it, and stays a
// version 1 module that hosts without the consume side load. The SDK checks
// both ways when an instance starts: a consume-side plugin registered in a
// module that does not import this package, or this package imported
// without one, fails kpipe_init with a message saying so.
package consume

import "github.com/kpipe/kpipe/sdk/go/internal/consumeexport"

func init() { consumeexport.Linked = true }
