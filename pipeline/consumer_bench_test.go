package pipeline_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// BenchmarkConsumerProcess measures Consumer.Process per record, on
// fetches of 64 records with a 100-byte value holding a card number:
// none has no plugin (the cost of the consumer's own path), mask the WAT
// example that masks the digits (examples/plugins/wat/mask.wat), in one
// OnConsumeBatch per fetch. wasmhost's BenchmarkOnConsume has the cost of
// the plugin call alone. Each round gives the records their original
// value back first.
func BenchmarkConsumerProcess(b *testing.B) {
	v := []byte("card 4111111111111111 ")
	v = append(v, bytes.Repeat([]byte("v"), 100-len(v))...)
	for _, tt := range []struct {
		name string
		opts func(testing.TB) []pipeline.ConsumerOption
	}{
		{"none", func(testing.TB) []pipeline.ConsumerOption { return nil }},
		{"mask", func(tb testing.TB) []pipeline.ConsumerOption {
			ic := wasmPlugin(tb, "mask.wasm", plugins.KindConsumeInterceptor, wasmhost.WithCallTimeout(0)).ConsumeInterceptor()
			return []pipeline.ConsumerOption{pipeline.ConsumeInterceptor("mask", ic)}
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			c, err := pipeline.NewConsumer(nil, append(tt.opts(b), pipeline.ConsumerLogger(hclog.NewNullLogger()))...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			const n = 64
			rs := make([]*kgo.Record, n)
			for i := range rs {
				rs[i] = &kgo.Record{Topic: "bench", Partition: 1, Offset: int64(i), Key: []byte("key-0001"), Value: v,
					Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}, Timestamp: time.UnixMilli(1)}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range rs {
					r.Value = v
				}
				if got := c.Process(ctx, rs); len(got.Delivered) != n {
					b.Fatalf("%d delivered", len(got.Delivered))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
