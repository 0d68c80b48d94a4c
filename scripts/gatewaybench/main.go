// Command gatewaybench produces records with franz-go to a Kafka endpoint (a
// broker, or a kpipe gateway in front of one) and prints one line of JSON
// with what it measured. scripts/gateway_bench.sh runs it against the broker
// directly and through gateways, in interleaved rounds.
//
// Two modes:
//
//	-mode throughput: send -n records as fast as the client can; prints
//	  records/s.
//	-mode latency: send -rate records/s for -duration, one at a time on a
//	  ticker; prints the p50 and p99 of the time from Produce to its
//	  acknowledgement.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	var (
		brokers  = flag.String("brokers", "", "bootstrap HOST:PORT")
		topic    = flag.String("topic", "", "topic")
		mode     = flag.String("mode", "throughput", "throughput or latency")
		n        = flag.Int("n", 200000, "records (throughput)")
		size     = flag.Int("size", 100, "value bytes")
		rate     = flag.Int("rate", 5000, "records per second (latency)")
		duration = flag.Duration("duration", 5*time.Second, "how long to send (latency)")
	)
	flag.Parse()
	if err := run(*brokers, *topic, *mode, *n, *size, *rate, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		os.Exit(1)
	}
}

func run(brokers, topic, mode string, n, size, rate int, duration time.Duration) error {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation()}
	if mode == "latency" {
		opts = append(opts, kgo.ProducerLinger(0))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Warm up: metadata, connections, producer id.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up")}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	value := make([]byte, size)
	switch mode {
	case "throughput":
		var failed error
		var mu sync.Mutex
		start := time.Now()
		for i := range n {
			cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		el := time.Since(start)
		if failed != nil {
			return failed
		}
		return emit(map[string]any{"records": n, "seconds": el.Seconds(), "records_per_s": float64(n) / el.Seconds()})
	case "latency":
		total := int(duration.Seconds() * float64(rate))
		lat := make([]time.Duration, total)
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := range total {
			<-tick.C
			wg.Add(1)
			t0 := time.Now()
			cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value}, func(_ *kgo.Record, err error) {
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		if failed != nil {
			return failed
		}
		slices.Sort(lat)
		return emit(map[string]any{"records": total, "p50_ms": ms(lat[len(lat)/2]), "p99_ms": ms(lat[len(lat)*99/100])})
	}
	return fmt.Errorf("-mode %q: want throughput or latency", mode)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func emit(v map[string]any) error { return json.NewEncoder(os.Stdout).Encode(v) }
