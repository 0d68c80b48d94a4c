package gateway_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
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
	brokers := testbroker.Brokers(b)
	f := startOn(b, brokers, []gateway.Option{gateway.KeepPartition(false)}, opts...)
	benchProduce(b, f.addr, testbroker.CreateTopic(b, brokers, 3))
}
