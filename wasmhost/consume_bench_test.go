package wasmhost_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// benchConsumed is a fetched record with a 100-byte value holding a card
// number, and a header.
func benchConsumed() *kgo.Record {
	v := []byte("card 4111111111111111 ")
	v = append(v, bytes.Repeat([]byte("v"), 100-len(v))...)
	return &kgo.Record{Topic: "bench", Partition: 3, Offset: 1 << 20, Key: []byte("key-0001"), Value: v,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}, Timestamp: time.UnixMilli(1_700_000_000_000)}
}

// BenchmarkOnConsume measures OnConsume of one 100-byte fetched record, and
// OnConsumeBatch per record in batches of 64 (one pool hold, one call per
// record), with the call timeout off. on_send/noop is the producer side's
// no-op OnSend of the same data (BenchmarkHookNoop/wat), for the ratio.
// noop leaves the record alone; mask (examples/plugins/wat/mask.wat) masks
// its 16 digits and returns the whole record, which the host decodes;
// mask-go is the Go SDK example maskdigits doing the same. The masks'
// records get their original value back before each call.
func BenchmarkOnConsume(b *testing.B) {
	mask, err := os.ReadFile(plugintest.WAT(b, "examples/plugins/wat/mask.wat"))
	if err != nil {
		b.Fatal(err)
	}
	guests := []struct {
		name string
		wasm func(testing.TB) []byte
	}{
		{"noop", func(tb testing.TB) []byte { return wat(tb, "consume_noop") }},
		{"mask", func(testing.TB) []byte { return mask }},
		{"mask-go", func(tb testing.TB) []byte {
			return readFile(tb, plugintest.GoPlugin(tb, "examples/plugins/maskdigits"))
		}},
	}
	ctx := context.Background()
	b.Run("on_send/noop", func(b *testing.B) {
		p := load(b, newHost(b), "noop", wat(b, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
		c := benchConsumed()
		r := &plugins.Record{Topic: c.Topic, Key: c.Key, Value: c.Value, Headers: c.Headers, Timestamp: c.Timestamp}
		r.SetPartition(c.Partition)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.OnSend(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, g := range guests {
		b.Run(g.name, func(b *testing.B) {
			p := load(b, newHost(b), g.name, g.wasm(b), plugins.KindConsumeInterceptor, wasmhost.WithCallTimeout(0))
			r := benchConsumed()
			orig := r.Value
			b.ReportAllocs()
			for b.Loop() {
				r.Value = orig
				if _, err := p.OnConsume(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			if g.name != "noop" && bytes.Contains(r.Value, []byte("4111")) {
				b.Fatalf("value %q not masked", r.Value)
			}
		})
		b.Run(g.name+"/batch64", func(b *testing.B) {
			p := load(b, newHost(b), g.name, g.wasm(b), plugins.KindConsumeInterceptor, wasmhost.WithCallTimeout(0))
			const n = 64
			rs := make([]*kgo.Record, n)
			for i := range rs {
				rs[i] = benchConsumed()
			}
			orig := rs[0].Value
			verdicts, errs := make([]plugins.Verdict, n), make([]error, n)
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range rs {
					r.Value = orig
				}
				if err := p.OnConsumeBatch(ctx, rs, verdicts, errs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
