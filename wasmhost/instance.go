package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
	"github.com/kpipe/kpipe/wasmhost/internal/instrument"
)

// instance is one instantiated module. It runs one call at a time: whoever
// took it from the pool owns it until it is released or discarded.
type instance struct {
	p    *Plugin
	slot *slot // the pool slot the instance lives in
	mod  api.Module
	// ctx is the context of calls when the plugin has no call timeout: it
	// carries the instance for host functions and is built once, so that
	// calls do not allocate.
	ctx    context.Context
	fns    [numAllHooks]api.Function
	buffer api.Function
	// stack is the reusable parameter/result stack of CallWithStack; every
	// hook has at most two parameters and one result.
	stack  []uint64
	bufPtr uint32
	bufCap uint32

	// memory is the guest's linear memory, which the host reads and
	// writes through memory.read.
	memory         *limitedMemory
	stdout, stderr *lineWriter

	// edits applies the edit lists of kpipe_on_send results (ABI 8.2).
	edits abi.Applier

	// errMsg is the message of set_error during the current call.
	errMsg []byte
	errSet bool

	// interrupt is the interrupt flag of an instrumented module
	// (Plugin.instrumented, watchdog.go); nil otherwise.
	interrupt api.MutableGlobal
	// stackBudget is the stack budget global of an instrumented module;
	// nil otherwise.
	stackBudget api.Global
	// creating is true while newInstance runs: calls are then held to
	// the plugin's creation limit, not to its call timeout; without
	// instrumentation, to createDeadline.
	creating       bool
	createDeadline time.Time

	// callDone is the Done channel of the context that wazero's
	// termination checks watch during the current call or instantiation
	// (a module that is not instrumented), so that a WASI sleep ends with
	// it (see sleep); nil otherwise. Only the goroutine running the
	// instance touches it.
	callDone <-chan struct{}

	// features are the feature bits the guest enabled (ABI section 8);
	// negotiating is true while _initialize and kpipe_init run, the only
	// time enable_features changes them.
	features    uint64
	negotiating bool
}

// newInstance instantiates the plugin's module in the sandbox for slot s,
// which the caller holds (with slotCreating set, for the watchdog), runs
// _initialize and kpipe_init, and obtains the input buffer. All of it is
// held to the plugin's creation limit (Plugin.createTimeout), not to the
// call timeout. On success the instance is s's instance.
//
// An instrumented module's start function (exported by the instrumenter)
// runs first, under the watchdog; an uninstrumented module's runs inside
// instantiation, under wazero's termination checks.
//
// A probe (for Inspect, after kpipe_init failed) runs only _initialize: it
// can answer kpipe_kinds and nothing else, and must be closed after use.
func (p *Plugin) newInstance(ctx context.Context, s *slot, probe bool) (*instance, error) {
	inst := &instance{
		p:        p,
		slot:     s,
		creating: true,
		stack:    make([]uint64, 2),
		// Used only by wazero's termination checks (not instrumented).
		createDeadline: time.Now().Add(p.createTimeout),
		memory:         &limitedMemory{limit: p.memLimit},
		stdout:         newLineWriter(p.logger, p.logLimit, hclog.Info, "stdout"),
		stderr:         newLineWriter(p.logger, p.logLimit, hclog.Warn, "stderr"),
	}
	inst.ctx = context.WithValue(context.Background(), instanceKey{}, inst)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called below, to report its failure
		WithStdout(inst.stdout).
		WithStderr(inst.stderr).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(inst.sleep)
	ictx := experimental.WithMemoryAllocator(context.WithValue(ctx, instanceKey{}, inst), inst.memory)
	if !p.instrumented && p.createTimeout > 0 {
		// wazero's termination checks stop a start function that
		// overruns the load timeout; an instrumented module's start
		// function runs below, under the watchdog.
		var cancel context.CancelFunc
		ictx, cancel = context.WithDeadline(ictx, inst.createDeadline)
		defer cancel()
	}
	if !p.instrumented {
		inst.callDone = ictx.Done()
	}
	mod, err := p.rt.InstantiateModule(ictx, p.compiled, cfg)
	inst.callDone = nil
	if err != nil {
		inst.flush()
		switch {
		case ctx.Err() != nil:
			return nil, &earlyInitError{fmt.Errorf("instantiate: start function: stopped: %w (%w)", ctx.Err(), err)}
		case ictx.Err() != nil:
			return nil, &earlyInitError{fmt.Errorf("instantiate: start function: stopped after running longer than the load timeout (limit of %v): %w",
				p.createTimeout, err)}
		}
		return nil, &earlyInitError{fmt.Errorf("instantiate: %w", err)}
	}
	p.stats.created.Add(1)
	inst.mod = mod
	inst.buffer = mod.ExportedFunction(abi.ExportBuffer)
	if p.instrumented {
		g, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
		if !ok {
			mod.Close(ctx)
			return nil, fmt.Errorf("instantiate: the instrumented module does not export %s", interruptExport)
		}
		inst.interrupt = g
		inst.stackBudget = mod.ExportedGlobal(stackExport)
	}
	for h := range numAllHooks {
		inst.fns[h] = mod.ExportedFunction(hookNames[h]) // nil if absent
	}
	s.inst.Store(inst)
	if inst.interrupt != nil && s.settle()&slotInterrupted != 0 {
		// The watchdog interrupted the creation before the instance
		// existed: the flag was not set, so set it now.
		inst.interrupt.Set(1)
	}
	err = inst.initialize(ctx, probe)
	if err == nil && !probe && p.featuresFixed && inst.features != p.features {
		err = fmt.Errorf("the instance enabled features %#x (%s), but the plugin's features, fixed by its first instance, are %#x (%s); "+
			"every instance must enable the same features",
			inst.features, abi.FeatureNames(inst.features), p.features, abi.FeatureNames(p.features))
	}
	if err != nil {
		s.inst.Store(nil)
		inst.close(ctx)
		return nil, err
	}
	inst.creating = false
	return inst, nil
}

