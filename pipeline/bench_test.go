package pipeline_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopInterceptor is the native twin of examples/plugins/wat/noop.wat.
type nopInterceptor struct{}

func (nopInterceptor) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}
func (nopInterceptor) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }

// keyHash is the native twin of examples/plugins/wat/keyhash.wat.
type keyHash struct{}

func (keyHash) Partition(_ context.Context, r *plugins.Record, n int32) (int32, error) {
	if r.Key == nil {
		return plugins.DefaultPartition, nil
	}
	return plugins.KeyPartition(r.Key, n), nil
}

// BenchmarkProduce produces keyed records with 100-byte values to one
// in-process kfake broker, from one goroutine:
//
//   - bare: franz-go alone, with the client settings kpipe's defaults give
//     it (linger, batch and request sizes, buffer limits, acks=all with
//     idempotence, no compression, timeouts) and franz-go's equivalent of
//     the default partitioner;
//   - builtin: kpipe with the built-in "bytes" serializers and the default
//     partitioner, given as kpipe's configuration gives them
//     (config.ChainOptions): nil, the pipeline's own;
//   - wasm: kpipe with the WASM no-op interceptor and key-hash partitioner,
//     loaded with wasmhost's default settings (which include a per-call
//     time limit), and kpipe's default stage batching (64 records);
//   - wasm-notimeout: the same with wasmhost's per-call time limit off;
//   - wasm-unbatched: wasm with stage batching off (StageBatch(1, 0)): one
//     guest call per record and stage;
//   - native: kpipe with the same two plugins written in Go.
//
// Every variant allocates one record per send, as a caller must (the
// producer owns the record until its outcome is known). The broker discards
// what it receives (kfake.BlackholeProduce): the figures are the client's,
// and do not depend on how much earlier variants stored in the same broker.
func BenchmarkProduce(b *testing.B) {
	brokers, topic, keys, value := pipeline.ProduceBenchInput(b)
	ctx := context.Background()

	// Besides wall-clock records/s, report the process's CPU time per
	// record (broker included): on a shared machine it is the steadier
	// figure.
	run := func(b *testing.B, send func(i int), flush func()) {
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		for i := 0; i < b.N; i++ {
			send(i)
		}
		flush()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/record")
	}

	b.Run("bare", func(b *testing.B) {
		// The settings pipeline.New derives from its defaults, spelled
		// out even where they are franz-go's defaults too.
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
			kgo.ProducerLinger(10*time.Millisecond),
			kgo.ProducerBatchMaxBytes(1_000_012),
			kgo.BrokerMaxWriteBytes(100<<20),
			kgo.MaxBufferedRecords(50_000),
			kgo.MaxBufferedBytes(32<<20),
			kgo.ProduceRequestTimeout(30*time.Second),
			kgo.RecordDeliveryTimeout(0),
			kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes stay on
			kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: keys[0], Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		run(b, func(i int) {
			cl.Produce(ctx, &kgo.Record{Key: keys[i&1023], Value: value}, nil)
		}, func() {
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})

	kpipe := func(b *testing.B, opts ...pipeline.Option) {
		p, err := pipeline.New(ctx, append([]pipeline.Option{
			pipeline.Brokers(brokers...), pipeline.DefaultTopic(topic),
			pipeline.Logger(hclog.NewNullLogger()),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		if res := p.SendSync(ctx, &plugins.Record{Key: keys[0], Value: value}); res.Err != nil {
			b.Fatal(res.Err)
		}
		run(b, func(i int) {
			p.Send(ctx, &plugins.Record{Key: keys[i&1023], Value: value}, nil)
		}, func() {
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
		if s := p.Stats(); s.Failed != 0 {
			b.Fatalf("%d records failed", s.Failed)
		}
	}
	b.Run("builtin", func(b *testing.B) {
		kpipe(b, pipeline.KeySerializer("bytes", nil), pipeline.ValueSerializer("bytes", nil),
			pipeline.Partitioner("default", nil))
	})
	b.Run("wasm", func(b *testing.B) {
		kpipe(b, pipeline.Interceptor("noop", wasmPlugin(b, "noop.wasm", plugins.KindInterceptor)),
			pipeline.Partitioner("keyhash", wasmPlugin(b, "keyhash.wasm", plugins.KindPartitioner)))
	})
	// The same without wasmhost's per-call time limit.
	b.Run("wasm-notimeout", func(b *testing.B) {
		kpipe(b, pipeline.Interceptor("noop", wasmPlugin(b, "noop.wasm", plugins.KindInterceptor, wasmhost.WithCallTimeout(0))),
			pipeline.Partitioner("keyhash", wasmPlugin(b, "keyhash.wasm", plugins.KindPartitioner, wasmhost.WithCallTimeout(0))))
	})
	b.Run("wasm-unbatched", func(b *testing.B) {
		kpipe(b, pipeline.Interceptor("noop", wasmPlugin(b, "noop.wasm", plugins.KindInterceptor)),
			pipeline.Partitioner("keyhash", wasmPlugin(b, "keyhash.wasm", plugins.KindPartitioner)),
			pipeline.StageBatch(1, 0))
	})
	b.Run("native", func(b *testing.B) {
		kpipe(b, pipeline.Interceptor("noop", nopInterceptor{}), pipeline.Partitioner("keyhash", keyHash{}))
	})
}
