package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// WASM plugins through stage batches: the key-hash partitioner places keys
// where the Java client does with one guest call per batch, the no-op
// interceptor's on_send and on_ack go to the guest in batches and every
// acknowledgement is delivered by Flush, and the trapping interceptor fails
// each record of its batches, which go on unchanged.
func TestWASMPluginsBatched(t *testing.T) {
	e := setup(t, 7)
	noop := wasmPlugin(t, "noop.wasm", plugins.KindInterceptor)
	trap := wasmPlugin(t, "trap.wasm", plugins.KindInterceptor)
	keyhash := wasmPlugin(t, "keyhash.wasm", plugins.KindPartitioner)
	const max = 8
	p := e.producer(t,
		pipeline.Interceptor("noop", noop),
		pipeline.Interceptor("trap", trap),
		pipeline.Partitioner("keyhash", keyhash),
		pipeline.CircuitBreaker(0, 0),
		pipeline.StageBatch(max, time.Hour))
	ctx := ctxT(t)
	// Load the topic's partition count: the first record is partitioned
	// alone.
	if res := p.SendSync(ctx, rec("21", "value-21")); res.Outcome != pipeline.Delivered || res.Partition != 3 {
		t.Fatalf("first record: %+v", res)
	}
	want := map[string]int32{
		"21": 3, "foobar": 0, "a-little-bit-long-string": 1, "a-little-bit-longer-string": 0,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 3, "abc": 4,
	}
	var keys []string
	for len(keys) < 4*max {
		for k := range want {
			keys = append(keys, k)
		}
	}
	keys = keys[:4*max]
	col := newCollector()
	for i, k := range keys {
		p.Send(ctx, rec(k, "value-"+k), col.cb(t, fmt.Sprint(i)))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for id, res := range col.wait(t) {
		var i int
		fmt.Sscan(id, &i)
		if res.Outcome != pipeline.Delivered || res.Partition != want[keys[i]] {
			t.Errorf("key %q: %+v, want partition %d", keys[i], res, want[keys[i]])
		}
	}
	n := uint64(len(keys))
	if st := keyhash.Stats(); st.Calls.Partition != n+1 || st.Batches.Partition != 4 {
		t.Errorf("keyhash: %d calls in %d batch calls, want %d in 4", st.Calls.Partition, st.Batches.Partition, n+1)
	}
	if st := noop.Stats(); st.Calls.OnSend != n+1 || st.Batches.OnSend != 4 || st.Calls.OnAck != n+1 || st.Batches.OnAck == 0 {
		t.Errorf("noop: calls %+v, batch calls %+v", st.Calls, st.Batches)
	}
	if st := pluginStats(t, p, "trap", pipeline.HookOnSend); st.Calls != n+1 || st.Failures != n+1 {
		t.Errorf("trap stats %+v: every record should have failed", st)
	}
	for _, c := range []struct {
		name string
		hook pipeline.Hook
	}{{"noop", pipeline.HookOnSend}, {"noop", pipeline.HookOnAck}, {"trap", pipeline.HookOnAck}, {"keyhash", pipeline.HookPartition}} {
		if st := pluginStats(t, p, c.name, c.hook); st.Calls != n+1 || st.Failures != 0 {
			t.Errorf("%s %s: %+v", c.name, c.hook, st)
		}
	}
	for _, r := range e.read(t, len(keys)+1) {
		if r.value != "value-"+r.key || r.partition != want[r.key] {
			t.Errorf("read back %+v", r)
		}
	}
}
