package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// hangingPhases are the test modules that never finish one phase of
// loading, with the phase the error must name.
var hangingPhases = []struct{ module, phase string }{
	{"loop_start", "start function"},
	{"loop_initialize", "_initialize"},
	{"loop_init", "kpipe_init"},
	{"loop_buffer", "kpipe_buffer"},
	{"loop_kinds", "kpipe_kinds"},
	{"wasi_sleep", "kpipe_init"}, // asleep in the host (WASI), not looping
}

// TestLoadTimeout checks that every phase of loading is bounded: a module
// that never finishes one of them makes Load fail once the load timeout
// has run out, not earlier and not much later, with an error naming the
// plugin, the file, the phase and the limit; in both timeout modes, and
// also when the call timeout is off.
func TestLoadTimeout(t *testing.T) {
	const (
		limit = 300 * time.Millisecond
		slack = 2 * time.Second // a loaded machine
	)
	h := newHost(t)
	ctx := context.Background()
	modes := append(timeoutModes[:len(timeoutModes):len(timeoutModes)], struct {
		name         string
		opts         []wasmhost.PluginOption
		instrumented bool
	}{"no call timeout", []wasmhost.PluginOption{wasmhost.WithCallTimeout(0)}, true})
	for _, m := range modes {
		for _, hp := range hangingPhases {
			t.Run(m.name+"/"+hp.module, func(t *testing.T) {
				path := plugintest.WAT(t, "wasmhost/testdata/"+hp.module+".wat")
				opts := append([]wasmhost.PluginOption{wasmhost.WithLoadTimeout(limit)}, m.opts...)
				start := time.Now()
				p, err := h.LoadFile(ctx, "hang", path, plugins.KindInterceptor, opts...)
				elapsed := time.Since(start)
				if err == nil {
					p.Close(ctx)
					t.Fatal("Load succeeded")
				}
				msg := err.Error()
				for _, want := range []string{`"hang"`, filepath.Base(path), hp.phase + ":", "load timeout (limit of 300ms)"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not contain %q", msg, want)
					}
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %q does not wrap context.DeadlineExceeded", msg)
				}
				if elapsed < limit || elapsed > limit+slack {
					t.Errorf("Load ended after %v, want %v to %v", elapsed, limit, limit+slack)
				}
			})
		}
	}
}

// TestLoadCanceled checks that cancelling the context of Load stops every
// phase promptly, whatever the load timeout, and says so.
func TestLoadCanceled(t *testing.T) {
	const (
		after = 200 * time.Millisecond
		slack = 2 * time.Second
	)
	h := newHost(t)
	for _, m := range timeoutModes {
		for _, hp := range hangingPhases {
			t.Run(m.name+"/"+hp.module, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				time.AfterFunc(after, cancel)
				opts := append([]wasmhost.PluginOption{wasmhost.WithLoadTimeout(time.Hour)}, m.opts...)
				start := time.Now()
				p, err := h.Load(ctx, "hang", wat(t, hp.module), plugins.KindInterceptor, opts...)
				elapsed := time.Since(start)
				if err == nil {
					p.Close(context.Background())
					t.Fatal("Load succeeded")
				}
				if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), hp.phase+":") {
					t.Errorf("error %q, want context.Canceled naming %s", err, hp.phase)
				}
				if elapsed > after+slack {
					t.Errorf("Load ended %v after its context was cancelled, want at most %v", elapsed-after, slack)
				}
			})
		}
	}
}

// TestLoadTimeoutOption checks that the load timeout also bounds the
// creation of an instance after the first: a kpipe_init that never returns
// fails the call that needs the instance with an instantiate fault naming
// the limit. It also checks the option's validation.
func TestLoadTimeoutOption(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.Load(ctx, "neg", wat(t, "noop"), 0, wasmhost.WithLoadTimeout(-time.Second)); err == nil ||
		!strings.Contains(err.Error(), "load timeout -1s is negative") {
		t.Errorf("negative load timeout: %v", err)
	}
	// slow_init.wat loops in kpipe_init without a config.
	p := load(t, h, "slow", wat(t, "slow_init"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithConfig([]byte("x")), wasmhost.WithLoadTimeout(200*time.Millisecond))
	defer p.Close(ctx)
	_, err := p.OnSend(ctx, modeRecord(0))
	if err != nil {
		t.Fatal(err)
	}
	p.SetConfig(nil)
	if err := p.DiscardInstance(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.OnSend(ctx, modeRecord(0))
	wantFault(t, err, "slow", "kpipe_on_send", wasmhost.FaultInstantiate)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the endless kpipe_init of a new instance was stopped after %v", d)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("limit of %v", 200*time.Millisecond)) {
		t.Errorf("fault %q does not name the limit", err)
	}
}

// TestCloseDuringCompile cancels a Load while it compiles a Go guest and
// closes the Host at once: Load returns promptly, and the compilation,
// left to finish in the background, must neither crash on the closed Host
// nor keep its runtimes open once it finished.
func TestCloseDuringCompile(t *testing.T) {
	wasm := goGuest(t, goRawGuest)
	h, err := wasmhost.New(context.Background(), wasmhost.WithoutCompilationCache())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel) // once instrumentation is done and compilation runs
	start := time.Now()
	p, err := h.Load(ctx, "go", wasm, plugins.KindInterceptor)
	if err == nil {
		p.Close(context.Background())
		t.Skip("the compilation finished within 1s: nothing to test")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "compile: stopped") {
		t.Fatalf("Load: %v, want its compilation stopped by the cancelled context", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Load returned %v after it started, want promptly after its context was cancelled", d)
	}
	// Close waits for the compilation while its context lasts, then
	// leaves the runtimes to close when it ends.
	cctx, ccancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer ccancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	compiled := make(chan struct{})
	go func() {
		h.WaitCompiles()
		close(compiled)
	}()
	select {
	case <-compiled:
	case <-time.After(5 * time.Minute):
		t.Fatal("the abandoned compilation did not finish within 5 minutes")
	}
	time.Sleep(100 * time.Millisecond) // the runtimes close after it
	if _, err := h.Load(context.Background(), "late", wat(t, "noop"), 0); !errors.Is(err, wasmhost.ErrClosed) {
		t.Errorf("Load after Close: %v, want ErrClosed", err)
	}
}
