package wasmhost

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// limitedMemory backs one instance's linear memory and refuses to grow it
// beyond a limit, which makes memory.grow return -1 in the guest. wazero's
// own limit (RuntimeConfig.WithMemoryLimitPages) is runtime-wide; this one is
// per plugin. See RATIONALE.md.
//
// Where the platform can (Linux and macOS, memory_mmap.go), the memory is a private
// anonymous mapping of the whole limit, made when the instance is created:
// the kernel gives it pages only as the guest touches them, growth is a
// longer slice of the same mapping (no copy), and the memory stays out of
// the Go heap, so it does not raise the garbage collector's goal. Elsewhere,
// or if the mapping fails, it is a Go slice that grows geometrically. The
// peak RSS of kpipe-quickstart in scripts/bench_cli.py shows what the mapping
// saves; RATIONALE.md, "Guest memory outside the Go heap".
type limitedMemory struct {
	buf   []byte
	limit uint64
	// mapped is the mapping buf lives in, nil for a Go slice.
	mapped []byte
	// abandoned is set when a call may still run in the instance when it
	// is closed (Plugin.Close gave up waiting for it): Free then leaves
	// the mapping in place, since the guest's compiled code reads and
	// writes it directly and an unmapped page would crash the process.
	// Such a mapping is never released; it happens only when a process
	// stops (or a chain is retired) with a plugin call that does not end.
	abandoned atomic.Bool
	// refused is set when a growth was refused, so that a fault that
	// follows can be reported as a memory fault. It is reset before each
	// call; only the goroutine running the instance touches it.
	refused bool
}

// Allocate implements experimental.MemoryAllocator. wazero calls it once,
// when the instance's memory is created.
func (m *limitedMemory) Allocate(capacity, _ uint64) experimental.LinearMemory {
	if b := mapMemory(m.limit); b != nil {
		m.mapped, m.buf = b, b[:0]
		return m
	}
	m.buf = make([]byte, 0, min(capacity, m.limit))
	return m
}

// Reallocate implements experimental.LinearMemory.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Memory never shrinks, so the capacity beyond the length was never
		// visible to the guest and is still zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow geometrically (bounded by the limit) so that a guest growing one
	// page at a time does not copy its memory on every growth. (A mapping
	// has the whole limit as its capacity and never gets here.)
	newCap := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return m.buf
}

// Free implements experimental.LinearMemory. wazero calls it when the
// instance is closed, after its last call, or with a call still running
// when it was abandoned: then the memory is left as it is, mapping and
// slice, for the call still reads it (read) and the guest's code uses it.
func (m *limitedMemory) Free() {
	if m.abandoned.Load() {
		return
	}
	if m.mapped != nil {
		unmapMemory(m.mapped)
		m.mapped = nil
	}
	m.buf = nil
}

// read returns the n bytes of guest memory at ptr, capped at their length,
// or false if they are not all inside it: what api.Memory's Read returns,
// without its interface call (21 fewer instructions per read of the C
// stamp's result in BenchmarkSDKStampParts). buf is the memory wazero runs
// the guest on (Allocate and Reallocate hand it over), so it holds the
// guest's writes. The hooks reach the guest's memory (the input buffer,
// the results) through read; host functions use the api.Memory wazero
// passes them.
func (m *limitedMemory) read(ptr, n uint32) ([]byte, bool) {
	end := uint64(ptr) + uint64(n)
	if end > uint64(len(m.buf)) {
		return nil, false
	}
	return m.buf[ptr:end:end], true
}
