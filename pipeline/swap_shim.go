package pipeline

// TEMPORARY (branch live): this file stands in for the versioned chains of
// the pipeline core (branch core) so that `kpipe run --watch` and its tests
// build before they are merged. Delete it when Producer.Swap and
// Producer.ChainVersion arrive from core.
//
// This Swap replaces the partitioner only (through SetPartitioner) and
// refuses every other option, so that a reload that would change anything
// else fails loudly instead of being half applied. The retired partitioner is
// not closed (its host closes it at exit).

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
)

var shimVersions sync.Map // *Producer -> *atomic.Uint64

func (p *Producer) shimVersion() *atomic.Uint64 {
	v, _ := shimVersions.LoadOrStore(p, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// Swap makes the chain built from opts current and returns its version.
// (Temporary: the partitioner only; see the top of this file.)
func (p *Producer) Swap(_ context.Context, opts ...Option) (uint64, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	part, name := cfg.part, cfg.partName
	cfg.part, cfg.partName = nil, ""
	if def := defaultConfig(); !reflect.DeepEqual(cfg, def) {
		return 0, errors.New("pipeline: Swap (temporary, until the pipeline core lands) replaces only the partitioner; this chain has interceptors, serializers or a circuit breaker")
	}
	p.SetPartitioner(name, part)
	return p.shimVersion().Add(1) + 1, nil
}

// ChainVersion is the current chain's version (1 for the chain New built).
func (p *Producer) ChainVersion() uint64 { return p.shimVersion().Load() + 1 }
