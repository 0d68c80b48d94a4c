//go:build wasip1

package kpipe

import "unsafe"

// The host functions (ABI section 6).

//go:wasmimport kpipe config_get
func hostConfigGet(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport kpipe log_enabled
func hostLogEnabled(level int32) int32

//go:wasmimport kpipe log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport kpipe set_error
func hostSetError(ptr unsafe.Pointer, n uint32)

//go:wasmimport kpipe enable_features
func hostEnableFeatures(mask int64) int64

// host is the kpipe import module.
var host hostAPI = wasmHost{}

type wasmHost struct{}

func (wasmHost) config(buf []byte) int {
	return int(hostConfigGet(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf))))
}

func (wasmHost) logEnabled(l Level) bool { return hostLogEnabled(int32(l.clamp())) != 0 }

func (wasmHost) log(l Level, msg string) {
	hostLog(int32(l.clamp()), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func (wasmHost) setError(msg string) {
	hostSetError(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func (wasmHost) enableFeatures(mask uint64) uint64 { return uint64(hostEnableFeatures(int64(mask))) }

// The exports (ABI section 3).

//go:wasmexport kpipe_abi_v1
func kpipeABIv1() {}

//go:wasmexport kpipe_kinds
func kpipeKinds() int32 {
	k := rt.kinds()
	if k == 0 {
		// The host refuses the module; say why on standard error, which
		// it logs.
		println("kpipe: no plugin is registered: call kpipe.RegisterInterceptor, RegisterSerializer or RegisterPartitioner from an init function (main is never run in a -buildmode=c-shared module)")
	}
	return k
}

//go:wasmexport kpipe_buffer
func kpipeBuffer(size int32) int32 {
	b := rt.buffer(size)
	if b == nil {
		return 0
	}
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport kpipe_init
func kpipeInit() int64 { return rt.init() }

//go:wasmexport kpipe_on_send
func kpipeOnSend(n int32) int64 { return slice(rt.onSend(n)) }

//go:wasmexport kpipe_serialize
func kpipeSerialize(target, n int32) int64 { return slice(rt.serialize(target, n)) }

//go:wasmexport kpipe_partition
func kpipePartition(numPartitions, n int32) int64 { return rt.partition(numPartitions, n) }

// The batch hooks (ABI section 5.5). Like the single-record hooks, they are
// exported whatever the plugin registered (Go cannot export conditionally) and
// fail with KPIPE_ERROR for a kind that is not registered. kpipe_on_ack and
// kpipe_on_ack_batch are exported by package ack, which only plugins with
// OnAck import: an export the host sees makes it keep every record for
// acknowledgement.

//go:wasmexport kpipe_on_send_batch
func kpipeOnSendBatch(count, n int32) int64 { return slice(rt.onSendBatch(count, n)) }

//go:wasmexport kpipe_partition_batch
func kpipePartitionBatch(count, n int32) int64 { return slice(rt.partitionBatch(count, n)) }

// slice packs a non-empty b as the ABI's (ptr << 32) | len, and otherwise
// returns code.
func slice(b []byte, code int64) int64 {
	if len(b) == 0 {
		return code
	}
	return int64(uint64(addressOf(b))<<32 | uint64(len(b)))
}

// addressOf returns the address of b's first byte in the module's memory.
func addressOf(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