// initialize runs _initialize and kpipe_init if the module exports them,
// during which the guest may enable features, then asks for the input
// buffer. A probe stops after _initialize.
func (inst *instance) initialize(ctx context.Context, probe bool) error {
	inst.negotiating = true
	err := inst.runInit(ctx, probe)
	inst.negotiating = false
	if err != nil || probe {
		return err
	}
	return inst.growBuffer(ctx, initialBufferSize)
}

// runInit runs the start function of an instrumented module (which the
// instrumenter turned into an export), _initialize and, unless probe,
// kpipe_init.
func (inst *instance) runInit(ctx context.Context, probe bool) error {
	if fn := inst.mod.ExportedFunction(startExport); fn != nil && inst.p.instrumented {
		if err := inst.callInit(ctx, fn); err != nil {
			return &earlyInitError{fmt.Errorf("start function: %w", err)}
		}
	}
	if fn := inst.mod.ExportedFunction(abi.ExportInitialize); fn != nil {
		if err := inst.callInit(ctx, fn); err != nil {
			return &earlyInitError{fmt.Errorf("%s: %w", abi.ExportInitialize, err)}
		}
	}
	if probe {
		return nil
	}
	if fn := inst.mod.ExportedFunction(abi.ExportInit); fn != nil {
		inst.errSet = false
		if err := inst.callInit(ctx, fn); err != nil {
			return fmt.Errorf("%s: %w", abi.ExportInit, err)
		}
		switch r := int64(inst.stack[0]); r {
		case 0:
		case abi.StatusError:
			msg := "no message"
			if inst.errSet {
				msg = string(inst.errMsg)
			}
			return fmt.Errorf("%s failed: %s", abi.ExportInit, msg)
		default:
			return fmt.Errorf("%s returned %d, want 0 or %d", abi.ExportInit, r, abi.StatusError)
		}
	}
	return nil
}

// earlyInitError is the error of an instance that failed before
// _initialize returned (instantiation, the start function, _initialize):
// a probe (Inspect) would fail the same way, so load does not try one.
type earlyInitError struct{ err error }

func (e *earlyInitError) Error() string { return e.err.Error() }
func (e *earlyInitError) Unwrap() error { return e.err }

// callInit calls an initialisation export, with the call timeout if the
// plugin has one. The error is a *callError.
func (inst *instance) callInit(ctx context.Context, fn api.Function) error {
	if ce := inst.invoke(ctx, fn); ce != nil {
		return ce
	}
	return nil
}

