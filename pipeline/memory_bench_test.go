package pipeline

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/plugins"
)

// BenchmarkProduceMemory splits what BenchmarkProduce/builtin costs over
// franz-go alone into the per-record memory and the pipeline's code. Both
// variants run franz-go alone, with the client settings of kpipe's
// defaults and franz-go's sticky key partitioner, as BenchmarkProduce/bare,
// and no pipeline code:
//
//   - bare: the caller allocates one kgo.Record a record;
//   - envelope: each record is allocated as Send allocates it, the
//     caller's plugins.Record and an envelope holding the kgo.Record, and
//     the promise finds the envelope (envelopeOf) and reads what finish
//     reads first.
//
// envelope/bare is what the memory layout costs, and BenchmarkProduce's
// builtin/bare over envelope/bare what the pipeline's code costs
// (RATIONALE.md, "Where builtin's extra CPU goes").
func BenchmarkProduceMemory(b *testing.B) {
	brokers, topic, keys, value := ProduceBenchInput(b)
	ctx := context.Background()
	cfg := defaultConfig()
	cfg.brokers = brokers
	kopts, err := cfg.kgoOptions(true)
	if err != nil {
		b.Fatal(err)
	}
	kopts = append(kopts, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))

	run := func(b *testing.B, send func(cl *kgo.Client, i int)) {
		cl, err := kgo.NewClient(kopts...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: keys[0], Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), processCPU()
		for i := 0; i < b.N; i++ {
			send(cl, i)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/record")
	}

	b.Run("bare", func(b *testing.B) {
		run(b, func(cl *kgo.Client, i int) {
			cl.Produce(ctx, &kgo.Record{Key: keys[i&1023], Value: value}, nil)
		})
	})
	b.Run("envelope", func(b *testing.B) {
		var odd int // records failed, or with a callback or acknowledgements
		promise := func(kr *kgo.Record, err error) {
			if e := envelopeOf(kr); err != nil || e.cb != nil || e.seen != 0 {
				odd++
			}
		}
		run(b, func(cl *kgo.Client, i int) {
			r := &plugins.Record{Key: keys[i&1023], Value: value}
			e := new(envelope)
			e.open(ctx, r, nil)
			e.kr.Key, e.kr.Value = r.Key, r.Value
			cl.Produce(ctx, &e.kr, promise)
		})
		if odd != 0 {
			b.Fatalf("%d records failed", odd)
		}
	})
}

// processCPU is the CPU time the process used so far (broker included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProduceBenchInput starts the in-process broker of BenchmarkProduce and
// BenchmarkProduceMemory, which discards what it receives, with a topic of
// 6 partitions, and returns it with their input: 1,024 keys and a 100-byte
// value.
func ProduceBenchInput(b *testing.B) (brokers []string, topic string, keys [][]byte, value []byte) {
	_, brokers = testbroker.Fake(b, kfake.BlackholeProduce())
	topic = testbroker.CreateTopic(b, brokers, 6)
	keys = make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%06d", i)
	}
	value = make([]byte, 100)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	return brokers, topic, keys, value
}
