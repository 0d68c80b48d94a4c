package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/embedded"
)

// BenchmarkRun measures `kpipe run` end to end, in this process, on inputs
// like scripts/bench_cli.py's (100-byte values; JSON lines with a key):
// reading, parsing, the hand-over to the producer, the pipeline, franz-go
// and the callbacks, on an embedded broker that runs in the same process
// (so ns/record includes the broker's share, the same for every variant).
// It reports the time, the CPU time and the allocations per record; scripts/bench_cli.py
// compares the built command with other clients.
func BenchmarkRun(b *testing.B) {
	const n = 50000
	value := strings.Repeat("v", 100)
	var raw, js bytes.Buffer
	for i := range n {
		fmt.Fprintf(&raw, "%s\n", value)
		fmt.Fprintf(&js, "{\"key\":\"key-%08d\",\"value\":\"%s\"}\n", i, value)
	}
	broker, err := embedded.Start(embedded.Config{Topics: []embedded.Topic{{Name: "bench", Partitions: 3}}})
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	for _, tc := range []struct {
		format string
		input  []byte
	}{{"raw", raw.Bytes()}, {"json", js.Bytes()}} {
		b.Run(tc.format, func(b *testing.B) {
			args := []string{"--log-level", "error", "run", "--brokers", broker.Addr(), "--topic", "bench", "--format", tc.format}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.input)))
			cpu0 := cpuTime()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				var stderr bytes.Buffer
				code := Main(ctx, args, bytes.NewReader(tc.input), io.Discard, &stderr)
				cancel()
				if code != 0 {
					b.Fatalf("exit %d: %s", code, stderr.String())
				}
			}
			records := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/records, "cpu-ns/record")
		})
	}
}
