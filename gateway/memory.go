package gateway

import (
	"context"
	"sync"
)

// memory bounds the bytes of produce requests the gateway holds: a request
// is held from the moment it is read until every record in it has an
// outcome upstream and its response is written.
//
// take waits while the bytes in use are over the limit; add counts bytes
// without waiting (the decompressed records of a request already taken),
// so that a request is never stuck halfway: the limit can be overshot by
// what the requests being decoded expand to, and new requests wait until
// use is back under it.
type memory struct {
	limit int64

	mu      sync.Mutex
	used    int64
	waiters int
	freed   chan struct{} // closed and replaced when bytes are given back
}

func newMemory(limit int64) *memory {
	return &memory{limit: limit, freed: make(chan struct{})}
}

// take counts n bytes, waiting until they fit under the limit (a request
// larger than the limit waits until nothing else is held). It reports
// whether it had to wait, or ctx's error if ctx ended first.
func (m *memory) take(ctx context.Context, n int64) (waited bool, err error) {
	m.mu.Lock()
	for m.used > 0 && m.used+n > m.limit {
		waited = true
		ch := m.freed
		m.waiters++
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			m.mu.Lock()
			m.waiters--
			m.mu.Unlock()
			return waited, ctx.Err()
		}
		m.mu.Lock()
		m.waiters--
	}
	m.used += n
	m.mu.Unlock()
	return waited, nil
}

// add counts n more bytes without waiting.
func (m *memory) add(n int64) {
	m.mu.Lock()
	m.used += n
	m.mu.Unlock()
}

// give returns n bytes.
func (m *memory) give(n int64) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	m.used -= n
	if m.waiters > 0 {
		close(m.freed)
		m.freed = make(chan struct{})
	}
	m.mu.Unlock()
}

// waiting reports whether a request waits for memory.
func (m *memory) waiting() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiters > 0
}

// inUse is the bytes held now.
func (m *memory) inUse() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}
