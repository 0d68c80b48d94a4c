package gateway_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/wasmhost"
)

// BenchmarkGateway produces 100-byte records with franz-go through a
// gateway to an in-process kfake broker; b.N records. Compare with
// BenchmarkDirect (the same client straight to the broker) for the
// gateway's cost; scripts/gateway_bench.sh measures the built binary with
// external clients.
func BenchmarkGateway(b *testing.B) {
	brokers := testbroker.Brokers(b)
	f := startOn(b, brokers, nil)
	benchProduce(b, f.addr, testbroker.CreateTopic(b, brokers, 3))
}

// BenchmarkGatewayForward is BenchmarkGateway with ForwardBatches: the
// client's batches go to kfake as they are.
func BenchmarkGatewayForward(b *testing.B) {
	brokers := testbroker.Brokers(b)
	f := startOn(b, brokers, forwarding)
	benchProduce(b, f.addr, testbroker.CreateTopic(b, brokers, 3))
}

// BenchmarkDirect is BenchmarkGateway without the gateway.
func BenchmarkDirect(b *testing.B) {
	brokers := testbroker.Brokers(b)
	benchProduce(b, brokers[0], testbroker.CreateTopic(b, brokers, 3))
}

func benchProduce(b *testing.B, addr, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up")}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := 0; i < b.N; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time (user and system) the process has used: the
// client, the gateway and the broker together. On a shared machine it
// varies less than ns/op, which depends on the share of the cores the
// process gets.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGatewayWASM is BenchmarkGateway with the WAT example plugins in
// the pipeline: the noop interceptor and the keyhash partitioner (so the
// pipeline partitions, KeepPartition(false)).
func BenchmarkGatewayWASM(b *testing.B) {
	root := plugintest.RepoRoot(b)
	src := fmt.Sprintf(`pipeline "b" {
  interceptor "noop" { module = %q }
  partitioner { module = %q }
}`, filepath.Join(root, "examples/plugins/wat/noop.wasm"), filepath.Join(root, "examples/plugins/wat/keyhash.wasm"))
	cfg, diags := config.Parse([]byte(src), "bench.hcl")
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	ctx := context.Background()
	host, err := wasmhost.New(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups run last first: the host closes after the gateway's
	// producer.
	b.Cleanup(func() { host.Close(ctx) })
	opts, err := cfg.Build(ctx, cfg.Pipelines[0], host)
	if err != nil {
		b.Fatal(err)
	}
	// As kpipe gateway does: stage batching on, so that the plugins get
	// the records of each client batch in batch calls.
	opts = append(opts, pipeline.StageBatch(pipeline.DefaultStageBatchRecords, time.Millisecond))
	brokers := testbroker.Brokers(b)
	f := startOn(b, brokers, []gateway.Option{gateway.KeepPartition(false)}, opts...)
	benchProduce(b, f.addr, testbroker.CreateTopic(b, brokers, 3))
}

// BenchmarkLatency sends one record at a time (ProduceSync, linger 0) to
// the broker directly, through a gateway, and through one that forwards
// batches (ForwardBatches), and reports the p50 and p99 of the round trips;
// the difference is what the gateway adds.
func BenchmarkLatency(b *testing.B) {
	brokers := testbroker.Brokers(b)
	f := startOn(b, brokers, nil)
	fw := startOn(b, brokers, forwarding)
	topic := testbroker.CreateTopic(b, brokers, 1)
	for _, c := range []struct{ name, addr string }{{"direct", brokers[0]}, {"gateway", f.addr}, {"forward", fw.addr}} {
		b.Run(c.name, func(b *testing.B) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up")}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, b.N)
			value := make([]byte, 100)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[b.N/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[b.N*99/100].Microseconds()), "p99-µs")
		})
	}
}
