package wasmhost_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// benchRecord is a record with a 100-byte value.
func benchRecord() *plugins.Record {
	return &plugins.Record{Topic: "bench", Key: []byte("key-0001"), Value: bytes.Repeat([]byte("v"), 100)}
}

// BenchmarkHookNoop measures one OnSend of a 100-byte record through a hook
// that leaves it unchanged, with the call timeout off: the fixed cost of a
// plugin call. The WAT guest does nothing; the Go guest is the SDK, which
// decodes the record before its OnSend returns Unchanged; the go-raw guest
// is Go without the SDK, whose kpipe_on_send reads one field and returns:
// the cost of entering Go code at all.
func BenchmarkHookNoop(b *testing.B) {
	for _, guest := range []struct {
		name string
		wasm func(testing.TB) []byte
	}{
		{"wat", func(tb testing.TB) []byte { return wat(tb, "noop") }},
		{"go", func(tb testing.TB) []byte { return goGuest(tb, goSDKGuest) }},
		{"go-raw", func(tb testing.TB) []byte { return goGuest(tb, goRawGuest) }},
	} {
		b.Run(guest.name, func(b *testing.B) {
			h := newHost(b)
			p := load(b, h, "noop", guest.wasm(b), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
			ctx := context.Background()
			r := benchRecord()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.OnSend(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadCached measures loading the Go SDK guest (3.4 MB) in a new
// Host whose compilation cache already holds it: what a process restart
// costs per plugin. It includes creating the runtime and the first
// instance (Go runtime initialisation).
func BenchmarkLoadCached(b *testing.B) {
	wasm := goGuest(b, goSDKGuest)
	dir := b.TempDir()
	ctx := context.Background()
	loadOnce := func() {
		h, err := wasmhost.New(ctx, wasmhost.WithCompilationCacheDir(dir))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Load(ctx, "sdk", wasm, plugins.KindInterceptor, wasmhost.WithPoolSize(1)); err != nil {
			b.Fatal(err)
		}
		if err := h.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	loadOnce() // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		loadOnce()
	}
}

// BenchmarkCallTimeout measures what a call timeout costs, in its three
// modes: off, on with the module instrumented and a watchdog (the
// default), and on with wazero's termination checks (wazero, the fallback
// for modules that cannot be instrumented). The guests: a loop-heavy hook
// (spin.wat: 10,000 loop iterations per call), where the checks in the
// loop dominate; a no-op hook (noop.wat), where the per-call set-up
// dominates; and the Go SDK guest returning Unchanged (go), a realistic
// mix.
func BenchmarkCallTimeout(b *testing.B) {
	for _, guest := range []string{"spin", "noop", "go"} {
		for _, bc := range []struct {
			name string
			opts []wasmhost.PluginOption
		}{
			{"off", []wasmhost.PluginOption{wasmhost.WithCallTimeout(0)}},
			{"on", []wasmhost.PluginOption{wasmhost.WithCallTimeout(time.Second)}},
			{"wazero", []wasmhost.PluginOption{wasmhost.WithCallTimeout(time.Second), wasmhost.WithContextTimeout()}},
		} {
			b.Run(guest+"/"+bc.name, func(b *testing.B) {
				h := newHost(b)
				var wasm []byte
				if guest == "go" {
					wasm = goGuest(b, goSDKGuest)
				} else {
					wasm = wat(b, guest)
				}
				p := load(b, h, guest, wasm, plugins.KindInterceptor, bc.opts...)
				ctx := context.Background()
				r := benchRecord()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.OnSend(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkHookNoopParallel measures no-op calls from GOMAXPROCS goroutines
// sharing one plugin (pool size GOMAXPROCS).
func BenchmarkHookNoopParallel(b *testing.B) {
	h := newHost(b)
	p := load(b, h, "noop", wat(b, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRecord()
		for pb.Next() {
			if _, err := p.OnSend(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkHookBatch measures the batch calls per record (the ns/record
// metric), at batch sizes 1, 16 and 64, with the call timeout off as in
// BenchmarkHookNoop: OnSendBatch of 100-byte records through the example
// no-op interceptor (examples/plugins/wat/noop.wat, one
// kpipe_on_send_batch call per batch), PartitionBatch through the example
// keyhash partitioner (one kpipe_partition_batch call, murmur2 of each
// key), with single Partition calls for comparison, and QueueAck through
// the no-op interceptor with the batch size as the acknowledgement batch
// size (one kpipe_on_ack_batch call per batch).
func BenchmarkHookBatch(b *testing.B) {
	ctx := context.Background()
	perRecord := func(b *testing.B, size int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/record")
	}
	records := func(size int) []*plugins.Record {
		rs := make([]*plugins.Record, size)
		for i := range rs {
			rs[i] = benchRecord()
			rs[i].Key = fmt.Appendf(nil, "key-%04d", i)
		}
		return rs
	}
	for _, size := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("noop-on_send/%d", size), func(b *testing.B) {
			h := newHost(b)
			p := load(b, h, "noop", exampleWAT(b, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
			rs := records(size)
			vs := make([]plugins.Verdict, size)
			errs := make([]error, size)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.OnSendBatch(ctx, rs, vs, errs); err != nil {
					b.Fatal(err)
				}
			}
			perRecord(b, size)
		})
	}
	for _, size := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("keyhash-partition/%d", size), func(b *testing.B) {
			h := newHost(b)
			p := load(b, h, "keyhash", exampleWAT(b, "keyhash"), plugins.KindPartitioner, wasmhost.WithCallTimeout(0))
			rs := records(size)
			nps := make([]int32, size)
			for i := range nps {
				nps[i] = 12
			}
			parts := make([]int32, size)
			errs := make([]error, size)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.PartitionBatch(ctx, rs, nps, parts, errs); err != nil {
					b.Fatal(err)
				}
			}
			perRecord(b, size)
		})
	}
	b.Run("keyhash-partition/single", func(b *testing.B) {
		h := newHost(b)
		p := load(b, h, "keyhash", exampleWAT(b, "keyhash"), plugins.KindPartitioner, wasmhost.WithCallTimeout(0))
		r := records(1)[0]
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Partition(ctx, r, 12); err != nil {
				b.Fatal(err)
			}
		}
		perRecord(b, 1)
	})
	for _, size := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("noop-on_ack_batch/%d", size), func(b *testing.B) {
			h := newHost(b)
			p := load(b, h, "noop", exampleWAT(b, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
			r := benchRecord()
			rs, acks, errs := make([]*plugins.Record, size), make([]plugins.Ack, size), make([]error, size)
			for i := range rs {
				rs[i], acks[i] = r, plugins.Ack{Offset: 42}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.OnAckBatch(ctx, rs, acks, errs); err != nil {
					b.Fatal(err)
				}
			}
			perRecord(b, size)
		})
	}
}