// invoke calls fn with the parameters in inst.stack, which receives the
// results, and says why the call failed, if it did.
func (inst *instance) invoke(ctx context.Context, fn api.Function) *callError {
	var err error
	switch {
	case inst.interrupt != nil:
		// Instrumented module: the plugin's watchdog enforces the
		// timeout, watching the pool slot; nothing to set up per call.
		err = fn.CallWithStack(inst.ctx, inst.stack)
		if err != nil && inst.interruption() != 0 {
			return inst.stoppedBy(ctx, err)
		}
	case inst.p.timeout > 0 || inst.creating && inst.p.createTimeout > 0:
		// wazero's termination checks, watching a context per call.
		var cctx context.Context
		var cancel context.CancelFunc
		if inst.creating {
			cctx, cancel = context.WithDeadline(ctx, inst.createDeadline)
		} else {
			cctx, cancel = context.WithTimeout(ctx, inst.p.timeout)
		}
		inst.callDone = cctx.Done()
		err = fn.CallWithStack(context.WithValue(cctx, instanceKey{}, inst), inst.stack)
		inst.callDone = nil
		cancel()
		if err != nil && cctx.Err() != nil {
			return inst.stoppedBy(ctx, err)
		}
	default:
		err = fn.CallWithStack(inst.ctx, inst.stack)
	}
	if err != nil {
		return inst.classify(err)
	}
	return nil
}

// sleepSlice is the longest a guest's WASI sleep goes on before sleep
// looks again at whether the call it is part of was stopped.
const sleepSlice = 10 * time.Millisecond

// errSleepStopped ends a guest's WASI sleep that its call's stop cut
// short (see sleep).
var errSleepStopped = errors.New("WASI sleep stopped")

// sleep is the instance's WASI sleep (poll_oneoff with a clock
// subscription, which Go's time.Sleep and C's nanosleep use): it sleeps ns
// nanoseconds, but once the call or the creation it is part of is to stop,
// because the watchdog interrupted its hold (an instrumented module) or
// the context that wazero's termination checks watch is done, it ends the
// call with a trap, which the caller reports as the stop it is (a guest
// that went on after a sleep cut short would run on with a wrong idea of
// the time). Without this a guest that asked to sleep for a day would hold
// its record, and its pool slot, that long, whatever the plugin's time
// limits.
func (inst *instance) sleep(ns int64) {
	end := time.Now().Add(time.Duration(ns))
	for {
		if inst.stopping() {
			// wazero turns a host function's panic into the error of
			// the call.
			panic(errSleepStopped)
		}
		d := time.Until(end)
		if d <= 0 {
			return
		}
		time.Sleep(min(d, sleepSlice))
	}
}

// stopping reports whether the current call (or creation) of the instance
// is to stop: see sleep.
func (inst *instance) stopping() bool {
	if inst.p.instrumented {
		return inst.slot.state.Load()&(slotInterrupting|slotInterrupted) != 0
	}
	if inst.callDone == nil {
		return false
	}
	select {
	case <-inst.callDone:
		return true
	default:
		return false
	}
}

// growBuffer asks the guest for an input buffer of at least size bytes.
func (inst *instance) growBuffer(ctx context.Context, size uint32) error {
	inst.stack[0] = uint64(size)
	if err := inst.callInit(ctx, inst.buffer); err != nil {
		return fmt.Errorf("%s: %w", abi.ExportBuffer, err)
	}
	ptr := uint32(inst.stack[0])
	if ptr == 0 {
		return fmt.Errorf("%s(%d) returned 0: the guest cannot provide an input buffer of that size", abi.ExportBuffer, size)
	}
	if _, ok := inst.memory.read(ptr, size); !ok {
		return fmt.Errorf("%s(%d) returned %d: the buffer ends outside guest memory of %d bytes",
			abi.ExportBuffer, size, ptr, len(inst.memory.buf))
	}
	inst.bufPtr, inst.bufCap = ptr, size
	return nil
}

// declaredKinds calls kpipe_kinds.
func (inst *instance) declaredKinds(ctx context.Context) (plugins.Kind, error) {
	fn := inst.mod.ExportedFunction(abi.ExportKinds)
	if err := inst.callInit(ctx, fn); err != nil {
		return 0, fmt.Errorf("%s: %w", abi.ExportKinds, err)
	}
	return plugins.Kind(uint32(inst.stack[0])), nil
}

