//go:build wasip1

package consume

import "github.com/kpipe/kpipe/sdk/go/internal/consumeexport"

//go:wasmexport kpipe_abi_v2
func kpipeABIv2() {}

//go:wasmexport kpipe_on_consume
func kpipeOnConsume(n int32) int64 { return consumeexport.OnConsume(n) }

//go:wasmexport kpipe_deserialize
func kpipeDeserialize(target, n int32) int64 { return consumeexport.Deserialize(target, n) }
