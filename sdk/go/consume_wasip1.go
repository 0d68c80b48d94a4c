//go:build wasip1

package kpipe

import "github.com/kpipe/kpipe/sdk/go/internal/consumeexport"

func init() {
	consumeexport.OnConsume = func(n int32) int64 { return slice(rt.onConsume(n)) }
	consumeexport.Deserialize = func(target, n int32) int64 { return slice(rt.deserialize(target, n)) }
}
