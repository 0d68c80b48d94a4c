package wasmhost

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
)

// TestLateWatchdog drives the interrupt protocol by hand: a watchdog that
// acts on a hold that has ended must not touch the next one, and a flag
// set on a call that returned before reaching a check is cleared when the
// slot is given back, so the next call runs.
func TestLateWatchdog(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, WithoutCompilationCache())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	wasm, err := os.ReadFile(plugintest.WAT(t, "wasmhost/testdata/noop.wat"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Load(ctx, "noop", wasm, plugins.KindInterceptor, WithPoolSize(1), WithCallTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !p.instrumented {
		t.Fatal("noop.wat was not instrumented")
	}
	s := &p.slots[0]
	r := &plugins.Record{Topic: "t"}

	// A watchdog acting on an old hold: nothing happens.
	inst, err := p.acquire(ctx, hookOnSend)
	if err != nil {
		t.Fatal(err)
	}
	old := s.state.Load()
	p.release(inst)
	inst, err = p.acquire(ctx, hookOnSend)
	if err != nil {
		t.Fatal(err)
	}
	s.interrupt(old, interruptTimeout)
	if got := inst.interrupt.Get(); got != 0 {
		t.Fatalf("a watchdog acting on an ended hold set the flag to %d", got)
	}
	p.release(inst)

	// A watchdog interrupting a hold whose call already returned: the flag
	// is set, and giving the slot back clears it.
	inst, err = p.acquire(ctx, hookOnSend)
	if err != nil {
		t.Fatal(err)
	}
	s.interrupt(s.state.Load(), interruptTimeout)
	if inst.interrupt.Get() != 1 || s.state.Load()&slotInterrupted == 0 {
		t.Fatal("the watchdog did not interrupt the current hold")
	}
	p.release(inst)
	if got := inst.interrupt.Get(); got != 0 {
		t.Fatalf("after release the flag is %d, want 0", got)
	}
	for range 2 * 4096 { // more checks than the budget: the flag is tested
		if _, err := p.OnSend(ctx, r); err != nil {
			t.Fatalf("call after a late interrupt: %v", err)
		}
	}
	if st := p.Stats(); st.InstancesCreated != 1 || len(st.Faults) != 0 {
		t.Errorf("stats = %+v, want one instance and no fault", st)
	}
}
