package wasmhost

import (
	"context"
	"os"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
)

// BenchmarkInstantiate measures creating one instance of an already
// compiled module, including _initialize, kpipe_init and the first
// kpipe_buffer call: the cost of replacing an instance after a fault.
func BenchmarkInstantiate(b *testing.B) {
	for _, guest := range []struct{ name, path string }{
		{"wat", plugintest.WAT(b, "wasmhost/testdata/noop.wat")},
		{"go", plugintest.GoPlugin(b, "wasmhost/testdata/goguests/sdkguest")},
	} {
		b.Run(guest.name, func(b *testing.B) {
			ctx := context.Background()
			h, err := New(ctx, WithCompilationCacheDir(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(ctx)
			wasm, err := os.ReadFile(guest.path)
			if err != nil {
				b.Fatal(err)
			}
			p, err := h.Load(ctx, "bench", wasm, plugins.KindInterceptor, WithPoolSize(1), WithCallTimeout(0))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				inst, err := p.newInstance(ctx, &slot{}, false)
				if err != nil {
					b.Fatal(err)
				}
				inst.close(ctx)
			}
		})
	}
}

// TestModesUseSeparateCaches checks that code compiled with and without
// wazero's termination checks lands in different cache directories
// (RATIONALE.md, "Separate compilation-cache directories").
func TestModesUseSeparateCaches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := testHost(t, WithCompilationCacheDir(dir))
	wasm := readWAT(t, "wasmhost/testdata/noop.wat")
	for _, timeout := range []bool{false, true} {
		opts := []PluginOption{WithCallTimeout(0)}
		if timeout {
			opts = []PluginOption{WithCallTimeout(DefaultCallTimeout), WithContextTimeout()}
		}
		if _, err := h.Load(ctx, "noop", wasm, 0, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if cacheSubdir[modePlain] == cacheSubdir[modeInterruptible] {
		t.Fatalf("both modes use cache directory %q", cacheSubdir[modePlain])
	}
	for _, sub := range cacheSubdir {
		entries, err := os.ReadDir(dir + "/" + sub)
		if err != nil || len(entries) == 0 {
			t.Errorf("cache directory %s is empty or missing (%v)", sub, err)
		}
	}
}

// BenchmarkPool measures taking an instance from the pool and giving it
// back, uncontended: the pool's share of every call.
func BenchmarkPool(b *testing.B) {
	ctx := context.Background()
	h := testHost(b, WithoutCompilationCache())
	wasm := readWAT(b, "wasmhost/testdata/noop.wat")
	p, err := h.Load(ctx, "noop", wasm, 0, WithPoolSize(4), WithCallTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		inst, err := p.acquire(ctx, hookOnSend)
		if err != nil {
			b.Fatal(err)
		}
		p.release(inst)
	}
}
