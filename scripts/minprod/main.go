// Command minprod is the smallest useful franz-go producer: it sends every
// line of stdin as one record value (no key) to a topic, and exits 1 if a
// record failed. scripts/bench_cli.py runs it as the baseline of `kpipe run
// --format raw`, so it produces with kpipe's default Kafka settings: those
// franz-go shares (acks=all, idempotence, 10ms linger, 1,000,012-byte
// batches, 50,000 buffered records) and, where franz-go's differ, kpipe's:
// no compression (franz-go compresses with snappy) and at most 32 MiB
// buffered.
//
//	minprod --brokers 127.0.0.1:9092 --topic bench < values.txt
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "bench", "topic to produce to")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.DefaultProduceTopic(*topic), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedBytes(32<<20),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "minprod:", err)
		os.Exit(3)
	}
	defer cl.Close()
	var failed atomic.Int64
	done := func(_ *kgo.Record, err error) {
		if err != nil && failed.Add(1) == 1 {
			fmt.Fprintln(os.Stderr, "minprod:", err)
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	n := 0
	for sc.Scan() {
		cl.Produce(ctx, &kgo.Record{Value: append([]byte(nil), sc.Bytes()...)}, done)
		n++
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "minprod: reading stdin:", err)
		os.Exit(3)
	}
	if err := cl.Flush(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "minprod: flush:", err)
		os.Exit(3)
	}
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "minprod: %d of %d records failed\n", f, n)
		os.Exit(1)
	}
}
