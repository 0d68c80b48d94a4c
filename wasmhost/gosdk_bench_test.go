//go:build unix

package wasmhost_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGoGuest measures what a Go plugin costs per record through the
// host, against the hand-written WAT no-op (examples/plugins/wat/noop.wat),
// with the call timeout off, one record a call (OnSend) and 64 a call
// (OnSendBatch, what the pipeline uses):
//
//   - noop: the SDK test guest (wasmhost/testdata/goguests/sdkguest), whose
//     OnSend reads the record's partition and returns Unchanged;
//   - noop-view: the same with a kpipe.RecordView
//     (wasmhost/testdata/goguests/viewnoop);
//   - stamp: the example headerstamp (examples/plugins/headerstamp) setting
//     one header, kpipe-stamp = sdk, and returning Changed.
//
// Records are benchRecord's (a 5-byte topic, an 8-byte key, a 100-byte
// value, no headers). Besides ns/record (wall time) it reports
// cpu-ns/record, the process's CPU time per record, which a machine busy
// with other work disturbs less: compare those, as ratios to wat.
func BenchmarkGoGuest(b *testing.B) {
	ctx := context.Background()
	guests := []struct {
		name string
		wasm func(testing.TB) []byte
		opts []wasmhost.PluginOption
	}{
		{"wat", func(tb testing.TB) []byte { return exampleWAT(tb, "noop") }, nil},
		{"noop", func(tb testing.TB) []byte { return goGuest(tb, goSDKGuest) }, nil},
		{"noop-view", func(tb testing.TB) []byte { return goGuest(tb, "wasmhost/testdata/goguests/viewnoop") }, nil},
		{"stamp", func(tb testing.TB) []byte { return goGuest(tb, "examples/plugins/headerstamp") },
			[]wasmhost.PluginOption{wasmhost.WithConfig([]byte(`{"headers":{"kpipe-stamp":"sdk"}}`))}},
	}
	for _, size := range []int{1, 64} {
		for _, g := range guests {
			b.Run(fmt.Sprintf("%s/%d", g.name, size), func(b *testing.B) {
				h := newHost(b)
				opts := append([]wasmhost.PluginOption{wasmhost.WithCallTimeout(0), wasmhost.WithPoolSize(1)}, g.opts...)
				p := load(b, h, g.name, g.wasm(b), plugins.KindInterceptor, opts...)
				rs := make([]*plugins.Record, size)
				orig := make([]plugins.Record, size)
				for i := range rs {
					rs[i] = benchRecord()
					orig[i] = *rs[i]
				}
				vs := make([]plugins.Verdict, size)
				errs := make([]error, size)
				b.ReportAllocs()
				cpu := cpuTime(b)
				for b.Loop() {
					for i := range rs {
						*rs[i] = orig[i] // undo the stamp
					}
					if size == 1 {
						if _, err := p.OnSend(ctx, rs[0]); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if err := p.OnSendBatch(ctx, rs, vs, errs); err != nil {
						b.Fatal(err)
					}
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu = cpuTime(b) - cpu
				n := float64(b.N * size)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
				b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/record")
			})
		}
	}
}
