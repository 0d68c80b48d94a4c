package wasmhost_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// TestFaultsContained drives every fault of the faulty WAT module and checks
// that each is contained: the error names the plugin and hook, the record is
// unchanged, the instance is replaced, and the next call works.
func TestFaultsContained(t *testing.T) {
	tests := []struct {
		name    string
		mode    int32
		reason  wasmhost.FaultReason
		message string
	}{
		{"trap", 1, wasmhost.FaultTrap, "unreachable"},
		{"endless loop", 2, wasmhost.FaultTimeout, "deadline exceeded"},
		{"memory bomb", 3, wasmhost.FaultMemory, "unreachable"},
		{"proc_exit", 4, wasmhost.FaultExit, "exit_code(3)"},
		{"result out of bounds", 5, wasmhost.FaultInvalidOutput, "outside guest memory"},
		{"oversized result", 6, wasmhost.FaultInvalidOutput, "exceeds the plugin's output limit of 1024 bytes"},
		{"unknown status", 8, wasmhost.FaultInvalidOutput, "result -9"},
		{"trailing byte", 11, wasmhost.FaultInvalidOutput, "1 trailing bytes"},
	}
	h := newHost(t)
	ctx := context.Background()
	// Every fault with the call timeout off and on (a long one, so that a
	// loaded machine cannot turn another fault into a timeout); the endless
	// loop needs a short timeout in both cases.
	for _, timeout := range []time.Duration{0, time.Minute} {
		for _, tt := range tests {
			tmo := timeout
			if tt.reason == wasmhost.FaultTimeout {
				tmo = 200 * time.Millisecond
			}
			t.Run(fmt.Sprintf("%s/timeout=%v", tt.name, tmo), func(t *testing.T) {
				// Pool size 1: the next call can only succeed on a new instance.
				p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor,
					wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(tmo),
					wasmhost.WithMemoryLimitPages(64), wasmhost.WithMaxOutputBytes(1024))
				defer p.Close(ctx)
				r := modeRecord(tt.mode)
				before := *modeRecord(tt.mode)
				v, err := p.OnSend(ctx, r)
				f := wantFault(t, err, "faulty", "kpipe_on_send", tt.reason)
				if !strings.Contains(f.Err.Error(), tt.message) {
					t.Errorf("fault error %q does not contain %q", f.Err, tt.message)
				}
				if v != plugins.Continue || !reflect.DeepEqual(*r, before) {
					t.Errorf("after the fault: verdict %v, record %+v; want Continue and the record unchanged", v, r)
				}
				st := p.Stats()
				if st.InstancesReplaced != 1 || st.Faults[tt.reason] != 1 {
					t.Errorf("stats = %+v, want 1 instance replaced and a %v fault counted", st, tt.reason)
				}
				if v, err := p.OnSend(ctx, modeRecord(0)); err != nil || v != plugins.Continue {
					t.Fatalf("call after the fault: %v, %v", v, err)
				}
				if st := p.Stats(); st.InstancesCreated != 2 {
					t.Errorf("instances created = %d, want 2", st.InstancesCreated)
				}
			})
		}
	}
}

