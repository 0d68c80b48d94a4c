// Command raw is a test interceptor written against the ABI directly with
// //go:wasmexport, without the SDK, because the SDK recovers panics: its
// kpipe_on_send panics, unrecovered, when the record's partition field is 1,
// which makes the Go runtime exit the instance. Otherwise it returns 0.
package main

import (
	"encoding/binary"
	"unsafe"
)

var buf []byte

//go:wasmexport kpipe_abi_v1
func abiV1() {}

//go:wasmexport kpipe_kinds
func kinds() int32 { return 1 }

//go:wasmexport kpipe_buffer
func buffer(size int32) int32 {
	if int(size) > cap(buf) {
		buf = make([]byte, size)
	}
	buf = buf[:cap(buf)]
	return int32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport kpipe_on_send
func onSend(n int32) int64 {
	if n >= 8 && binary.LittleEndian.Uint32(buf[4:]) == 1 {
		panic("unrecovered panic in kpipe_on_send")
	}
	return 0
}

//go:wasmexport kpipe_on_ack
func onAck(n int32) int64 { return 0 }

func main() {}