// flush logs what is left in the stdout and stderr line buffers, and how
// many of the plugin's lines were suppressed since the last such report.
func (inst *instance) flush() {
	inst.stdout.Flush()
	inst.stderr.Flush()
	inst.p.logLimit.flush()
}

// close frees the instance.
func (inst *instance) close(ctx context.Context) error {
	inst.flush()
	if inst.mod == nil {
		return nil
	}
	return inst.mod.Close(ctx)
}

// input returns the guest memory into which the n-byte input of hook h is
// to be written, growing the input buffer if needed. n must not exceed
// abi.MaxSize (see checkSize). An error is a fault.
func (inst *instance) input(ctx context.Context, h hook, n int) ([]byte, *Fault) {
	if uint32(n) > inst.bufCap {
		if err := inst.growBuffer(ctx, max(uint32(n), min(2*inst.bufCap, abi.MaxSize))); err != nil {
			var reason FaultReason = FaultInvalidOutput
			var f *callError
			if errors.As(err, &f) {
				reason = f.reason
			}
			return nil, inst.p.fault(h, reason, err)
		}
	}
	b, ok := inst.memory.read(inst.bufPtr, uint32(n))
	if !ok {
		return nil, inst.p.fault(h, FaultInvalidOutput, fmt.Errorf("input buffer at %d is outside guest memory", inst.bufPtr))
	}
	return b, nil
}

// call runs hook h with the parameters already in inst.stack and returns its
// result. On error (a fault) the caller must discard the instance.
func (inst *instance) call(ctx context.Context, h hook) (int64, *Fault) {
	inst.errSet = false
	inst.memory.refused = false
	if ce := inst.invoke(ctx, inst.fns[h]); ce != nil {
		return 0, inst.p.fault(h, ce.reason, ce.err)
	}
	return int64(inst.stack[0]), nil
}

// callError is a failed call into the guest: why, and wazero's error.
type callError struct {
	reason FaultReason
	err    error
}

func (e *callError) Error() string { return e.reason.String() + ": " + e.err.Error() }

func (e *callError) Unwrap() error { return e.err }

// classify says why a call into the guest failed.
func (inst *instance) classify(err error) *callError {
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded:
		return &callError{FaultTimeout, err}
	case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeContextCanceled:
		return &callError{FaultCanceled, err}
	case inst.memory.refused:
		return &callError{FaultMemory, err}
	case exit != nil:
		return &callError{FaultExit, err}
	case inst.stackBudget != nil && int32(uint32(inst.stackBudget.Get())) < 0:
		return &callError{FaultTrap, fmt.Errorf("calls nested deeper than the stack budget of %d MiB allows (endless recursion?): %w",
			instrument.StackBudget>>20, err)}
	}
	return &callError{FaultTrap, err}
}

// output returns the guest memory named by a slice result, after checking it
// against memory and the output limit.
func (inst *instance) output(h hook, r int64) ([]byte, *Fault) {
	b, err := inst.outputBytes(r)
	if err != nil {
		return nil, inst.p.fault(h, FaultInvalidOutput, err)
	}
	return b, nil
}

// outputBytes is output without the fault: it says what is wrong.
func (inst *instance) outputBytes(r int64) ([]byte, error) {
	ptr, n, ok := abi.SplitSlice(r)
	if !ok {
		return nil, fmt.Errorf("result %d is neither a status code of this hook nor a slice", r)
	}
	if n > inst.p.maxOutput {
		return nil, fmt.Errorf("result of %d bytes exceeds the plugin's output limit of %d bytes", n, inst.p.maxOutput)
	}
	b, ok := inst.memory.read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("result [%d, %d) is outside guest memory of %d bytes", ptr, uint64(ptr)+uint64(n), len(inst.memory.buf))
	}
	return b, nil
}

// guestError returns the GuestError of a KPIPE_ERROR result of hook h.
func (inst *instance) guestError(h hook) *GuestError { return inst.guestErrorOf(h, h) }

// guestErrorOf returns the GuestError of a KPIPE_ERROR result of hook h,
// counted as an error of hook base (h itself, or the per-record hook of
// the batch hook h).
func (inst *instance) guestErrorOf(h, base hook) *GuestError {
	inst.p.stats.errors[base].Add(1)
	e := &GuestError{Plugin: inst.p.name, Hook: hookNames[h]}
	if inst.errSet {
		e.Message = string(inst.errMsg)
	}
	return e
}
