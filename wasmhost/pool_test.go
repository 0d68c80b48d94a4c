package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func TestConcurrentCalls(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor, wasmhost.WithPoolSize(3), wasmhost.WithCallTimeout(0))
	const workers, calls = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				r := modeRecord(9) // echo: decodes and replaces the record
				r.Value = fmt.Appendf(nil, "w%d-%d", w, i)
				if _, err := p.OnSend(ctx, r); err != nil {
					errs <- err
					return
				}
				if string(r.Value) != fmt.Sprintf("w%d-%d", w, i) {
					errs <- fmt.Errorf("worker %d call %d got value %q: instances mixed up records", w, i, r.Value)
					return
				}
				if i%50 == 0 { // a fault now and then, under load
					if _, err := p.OnSend(ctx, modeRecord(1)); err == nil {
						errs <- errors.New("trap mode did not fault")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Stats()
	if st.InstancesCreated-st.InstancesReplaced > 3 {
		t.Errorf("%d instances live, pool size is 3 (stats %+v)", st.InstancesCreated-st.InstancesReplaced, st)
	}
	if st.Calls.OnSend != workers*calls+workers*calls/50 {
		t.Errorf("calls = %d", st.Calls.OnSend)
	}
}

// busy starts an endless-loop call on p (pool size 1) and returns a channel
// that receives its error.
func busy(t *testing.T, p *wasmhost.Plugin) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := p.OnSend(context.Background(), modeRecord(2))
		done <- err
	}()
	// Wait until the call holds the only instance.
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Calls.OnSend == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// The call was counted just before it took the instance.
	time.Sleep(50 * time.Millisecond)
	return done
}

func TestAcquireWaitsAndRespectsContext(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(500*time.Millisecond))
	done := busy(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.OnSend(ctx, modeRecord(0))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 400*time.Millisecond {
		t.Errorf("OnSend while the pool is busy = %v after %v, want the context's deadline after ~50ms", err, time.Since(start))
	}
	wantFault(t, <-done, "faulty", "kpipe_on_send", wasmhost.FaultTimeout)
	// A waiting call gets the slot back once the loop is stopped.
	if _, err := p.OnSend(context.Background(), modeRecord(0)); err != nil {
		t.Errorf("OnSend after the timeout: %v", err)
	}
}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(300*time.Millisecond))
	done := busy(t, p)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The call ends (timed out, fault counted) before it gives its slot
	// back, so Close can only have returned after that.
	if n := p.Stats().Faults[wasmhost.FaultTimeout]; n != 1 {
		t.Fatal("Close returned while a call was in flight")
	}
	wantFault(t, <-done, "faulty", "kpipe_on_send", wasmhost.FaultTimeout)
	if _, err := p.OnSend(context.Background(), modeRecord(0)); !errors.Is(err, wasmhost.ErrClosed) {
		t.Errorf("OnSend after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseGivesUpWithContext(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(300*time.Millisecond))
	done := busy(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a short context = %v, want its deadline", err)
	}
	<-done
}

// TestHostCloseWithCallInFlight closes the Host while a call still runs in
// an instance whose memory the guest keeps writing (faulty.wat mode 2):
// Close gives up on the call, closes the runtime and its modules, and the
// guest must go on running in memory that is still there until its call
// times out. Freeing the memory under it crashed the process (SIGSEGV).
func TestHostCloseWithCallInFlight(t *testing.T) {
	h, err := wasmhost.New(context.Background(), wasmhost.WithCompilationCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor,
		wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(time.Second))
	done := busy(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Host.Close with a short context = %v, want its deadline", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the endless call returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call in flight did not end")
	}
}

// TestCancelStopsCall checks that with a call timeout, cancelling the
// caller's context stops a running call.
func TestCancelStopsCall(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor, wasmhost.WithCallTimeout(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := p.OnSend(ctx, modeRecord(2))
	wantFault(t, err, "faulty", "kpipe_on_send", wasmhost.FaultCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false", err)
	}
}

// TestTimeoutSurvivesCrossModeCache proves that the two runtime modes do
// not share compiled code: a module first compiled without wazero's
// termination checks (no call timeout) and then loaded from the same cache
// with them (the fallback for modules that cannot be instrumented) would
// loop forever if the cache handed back the first compilation. Each Host
// here stands for a new process.
func TestTimeoutSurvivesCrossModeCache(t *testing.T) {
	dir := t.TempDir()
	faulty := wat(t, "faulty")
	ctx := context.Background()

	first := newHost(t, wasmhost.WithCompilationCacheDir(dir))
	load(t, first, "faulty", faulty, plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasFiles(t, dir) {
		t.Fatal("the first Host cached nothing: the test would prove nothing")
	}

	second := newHost(t, wasmhost.WithCompilationCacheDir(dir))
	p := load(t, second, "faulty", faulty, plugins.KindInterceptor, wasmhost.WithCallTimeout(100*time.Millisecond), wasmhost.WithContextTimeout())
	done := make(chan error, 1)
	go func() {
		_, err := p.OnSend(ctx, modeRecord(2))
		done <- err
	}()
	select {
	case err := <-done:
		wantFault(t, err, "faulty", "kpipe_on_send", wasmhost.FaultTimeout)
	case <-time.After(10 * time.Second):
		// The call cannot be stopped: the goroutine leaks, the test fails.
		t.Fatal("endless loop not stopped: code compiled without termination checks was reused")
	}
}

func hasFiles(t *testing.T, dir string) bool {
	t.Helper()
	var found bool
	err := walk(dir, func() { found = true })
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestNoopHookDoesNotAllocate(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "noop", wat(t, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
	r := &plugins.Record{Topic: "bench", Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100)}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := p.OnSend(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a no-op OnSend allocates %v times per call", allocs)
	}
}

// TestSequentialCallsReuseOneInstance checks that idle instances are
// preferred over creating new ones: one caller at a time needs one instance.
func TestSequentialCallsReuseOneInstance(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "noop", wat(t, "noop"), plugins.KindInterceptor, wasmhost.WithPoolSize(4))
	for range 20 {
		if _, err := p.OnSend(context.Background(), modeRecord(0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Stats().InstancesCreated; n != 1 {
		t.Errorf("20 sequential calls created %d instances, want 1", n)
	}
}

// walk calls found for every regular file under dir.
func walk(dir string, found func()) error {
	return filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			found()
		}
		return err
	})
}

// TestPoolHammer runs many goroutines against a small pool, so that most
// calls wait for a slot: every call must succeed, and the pool must never
// hold more instances than its size.
func TestPoolHammer(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "noop", wat(t, "noop"), plugins.KindInterceptor, wasmhost.WithPoolSize(2), wasmhost.WithCallTimeout(0))
	const goroutines, calls = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := modeRecord(0)
			for range calls {
				if _, err := p.OnSend(context.Background(), r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Calls.OnSend != goroutines*calls || st.InstancesCreated > 2 {
		t.Errorf("stats = %+v, want %d calls and at most 2 instances", st, goroutines*calls)
	}
}
