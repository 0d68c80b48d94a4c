package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// The pool of a plugin is a fixed array of slots, one per instance the
// plugin may have. A slot is free, held by one caller (busy), or retired by
// Close; a free or held slot has an instance, or none yet (a new slot, or
// one whose instance faulted and was closed). Taking a free slot is one
// compare-and-swap; only when every slot is held does a caller block, on
// the wake channel, which releases signal while someone waits. See
// RATIONALE.md, "The pool".
type slot struct {
	state atomic.Uint32
	inst  atomic.Pointer[instance]

	_ [64]byte // keep slots on separate cache lines
}

// Slot states.
const (
	slotFree    = 0
	slotBusy    = 1
	slotRetired = 2 // taken by Close for good
)

// tryTake takes a free slot, preferring one with an idle instance, so that
// a plugin called by one goroutine at a time keeps using one instance. It
// returns nil if every slot is busy.
func (p *Plugin) tryTake() *slot {
	for i := range p.slots {
		s := &p.slots[i]
		if s.state.Load() == slotFree && s.inst.Load() != nil && s.state.CompareAndSwap(slotFree, slotBusy) {
			return s
		}
	}
	for i := range p.slots {
		s := &p.slots[i]
		if s.state.Load() == slotFree && s.state.CompareAndSwap(slotFree, slotBusy) {
			return s
		}
	}
	return nil
}

// take takes a slot, waiting while every slot is busy.
func (p *Plugin) take(ctx context.Context, h hook) (*slot, error) {
	if s := p.tryTake(); s != nil {
		return s, nil
	}
	// Announce the wait before looking again: a release that frees a slot
	// after the second look sees the waiter and sends a wake-up.
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		if s := p.tryTake(); s != nil {
			return s, nil
		}
		select {
		case <-p.wake:
		case <-p.done:
			return nil, p.closedError(h)
		case <-ctx.Done():
			return nil, fmt.Errorf("wasmhost: plugin %q: %s: waiting for a free instance: %w", p.name, hookNames[h], ctx.Err())
		}
	}
}

// free gives a slot back and wakes a waiter, if any.
func (p *Plugin) free(s *slot) {
	s.state.Store(slotFree)
	if p.waiters.Load() > 0 {
		select {
		case p.wake <- struct{}{}:
		default: // enough wake-ups are pending
		}
	}
}

// acquire takes a pool slot and returns its instance, creating it if the
// slot has none. It blocks while every instance is busy.
func (p *Plugin) acquire(ctx context.Context, h hook) (*instance, error) {
	s, err := p.take(ctx, h)
	if err != nil {
		return nil, err
	}
	if p.closed.Load() {
		p.free(s)
		return nil, p.closedError(h)
	}
	if inst := s.inst.Load(); inst != nil {
		return inst, nil
	}
	inst, err := p.newInstance(ctx, s)
	if err != nil {
		p.free(s)
		return nil, p.fault(h, FaultInstantiate, err)
	}
	return inst, nil
}

func (p *Plugin) closedError(h hook) error {
	return fmt.Errorf("wasmhost: plugin %q: %s: %w", p.name, hookNames[h], ErrClosed)
}

// release returns an instance to the pool after a call that did not fault.
func (p *Plugin) release(inst *instance) { p.free(inst.slot) }

// discard closes an instance that faulted and frees its slot for a new one.
func (p *Plugin) discard(inst *instance) {
	inst.slot.inst.Store(nil)
	inst.close(context.Background())
	p.stats.replaced.Add(1)
	p.free(inst.slot)
}

// Close stops the plugin: new calls fail with ErrClosed, calls in flight are
// waited for, and every instance and the compiled module are freed. If ctx
// ends first, Close returns its error and the instances still in use are
// freed when the Host closes. Close is idempotent.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.done)
		p.waiters.Add(1)
		defer p.waiters.Add(-1)
		var errs []error
		for i := range p.slots {
			s := &p.slots[i]
			for !s.state.CompareAndSwap(slotFree, slotRetired) {
				select {
				case <-p.wake:
				case <-ctx.Done():
					p.closeErr = fmt.Errorf("wasmhost: close plugin %q: waiting for calls in flight: %w", p.name, ctx.Err())
					p.host.unregister(p)
					return
				}
			}
			if inst := s.inst.Swap(nil); inst != nil {
				errs = append(errs, inst.close(ctx))
			}
		}
		errs = append(errs, p.compiled.Close(ctx))
		p.host.unregister(p)
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("wasmhost: close plugin %q: %w", p.name, err)
		}
	})
	return p.closeErr
}
