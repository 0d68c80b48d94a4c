package pipeline

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The breaker opens after threshold consecutive failed records, and once
// the cool-down passed lets exactly one of many concurrent callers through;
// the trial's result closes it or opens it again for twice as long.
func TestBreakerHalfOpenOneCall(t *testing.T) {
	var b breaker
	b.configure(3, 20*time.Millisecond)
	b.failure()
	b.success() // a success restarts the count
	for i := range 3 {
		if !b.allow() {
			t.Fatalf("failure %d: breaker open before the threshold", i)
		}
		if d := b.failure(); (d > 0) != (i == 2) {
			t.Fatalf("failure %d opened it for %v", i, d)
		}
	}
	if b.allow() {
		t.Fatal("breaker closed after 3 consecutive failures")
	}
	time.Sleep(25 * time.Millisecond)
	trial := func() int64 {
		var through atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if b.allow() {
					through.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		return through.Load()
	}
	if n := trial(); n != 1 {
		t.Fatalf("half-open: %d callers let through, want exactly 1", n)
	}
	if d := b.failure(); d != 40*time.Millisecond {
		t.Fatalf("failed trial: open for %v, want twice the cool-down", d)
	}
	if n := trial(); n != 0 {
		t.Fatalf("after the failed trial: %d callers let through, want none", n)
	}
	time.Sleep(45 * time.Millisecond)
	if n := trial(); n != 1 {
		t.Fatalf("second half-open: %d callers let through, want exactly 1", n)
	}
	b.success()
	if n := trial(); n != 16 {
		t.Fatalf("after a successful trial: %d of 16 callers let through", n)
	}
}
