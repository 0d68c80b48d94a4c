package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// wasmPlugin loads one of the hand-written example modules.
func wasmPlugin(tb testing.TB, file string, kind plugins.Kind, opts ...wasmhost.PluginOption) *wasmhost.Plugin {
	tb.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	p, err := h.LoadFile(ctx, file, plugintest.WAT(tb, "examples/plugins/wat/"+file), kind, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// WASM plugins in the pipeline: a no-op interceptor, an interceptor that
// traps on every record, and the key-hash partitioner, which must place keys
// where the Java client does.
func TestWASMPlugins(t *testing.T) {
	e := setup(t, 7)
	trapErrs := make(chan error, 1)
	p := e.producer(t,
		pipeline.Interceptor("noop", wasmPlugin(t, "noop.wasm", plugins.KindInterceptor)),
		pipeline.Interceptor("trap", errorSpy{wasmPlugin(t, "trap.wasm", plugins.KindInterceptor), trapErrs}),
		pipeline.Partitioner("keyhash", wasmPlugin(t, "keyhash.wasm", plugins.KindPartitioner)),
		pipeline.CircuitBreaker(0, 0))
	want := map[string]int32{
		"21": 3, "foobar": 0, "a-little-bit-long-string": 1, "a-little-bit-longer-string": 0,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 3, "abc": 4,
	}
	ctx := ctxT(t)
	for k, w := range want {
		res := p.SendSync(ctx, rec(k, "value-"+k))
		if res.Outcome != pipeline.Delivered || res.Partition != w {
			t.Errorf("key %q: %+v, want partition %d", k, res, w)
		}
	}
	for _, r := range e.read(t, len(want)) {
		if r.value != "value-"+r.key || r.partition != want[r.key] {
			t.Errorf("read back %+v", r)
		}
	}
	trap := pluginStats(t, p, "trap", pipeline.HookOnSend)
	if trap.Calls != uint64(len(want)) || trap.Failures != trap.Calls {
		t.Errorf("trap stats %+v: every call should have failed", trap)
	}
	for _, c := range []struct {
		name string
		hook pipeline.Hook
	}{{"noop", pipeline.HookOnSend}, {"noop", pipeline.HookOnAck}, {"trap", pipeline.HookOnAck}, {"keyhash", pipeline.HookPartition}} {
		if st := pluginStats(t, p, c.name, c.hook); st.Calls != uint64(len(want)) || st.Failures != 0 {
			t.Errorf("%s %s: %+v", c.name, c.hook, st)
		}
	}
	if log := e.log.String(); !strings.Contains(log, "plugin=trap hook=on_send") {
		t.Errorf("trap fault not logged:\n%s", log)
	}
	var fault *wasmhost.Fault
	if err := <-trapErrs; !errors.As(err, &fault) {
		t.Errorf("the trap interceptor returned %v, want a *wasmhost.Fault", err)
	}
}

// errorSpy passes calls to an interceptor and reports its OnSend errors.
type errorSpy struct {
	plugins.Interceptor
	errs chan error
}

func (s errorSpy) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	v, err := s.Interceptor.OnSend(ctx, r)
	if err != nil {
		select {
		case s.errs <- err:
		default:
		}
	}
	return v, err
}
