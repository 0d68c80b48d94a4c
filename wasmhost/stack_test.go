package wasmhost_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// TestDeepRecursionMemory runs a plugin that recurses without end (deep.wat)
// on 8 records: each call must fault, and the memory the process allocates
// for them must stay within the plugin's memory plus the stack budget's
// documented constant, 24 MiB a call (8 MiB of estimated frames; wazero
// doubles its stack as it grows, so up to three times that while it
// copies). Without the budget each call allocated about 170 MiB (wazero's
// own ceiling of an 84 MiB stack). A recursion of 20,000 calls, well within
// the budget, still works.
func TestDeepRecursionMemory(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "deep", wat(t, "deep"), plugins.KindInterceptor,
		wasmhost.WithCallTimeout(time.Minute), wasmhost.WithPoolSize(1))
	defer p.Close(ctx)
	if !p.Instrumented() {
		t.Fatal("deep.wat was not instrumented")
	}
	if _, err := p.OnSend(ctx, modeRecord(20000)); err != nil {
		t.Fatalf("a recursion of 20000 calls: %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const records = 8
	for range records {
		_, err := p.OnSend(ctx, modeRecord(0))
		wantFault(t, err, "deep", "kpipe_on_send", wasmhost.FaultTrap)
		if !strings.Contains(err.Error(), "calls nested deeper than the stack budget of 8 MiB allows") {
			t.Fatalf("fault %.300q does not say the stack budget ran out", err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / records
	t.Logf("endless recursion: %.1f MiB allocated per call", float64(perCall)/(1<<20))
	if limit := uint64(24<<20 + 2<<16 + 1<<20); perCall > limit { // budget, the instance's 2 pages, 1 MiB of the rest
		t.Errorf("endless recursion allocated %d bytes per call, want at most %d", perCall, limit)
	}
}
