package wasmhost

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// TestLateWatchdog drives the interrupt protocol by hand: a watchdog that
// acts on a hold that has ended must not touch the next one, and a flag
// set on a call that returned before reaching a check is cleared when the
// slot is given back, so the next call runs.
func TestLateWatchdog(t *testing.T) {
	ctx := context.Background()
	h := testHost(t, WithoutCompilationCache())
	wasm := readWAT(t, "wasmhost/testdata/noop.wat")
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

// TestCreationNotChargedToCall checks that creating an instance is held to
// the creation limit, not to the call timeout: a kpipe_init slower than the
// timeout neither fails Load nor the call that needs a new instance, and a
// kpipe_init that never returns is stopped at the creation limit and
// reported as an instantiate fault of the plugin.
func TestCreationNotChargedToCall(t *testing.T) {
	const (
		timeout = 20 * time.Millisecond
		slowCfg = "0123456789" // slow_init.wat: 10 bytes, 100 ms in kpipe_init
		slack   = 2 * time.Second
	)
	defer func(d time.Duration) { minCreateTimeout = d }(minCreateTimeout)
	minCreateTimeout = 300 * time.Millisecond
	ctx := context.Background()
	h := testHost(t, WithoutCompilationCache())
	wasm := readWAT(t, "wasmhost/testdata/slow_init.wat")
	r := &plugins.Record{Topic: "t"}
	for _, m := range []struct {
		name         string
		opts         []PluginOption
		instrumented bool
	}{
		{"instrumented", nil, true},
		{"wazero", []PluginOption{WithContextTimeout()}, false},
	} {
		t.Run(m.name, func(t *testing.T) {
			opts := append([]PluginOption{WithPoolSize(2), WithCallTimeout(timeout), WithConfig([]byte(slowCfg))}, m.opts...)
			p, err := h.Load(ctx, "slow", wasm, plugins.KindInterceptor, opts...)
			if err != nil {
				t.Fatalf("Load with a kpipe_init slower than the call timeout: %v", err)
			}
			defer p.Close(ctx)
			if p.instrumented != m.instrumented {
				t.Fatalf("instrumented = %v, want %v", p.instrumented, m.instrumented)
			}
			if p.createTimeout != minCreateTimeout {
				t.Fatalf("createTimeout = %v, want %v", p.createTimeout, minCreateTimeout)
			}

			// Hold the first instance: the call needs a second one.
			first, err := p.acquire(ctx, hookOnSend)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.OnSend(ctx, r); err != nil {
				t.Fatalf("call creating a new instance with a slow kpipe_init: %v", err)
			}
			p.release(first)
			if st := p.Stats(); st.InstancesCreated != 2 || len(st.Faults) != 0 {
				t.Fatalf("stats = %+v, want two instances and no fault", st)
			}

			// A kpipe_init that never returns, for a new instance.
			p.config = nil
			first, err = p.acquire(ctx, hookOnSend)
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.acquire(ctx, hookOnSend)
			if err != nil {
				t.Fatal(err)
			}
			p.discard(second) // the next call creates an instance in its slot
			start := time.Now()
			_, err = p.OnSend(ctx, r)
			elapsed := time.Since(start)
			p.release(first)
			var f *Fault
			if !errors.As(err, &f) || f.Plugin != "slow" || f.Reason != FaultInstantiate || f.Hook != hookNames[hookOnSend] {
				t.Fatalf("endless kpipe_init: error %v, want an instantiate fault of plugin \"slow\"", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "kpipe_init") || !strings.Contains(msg, "limit of 300ms") {
				t.Errorf("error %q does not name kpipe_init and the creation limit", msg)
			}
			if elapsed < minCreateTimeout || elapsed > minCreateTimeout+slack {
				t.Errorf("endless kpipe_init stopped after %v, want %v to %v", elapsed, minCreateTimeout, minCreateTimeout+slack)
			}

			// Load itself, with a kpipe_init that never returns.
			start = time.Now()
			_, err = h.Load(ctx, "endless", wasm, plugins.KindInterceptor, append(opts[:2:2], m.opts...)...)
			elapsed = time.Since(start)
			if err == nil || !strings.Contains(err.Error(), `"endless"`) || !strings.Contains(err.Error(), "limit of 300ms") {
				t.Fatalf("Load with an endless kpipe_init: %v, want an error naming the plugin and the creation limit", err)
			}
			if elapsed < minCreateTimeout || elapsed > minCreateTimeout+slack {
				t.Errorf("Load stopped after %v, want %v to %v", elapsed, minCreateTimeout, minCreateTimeout+slack)
			}
		})
	}
}
