package wasmhost

import "github.com/tetratelabs/wazero/experimental"

// limitedMemory backs one instance's linear memory and refuses to grow it
// beyond a limit, which makes memory.grow return -1 in the guest. wazero's
// own limit (RuntimeConfig.WithMemoryLimitPages) is runtime-wide; this one is
// per plugin. See RATIONALE.md.
type limitedMemory struct {
	buf   []byte
	limit uint64
	// refused is set when a growth was refused, so that a fault that
	// follows can be reported as a memory fault. It is reset before each
	// call; only the goroutine running the instance touches it.
	refused bool
}

// Allocate implements experimental.MemoryAllocator. wazero calls it once,
// when the instance's memory is created.
func (m *limitedMemory) Allocate(capacity, _ uint64) experimental.LinearMemory {
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
	// page at a time does not copy its memory on every growth.
	newCap := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *limitedMemory) Free() { m.buf = nil }
