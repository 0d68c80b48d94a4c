package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// collect reads batches from out until an error other than a malformed line
// arrives, with a time limit.
func collect(t *testing.T, out <-chan []inputLine) (lines []inputLine, batches int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case b := <-out:
			batches++
			for _, il := range b {
				lines = append(lines, il)
				var le *lineError
				if il.err != nil && !errors.As(il.err, &le) {
					return lines, batches
				}
			}
		case <-timeout:
			t.Fatalf("no end of input after %d lines", len(lines))
		}
	}
}

func TestReadLinesBatches(t *testing.T) {
	var in strings.Builder
	for i := 1; i <= 1000; i++ {
		if i == 500 {
			in.WriteString("not json\n")
			continue
		}
		fmt.Fprintf(&in, "{\"value\":\"%d\"}\n", i)
	}
	out := make(chan []inputLine, 4)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(strings.NewReader(in.String()), formatJSON, 64, out, stop)
	lines, batches := collect(t, out)
	if len(lines) != 1001 || !errors.Is(lines[1000].err, io.EOF) {
		t.Fatalf("got %d results, last %v; want 1000 lines and io.EOF", len(lines), lines[len(lines)-1].err)
	}
	for i, il := range lines[:1000] {
		if il.line != i+1 {
			t.Fatalf("result %d is line %d", i, il.line)
		}
		var le *lineError
		switch {
		case i+1 == 500 && !errors.As(il.err, &le):
			t.Fatalf("line 500: err %v, want a malformed line", il.err)
		case i+1 != 500 && (il.err != nil || string(il.rec.Value) != fmt.Sprint(i+1)):
			t.Fatalf("line %d: %v %v", il.line, il.rec, il.err)
		}
	}
	if lines[999].offset != int64(in.Len()) {
		t.Errorf("offset after the last line = %d, want %d", lines[999].offset, in.Len())
	}
	if batches < 1000/64 || batches > 40 {
		t.Errorf("%d batches for 1000 lines of at most 64", batches)
	}
}

// TestReadLinesDoesNotHoldLines checks that lines already read are handed
// over while the input has no more to give (a pipe that stays open).
func TestReadLinesDoesNotHoldLines(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	out := make(chan []inputLine, 4)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(pr, formatRaw, 256, out, stop)
	if _, err := io.WriteString(pw, "a\nb\nc\n"); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < 3 {
		select {
		case b := <-out:
			for _, il := range b {
				got = append(got, string(il.rec.Value))
			}
		case <-timeout:
			t.Fatalf("got %q, then nothing while the pipe stayed open", got)
		}
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("got %q", got)
	}
}

// TestReadLinesStops checks that closing stop ends readLines while it waits
// to hand over a batch. (A read blocked on stdin cannot be interrupted; run
// abandons such a reader.)
func TestReadLinesStops(t *testing.T) {
	out := make(chan []inputLine) // nobody receives
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		readLines(strings.NewReader(strings.Repeat("x\n", 10000)), formatRaw, 16, out, stop)
		close(done)
	}()
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("readLines did not stop")
	}
}

// BenchmarkReadLines measures raw lines through readLines to a consumer,
// handed over one at a time (size 1, one channel operation per line) and in
// batches of lineBatch.
func BenchmarkReadLines(b *testing.B) {
	const n = 100000
	input := strings.Repeat(strings.Repeat("v", 100)+"\n", n)
	for _, size := range []int{1, lineBatch} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(input)))
			cpu0 := cpuTime()
			for b.Loop() {
				out := make(chan []inputLine, max(1, 1024/size))
				stop := make(chan struct{})
				go readLines(strings.NewReader(input), formatRaw, size, out, stop)
				count := 0
			recv:
				for batch := range out {
					for _, il := range batch {
						if il.err != nil {
							break recv
						}
						count++
					}
				}
				close(stop)
				if count != n {
					b.Fatalf("%d lines", count)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n), "cpu-ns/line")
		})
	}
}