// TestTrapInOtherHooks checks faults outside kpipe_on_send.
func TestTrapInOtherHooks(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "trap", wat(t, "trap"), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
	err := p.OnAck(ctx, modeRecord(0), plugins.Ack{Offset: 3})
	wantFault(t, err, "trap", "kpipe_on_ack", wasmhost.FaultTrap)
	// The replacement instance traps too: each call is its own fault.
	_, err = p.OnSend(ctx, modeRecord(0))
	wantFault(t, err, "trap", "kpipe_on_send", wasmhost.FaultTrap)
	if st := p.Stats(); st.InstancesReplaced != 2 || st.Faults[wasmhost.FaultTrap] != 2 || st.Calls.OnAck != 1 || st.Calls.OnSend != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestGoGuestFaults(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()

	t.Run("unrecovered panic", func(t *testing.T) {
		var logs logBuffer
		p := load(t, h, "raw", goGuest(t, goRawGuest), plugins.KindInterceptor,
			wasmhost.WithPoolSize(1), wasmhost.WithLogger(newLogger(&logs)))
		// In a //go:wasmexport call the Go runtime ends a fatal panic with
		// the unreachable instruction, not proc_exit: a trap.
		_, err := p.OnSend(ctx, modeRecord(1))
		wantFault(t, err, "raw", "kpipe_on_send", wasmhost.FaultTrap)
		if v, err := p.OnSend(ctx, modeRecord(0)); err != nil || v != plugins.Continue {
			t.Fatalf("call after the fault: %v, %v", v, err)
		}
		// The Go runtime's panic report reaches the log through stderr.
		if !strings.Contains(logs.String(), "unrecovered panic in kpipe_on_send") {
			t.Errorf("log does not show the panic message:\n%s", logs.String())
		}
	})

	tests := []struct {
		name    string
		mode    int32
		timeout time.Duration
		reason  wasmhost.FaultReason
	}{
		{"memory bomb", 3, 0, wasmhost.FaultMemory},
		{"endless loop", 5, 500 * time.Millisecond, wasmhost.FaultTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, h, "sdk", goGuest(t, goSDKGuest), plugins.KindInterceptor,
				wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(tt.timeout),
				wasmhost.WithMemoryLimitPages(256))
			defer p.Close(ctx)
			_, err := p.OnSend(ctx, modeRecord(tt.mode))
			wantFault(t, err, "sdk", "kpipe_on_send", tt.reason)
			if v, err := p.OnSend(ctx, modeRecord(0)); err != nil || v != plugins.Continue {
				t.Fatalf("call after the fault: %v, %v", v, err)
			}
		})
	}
	t.Run("recovered panic", func(t *testing.T) {
		p := load(t, h, "sdk", goGuest(t, goSDKGuest), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
		defer p.Close(ctx)
		created := p.Stats().InstancesCreated
		_, err := p.OnSend(ctx, modeRecord(1))
		wantGuestError(t, err, "sdk", "kpipe_on_send", "boom")
		if st := p.Stats(); st.InstancesCreated != created {
			t.Errorf("a guest error replaced the instance")
		}
	})
}

// TestHostFunctionTraps checks that bad pointers passed to host functions
// trap the call instead of reaching outside guest memory.
func TestHostFunctionTraps(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "hostcalls", wat(t, "hostcalls"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(0), wasmhost.WithConfig([]byte("0123456789")))
	for mode, fn := range map[int32]string{2: "kpipe.log", 3: "kpipe.set_error", 4: "kpipe.config_get"} {
		_, err := p.OnSend(ctx, modeRecord(mode))
		f := wantFault(t, err, "hostcalls", "kpipe_on_send", wasmhost.FaultTrap)
		if !strings.Contains(f.Err.Error(), fn+": range") {
			t.Errorf("mode %d: fault %q does not name %s and the bad range", mode, f.Err, fn)
		}
		if _, err := p.OnSend(ctx, modeRecord(1)); err != nil {
			t.Fatalf("call after the fault: %v", err)
		}
	}
}

// TestTableGrowthBounded checks that a guest's tables cannot grow past
// wasmhost.MaxTableElements, in both timeout modes (and so whether or not
// the module is instrumented): wazero keeps tables in the Go heap, outside
// the memory limit, and a table without a maximum could otherwise grow to
// 2^32 - 1 elements, 32 GiB of host memory for one table.grow.
func TestTableGrowthBounded(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	for _, m := range timeoutModes {
		t.Run(m.name, func(t *testing.T) {
			p := load(t, h, "tables", wat(t, "table_grow"), plugins.KindInterceptor,
				append([]wasmhost.PluginOption{wasmhost.WithPoolSize(1)}, m.opts...)...)
			defer p.Close(ctx)
			// The table starts with 1 element: growing it to the limit
			// works, one more element does not.
			if v, err := p.OnSend(ctx, modeRecord(wasmhost.MaxTableElements-1001)); err != nil || v != plugins.Continue {
				t.Fatalf("growth to %d elements: %v, %v", wasmhost.MaxTableElements-1000, v, err)
			}
			if v, err := p.OnSend(ctx, modeRecord(1000)); err != nil || v != plugins.Continue {
				t.Fatalf("growth to %d elements: %v, %v", wasmhost.MaxTableElements, v, err)
			}
			for _, grow := range []int32{1, 1 << 30} {
				_, err := p.OnSend(ctx, modeRecord(grow))
				wantGuestError(t, err, "tables", "kpipe_on_send", "table.grow refused")
			}
		})
	}
}
