package gateway

import (
	"math/bits"
	"strings"
	"sync"
	"unsafe"

	"github.com/kpipe/kpipe/plugins"
)

// The memory of a produce request is recycled rather than left to the
// garbage collector: the request's body, the records of its compressed
// batches once decompressed, and the plugins.Record values the pipeline is
// given come from pools, and the records point into the request's bytes
// (keys, values, header values) instead of holding copies.
//
// Ownership: every buffer taken for a request belongs to its pending entry
// (pending.bufs, recs and headers). It goes back to its pool only in the
// connection's writer, once every batch result of the request is done —
// each record sent from it has had its callback from the pipeline, after
// which neither the pipeline nor franz-go looks at it — and its response
// has been written, or dropped for acks=0. A request whose answer is given
// up on at shutdown, with records possibly still in the pipeline, keeps its
// buffers, and the garbage collector takes them. Header keys are strings,
// which a plugin may keep, so they never point into a request: see
// conn.headerKey.
//
// What it saves is measured by BenchmarkGateway (bytes allocated per
// record: 1,365-1,453 with the free lists off, 1,021-1,205 on) and, for the
// gateway process alone, by scripts/gateway_bench.sh run against a build
// with the free lists off (KPIPE_BENCH_BASE): CPU per record 1.36 µs off,
// 0.78 µs on, for the franz-go client; 1.32 and 0.86 µs for kcat. The free
// lists cost memory: peak RSS 99 MiB off, 130 MiB on, in that run.

// Size classes of the pools: powers of two from 1KiB to 16MiB. Larger
// buffers are allocated and left to the garbage collector.
const (
	minPoolShift = 10
	maxPoolShift = 24
	poolClasses  = maxPoolShift - minPoolShift + 1
)

// poolClass is the class whose size holds n, or -1 if n is above the
// largest.
func poolClass(n int) int {
	if n <= 1<<minPoolShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minPoolShift
	if c >= poolClasses {
		return -1
	}
	return c
}

// pooledSize is the capacity of a slice of length n from a slicePool.
func pooledSize(n int) int {
	if c := poolClass(n); c >= 0 {
		return 1 << (c + minPoolShift)
	}
	return n
}

// slicePool recycles slices of T by size class, up to a budget of bytes
// kept. It keeps them in free lists of its own rather than in sync.Pools:
// a sync.Pool is emptied by every garbage collection, and under a steady
// stream of requests (BenchmarkGateway) about half the gets then missed.
// A slice is handed out as a pointer, which is what goes back into the
// free list, so that neither get nor put allocates once warm.
type slicePool[T any] struct {
	// zero: put clears the elements, so that a kept slice holds no
	// memory alive through pointers in it.
	zero bool
	// budget is the most bytes the free lists keep; beyond it, put
	// drops slices.
	budget int64

	mu       sync.Mutex
	kept     int64
	free     [poolClasses][]*[]T
	elemSize int64
}

func newSlicePool[T any](budget int64, zero bool) *slicePool[T] {
	var t T
	return &slicePool[T]{budget: budget, zero: zero, elemSize: int64(unsafe.Sizeof(t))}
}

// get returns a slice of length n.
func (p *slicePool[T]) get(n int) *[]T {
	c := poolClass(n)
	if c < 0 {
		s := make([]T, n)
		return &s
	}
	p.mu.Lock()
	if l := len(p.free[c]); l > 0 {
		s := p.free[c][l-1]
		p.free[c][l-1] = nil
		p.free[c] = p.free[c][:l-1]
		p.kept -= int64(cap(*s)) * p.elemSize
		p.mu.Unlock()
		*s = (*s)[:n]
		return s
	}
	p.mu.Unlock()
	s := make([]T, n, 1<<(c+minPoolShift))
	return &s
}

// put returns s to the pool; s must not be used afterwards. A slice whose
// capacity is not a class size (grown elsewhere), or that would take the
// free lists over their budget, is dropped.
func (p *slicePool[T]) put(s *[]T) {
	n := cap(*s)
	c := poolClass(n)
	if c < 0 || n != 1<<(c+minPoolShift) {
		return
	}
	size := int64(n) * p.elemSize
	if p.zero {
		clear((*s)[:n])
	}
	*s = (*s)[:0]
	p.mu.Lock()
	if p.kept+size <= p.budget {
		p.free[c] = append(p.free[c], s)
		p.kept += size
	}
	p.mu.Unlock()
}

// pools are the gateway's pools of request memory.
type pools struct {
	bytes   *slicePool[byte]
	records *slicePool[plugins.Record]
	headers *slicePool[plugins.Header]
}

// newPools returns pools that keep at most budget bytes: half for bytes,
// three eighths for records (128 bytes each, about what a record takes in
// a request), an eighth for headers.
func newPools(budget int64) *pools {
	return &pools{
		bytes:   newSlicePool[byte](budget/2, false),
		records: newSlicePool[plugins.Record](budget/8*3, true),
		headers: newSlicePool[plugins.Header](budget/8, true),
	}
}

// maxHeaderKeys bounds the header keys a connection remembers; past it,
// each new key is copied.
const maxHeaderKeys = 1024

// headerKey returns k as a string that owns its bytes: k points into a
// request, which is recycled. Header keys repeat from record to record, so
// the connection keeps the ones it has seen and a known key costs a map
// lookup, not an allocation. Only the connection's reader calls it.
func (c *conn) headerKey(k string) string {
	if s, ok := c.headerKeys[k]; ok {
		return s
	}
	s := strings.Clone(k)
	if len(c.headerKeys) < maxHeaderKeys {
		if c.headerKeys == nil {
			c.headerKeys = map[string]string{}
		}
		c.headerKeys[s] = s
	}
	return s
}

// release gives p's buffers back to their pools if every result of p is
// done; otherwise records may still be in the pipeline, and they are left
// to the garbage collector.
func (g *Gateway) release(p *pending) {
	for _, r := range p.results {
		if !r.isDone() {
			return
		}
	}
	for _, b := range p.bufs {
		g.pools.bytes.put(b)
	}
	for _, r := range p.recs {
		g.pools.records.put(r)
	}
	for _, h := range p.headers {
		g.pools.headers.put(h)
	}
	p.bufs, p.recs, p.headers = nil, nil, nil
}
