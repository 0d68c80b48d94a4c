package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// The pool of a plugin is a fixed array of slots, one per instance the
// plugin may have. A slot is free, held by one caller (busy), or retired by
// Close; a slot has an instance, or none yet (a new slot, or one whose
// instance faulted and was closed). Taking a free slot is one
// compare-and-swap and giving it back another; only when every slot is
// held does a caller block, on the wake channel, which free signals while
// someone waits. See RATIONALE.md, "The pool".
//
// The slot state is also what the watchdog of an instrumented plugin
// watches (watchdog.go): each hold of a slot gets a new sequence number,
// so "busy with the same state as at the last look" means "the same call".
type slot struct {
	// state is the hold's sequence number << slotSeqShift | slot flags.
	state atomic.Uint64
	inst  atomic.Pointer[instance]

	// Owned by the holder: the state it set when it took the slot, and
	// the Done channel it last published in done.
	held     uint64
	lastDone <-chan struct{}

	// done is the Done channel of the holder's context (instrumented
	// plugins only), for the watchdog to stop a call whose context ends.
	done atomic.Value // <-chan struct{}
	// reason says why the watchdog interrupted the hold; written before
	// the state gets slotInterrupted.
	reason uint32

	// Owned by the watchdog goroutine: the hold it last saw, and when it
	// first saw it.
	seenState uint64
	seenSince time.Time

	// Slots on separate cache lines: a send and an acknowledgement on
	// two cores each keep to their own slot (BenchmarkProduce/wasm in
	// package pipeline; RATIONALE.md, "The pool").
	_ [64]byte
}

// Slot flags. A slot is free when no flag is set.
const (
	slotBusy         = 1 << iota // held by a caller
	slotInterrupting             // the watchdog is setting the interrupt flag
	slotInterrupted              // the watchdog set the interrupt flag
	slotRetired                  // taken by Close for good
	slotCreating                 // the holder is creating the slot's instance
	slotSeqShift     = iota
	slotFlags        = 1<<slotSeqShift - 1
)

// tryTake takes a free slot, preferring one with an idle instance, so that
// a plugin called by one goroutine at a time keeps using one instance. It
// returns nil if every slot is busy.
//
// Scans for on_ack start at the last slot and go down, all others start at
// the first and go up. Acknowledgements arrive on the client's completion
// goroutine while sends run on the callers' goroutines: scanning from
// opposite ends lets each side settle on its own slot and instance, whose
// state word and guest memory then stay in one core's cache, instead of
// both sides taking the first slot in turn and moving its cache lines
// between cores on every call (see RATIONALE.md, "The pool").
func (p *Plugin) tryTake(h hook) *slot {
	n := len(p.slots)
	for pass := range 2 {
		for j := range n {
			i := j
			if h == hookOnAck {
				i = n - 1 - j
			}
			s := &p.slots[i]
			st := s.state.Load()
			if st&slotFlags != 0 || (pass == 0 && s.inst.Load() == nil) {
				continue
			}
			held := (st>>slotSeqShift+1)<<slotSeqShift | slotBusy
			if s.state.CompareAndSwap(st, held) {
				s.held = held
				return s
			}
		}
	}
	return nil
}

// take takes a slot, waiting while every slot is busy.
func (p *Plugin) take(ctx context.Context, h hook) (*slot, error) {
	if s := p.tryTake(h); s != nil {
		return s, nil
	}
	// Announce the wait before looking again: a free that happens after
	// the second look sees the waiter and sends a wake-up.
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		if s := p.tryTake(h); s != nil {
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

// free gives a slot back and wakes a waiter, if any. If the watchdog
// interrupted the hold, free first clears the instance's interrupt flag:
// a guest that returned before reaching a check leaves it set, and it must
// not stop the next call.
func (p *Plugin) free(s *slot) {
	idle := s.held &^ slotFlags
	if !s.state.CompareAndSwap(s.held, idle) {
		s.settle()
		if inst := s.inst.Load(); inst != nil && inst.interrupt != nil {
			inst.interrupt.Set(0)
		}
		s.state.Store(idle)
	}
	if p.waiters.Load() > 0 {
		select {
		case p.wake <- struct{}{}:
		default: // enough wake-ups are pending
		}
	}
}

// settle waits until a watchdog that began to interrupt the hold has set
// the interrupt flag, and returns the final state.
func (s *slot) settle() uint64 {
	for {
		st := s.state.Load()
		if st&slotInterrupting == 0 {
			return st
		}
		runtime.Gosched()
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
	if p.instrumented {
		if d := ctx.Done(); d != s.lastDone {
			s.done.Store(d)
			s.lastDone = d
		}
	}
	if inst := s.inst.Load(); inst != nil {
		return inst, nil
	}
	// Creating the instance is not part of the call: it runs under its
	// own limit, and the call's time starts when it is done.
	s.rehold(slotCreating)
	inst, err := p.newInstance(ctx, s, false)
	if err != nil {
		p.free(s)
		return nil, p.fault(h, FaultInstantiate, err)
	}
	s.rehold(0)
	return inst, nil
}

// rehold starts a new hold of the slot, which its caller holds, with the
// extra flags given (slotCreating or 0): the watchdog sees a new sequence
// number and measures the work that follows from its start, against the
// limit the flags select. If the watchdog interrupted the hold that ends,
// rehold clears the instance's interrupt flag: whatever it stopped is over.
func (s *slot) rehold(flags uint64) {
	held := (s.held>>slotSeqShift+1)<<slotSeqShift | slotBusy | flags
	if !s.state.CompareAndSwap(s.held, held) {
		s.settle()
		if inst := s.inst.Load(); inst != nil && inst.interrupt != nil {
			inst.interrupt.Set(0)
		}
		s.state.Store(held)
	}
	s.held = held
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
			for {
				st := s.state.Load()
				if st&slotFlags == 0 && s.state.CompareAndSwap(st, st|slotRetired) {
					break
				}
				select {
				case <-p.wake:
				case <-ctx.Done():
					p.closeErr = fmt.Errorf("wasmhost: close plugin %q: waiting for calls in flight: %w", p.name, ctx.Err())
					// The instances left are closed with the Host's
					// runtime, maybe while a call still runs in
					// one: their memory must outlive it.
					for j := i; j < len(p.slots); j++ {
						if inst := p.slots[j].inst.Load(); inst != nil {
							inst.memory.abandoned.Store(true)
						}
					}
					p.host.unregister(p)
					return
				}
			}
			if inst := s.inst.Swap(nil); inst != nil {
				errs = append(errs, inst.close(ctx))
			}
		}
		if p.retired != nil {
			close(p.retired)
		}
		errs = append(errs, p.compiled.Close(ctx))
		p.host.unregister(p)
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("wasmhost: close plugin %q: %w", p.name, err)
		}
	})
	return p.closeErr
}
