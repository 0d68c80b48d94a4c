package wasmhost

import (
	"context"
	"fmt"
	"time"
)

// interruptExport is the name under which instrumented modules export
// their interrupt flag (see internal/instrument). ABI section 3 reserves
// it.
const interruptExport = "kpipe.interrupt"

// startExport is the name under which instrumented modules export their
// WebAssembly start function, which newInstance calls (see
// internal/instrument). ABI section 3 reserves it.
const startExport = "kpipe.start"

// stackExport is the name under which instrumented modules export their
// stack budget global (see internal/instrument), negative after a call
// trapped for lack of budget. ABI section 3 reserves it.
const stackExport = "kpipe.stack"

// Why the watchdog interrupted a call (slot.reason).
const (
	interruptTimeout = 1 + iota
	interruptContext
)

// watchdogPeriod is how often a plugin's watchdog looks at its calls: an
// eighth of the timeout, so that an overrunning call is stopped between
// the timeout and 1.25 times the timeout after it started (plus the time
// the guest takes to reach its next check), but at least every 100 ms, so
// that a cancelled context stops a call soon even with a long timeout, and
// at most every millisecond. Without a limit it looks every 100 ms, for
// cancelled contexts.
func watchdogPeriod(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return 100 * time.Millisecond
	}
	return min(max(timeout/8, time.Millisecond), 100*time.Millisecond)
}

// watch is the watchdog goroutine of a plugin whose module was instrumented.
// Each period it looks at the state of every pool slot, and sets the
// interrupt flag of the instance of a slot it has seen held (by one call:
// each hold has its own sequence number) for at least the timeout, or whose
// holder's context is done. It measures only from its own first sighting
// of a hold, so it never stops a call early, whatever its own delays, and
// calls pay for no clock reading. A hold covers one hook call (encoding the
// input, the guest call, decoding the result), or the creation of an
// instance (instantiation, _initialize, kpipe_init, the first kpipe_buffer),
// which is marked slotCreating and held to the plugin's creation limit
// instead of the call timeout; a call that needs a new instance starts a new
// hold once it is created (slot.rehold). watch returns when Close has retired
// every slot, or, if Close gave up waiting, once the plugin is closed and
// no slot is held.
func (p *Plugin) watch() {
	limit := p.timeout
	if limit <= 0 {
		// No call timeout: only the load timeout and cancellations.
		limit = p.createTimeout
	}
	t := time.NewTicker(watchdogPeriod(limit))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// The time of the scan, not of the tick: a tick that waited
			// for this goroutine predates holds begun since, and
			// recording it as when a hold was first seen would stop that
			// hold early.
			if busy := p.scan(time.Now()); !busy && p.closed.Load() {
				return
			}
		case <-p.retired:
			return
		}
	}
}

// scan looks at every slot once and reports whether one was busy.
func (p *Plugin) scan(now time.Time) bool {
	busy := false
	for i := range p.slots {
		s := &p.slots[i]
		st := s.state.Load()
		if st&slotBusy == 0 {
			continue
		}
		busy = true
		if st&(slotInterrupting|slotInterrupted) != 0 {
			continue
		}
		if s.seenState != st {
			s.seenState, s.seenSince = st, now
		}
		limit := p.timeout
		if st&slotCreating != 0 {
			limit = p.createTimeout
		}
		switch {
		case limit > 0 && now.Sub(s.seenSince) >= limit:
			s.interrupt(st, interruptTimeout)
		case s.ctxDone():
			s.interrupt(st, interruptContext)
		}
	}
	return busy
}

// ctxDone reports whether the context of the slot's holder is done.
func (s *slot) ctxDone() bool {
	d, _ := s.done.Load().(<-chan struct{})
	if d == nil {
		return false
	}
	select {
	case <-d:
		return true
	default:
		return false
	}
}

// interrupt sets the interrupt flag of the slot's instance if the hold
// whose state is st still goes on. Run by the watchdog.
func (s *slot) interrupt(st uint64, reason uint32) {
	if !s.state.CompareAndSwap(st, st|slotInterrupting) {
		return // the hold ended meanwhile
	}
	s.reason = reason
	if inst := s.inst.Load(); inst != nil && inst.interrupt != nil {
		inst.interrupt.Set(1)
	}
	s.state.Store(st | slotInterrupted)
}

// interruption says whether the watchdog interrupted the current hold of
// the instance's slot, and why (0 if it did not). Called by the holder
// after a guest call failed.
func (inst *instance) interruption() uint32 {
	if inst.slot.settle()&slotInterrupted == 0 {
		return 0
	}
	return inst.slot.reason
}

// stoppedBy is the error of a call stopped because the caller's ctx ended,
// or else because the instance's load or call timeout passed; trap is what
// the call returned.
func (inst *instance) stoppedBy(ctx context.Context, trap error) *callError {
	switch cerr := ctx.Err(); {
	case cerr == context.Canceled:
		return &callError{FaultCanceled, &stoppedError{"call stopped: " + cerr.Error(), cerr, trap}}
	case cerr != nil:
		return &callError{FaultTimeout, &stoppedError{"call stopped: " + cerr.Error(), cerr, trap}}
	case inst.creating:
		return &callError{FaultTimeout, &stoppedError{fmt.Sprintf("stopped after running longer than the load timeout (limit of %v): %v",
			inst.p.createTimeout, context.DeadlineExceeded), context.DeadlineExceeded, trap}}
	default:
		return &callError{FaultTimeout, &stoppedError{fmt.Sprintf("call stopped after running longer than the call timeout of %v: %v",
			inst.p.timeout, context.DeadlineExceeded), context.DeadlineExceeded, trap}}
	}
}

// stoppedError is a call stopped by the watchdog or a context. Its message says why and
// leaves out the trap the stop made the guest report (wazero's "wasm
// error: unreachable" and its stack trace, which are not the guest's
// doing); both stay reachable through errors.Is and errors.As.
type stoppedError struct {
	msg   string
	cause error // context.Canceled or context.DeadlineExceeded
	trap  error // what the guest call returned
}

func (e *stoppedError) Error() string   { return e.msg }
func (e *stoppedError) Unwrap() []error { return []error{e.cause, e.trap} }
