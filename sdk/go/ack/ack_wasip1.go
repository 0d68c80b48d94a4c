//go:build wasip1

package ack

import "github.com/kpipe/kpipe/sdk/go/internal/ackexport"

//go:wasmexport kpipe_on_ack
func kpipeOnAck(n int32) int64 { return ackexport.OnAck(n) }

//go:wasmexport kpipe_on_ack_batch
func kpipeOnAckBatch(count, n int32) int64 { return ackexport.OnAckBatch(count, n) }
