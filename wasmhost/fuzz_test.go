package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// fuzzPlugin is the name the fuzz targets load their modules under: every
// error must name it.
const fuzzPlugin = "fuzzed"

// fuzzBound is how long a load, a call or Close of a fuzzed module may take
// before the fuzz targets report it as hung. The limits of the plugin are
// far smaller (fuzzOptions); compilation, which the load timeout does not
// cut short below 2 min, takes milliseconds for modules within the
// structure limits that CheckLimits enforces, so a load that overruns
// this bound has found a structure that costs far more than its size.
const fuzzBound = 30 * time.Second

// fuzzOptions are the tight limits under which the fuzz targets load
// modules.
func fuzzOptions() []wasmhost.PluginOption {
	return []wasmhost.PluginOption{
		wasmhost.WithPoolSize(1),
		wasmhost.WithMemoryLimitPages(16),
		wasmhost.WithCallTimeout(100 * time.Millisecond),
		wasmhost.WithLoadTimeout(500 * time.Millisecond),
		wasmhost.WithMaxOutputBytes(1 << 16),
		wasmhost.WithConfig([]byte(`{"fuzz":true}`)),
		// Every log line is formatted (and discarded), so that the
		// escaping of guest text runs too.
		wasmhost.WithLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Trace})),
	}
}

// fuzzKinds are the kinds a fuzzed module is loaded as, chosen by an input
// byte: 0 (whatever the module declares) and each kind.
var fuzzKinds = []plugins.Kind{0, plugins.KindInterceptor, plugins.KindSerializer, plugins.KindPartitioner,
	plugins.KindConsumeInterceptor, plugins.KindDeserializer}

// fuzzHost is a Host without a compilation cache on disk, which fuzzed
// modules would fill, replaced by a new one every fuzzHostInputs inputs:
// each wazero runtime keeps every function type it compiled for its life
// (RATIONALE.md, Module limits), and a fuzzing process that kept one Host
// for hundreds of thousands of random modules ran out of memory for that
// alone. The last Host is closed when the fuzz target ends.
type fuzzHost struct {
	h    *wasmhost.Host
	used int
}

const fuzzHostInputs = 2000

func newFuzzHost(f *testing.F) *fuzzHost {
	f.Helper()
	fh := &fuzzHost{}
	fh.renew(f)
	f.Cleanup(func() {
		if err := fh.h.Close(context.Background()); err != nil {
			f.Errorf("Host.Close: %v", err)
		}
	})
	return fh
}

// renew replaces the Host, closing the previous one.
func (fh *fuzzHost) renew(tb testing.TB) {
	if fh.h != nil {
		if err := fh.h.Close(context.Background()); err != nil {
			tb.Errorf("Host.Close: %v", err)
		}
	}
	h, err := wasmhost.New(context.Background(), wasmhost.WithoutCompilationCache())
	if err != nil {
		tb.Fatal(err)
	}
	fh.h, fh.used = h, 0
}

// host returns the Host for the next input.
func (fh *fuzzHost) host(tb testing.TB) *wasmhost.Host {
	if fh.used == fuzzHostInputs {
		fh.renew(tb)
	}
	fh.used++
	return fh.h
}

// within runs fn and fails the test if it does not return within
// fuzzBound, with the stacks of every goroutine.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	timer := time.NewTimer(fuzzBound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within %v; goroutines:\n%s", what, fuzzBound, buf)
	}
}

// FuzzLoad loads arbitrary bytes as a plugin of each kind under tight
// limits, and checks that the load neither panics nor hangs, that its
// error names the plugin, and that a module that loads can have each of
// its hooks called once, each call returning a result or an error that
// names the plugin, and be closed.
func FuzzLoad(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"testdata/*.wasm", "../examples/plugins/wat/*.wasm"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, paths...)
	}
	for _, path := range seeds {
		f.Add(readFile(f, path), byte(0))
	}
	for _, m := range handMadeModules {
		f.Add(m, byte(0))
	}
	fh := newFuzzHost(f)
	f.Fuzz(func(t *testing.T, wasm []byte, kindSel byte) {
		kind := fuzzKinds[int(kindSel)%len(fuzzKinds)]
		h := fh.host(t)
		var p *wasmhost.Plugin
		var err error
		within(t, "Load", func() {
			p, err = h.Load(context.Background(), fuzzPlugin, wasm, kind, fuzzOptions()...)
		})
		if err != nil {
			if want := fmt.Sprintf("load plugin %q", fuzzPlugin); !strings.Contains(err.Error(), want) {
				t.Fatalf("Load error %q does not contain %q", err, want)
			}
			return
		}
		if kind != 0 && p.Kinds()&kind == 0 {
			t.Errorf("loaded as %v, but the plugin declares %v", kind, p.Kinds())
		}
		exerciseHooks(t, p)
		within(t, "Close", func() {
			if err := p.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	})
}

// handMadeModules are small modules for FuzzLoad's seeds, each a shape
// that the WAT modules do not have.
var handMadeModules = [][]byte{
	// The header alone.
	[]byte("\x00asm\x01\x00\x00\x00"),
	// A start function that loops forever (the load timeout stops it).
	[]byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type 0: () -> ()
		"\x03\x02\x01\x00" + // function 0 of type 0
		"\x08\x01\x00" + // start: function 0
		"\x0a\x09\x01\x07\x00\x03\x40\x0c\x00\x0b\x0b"), // loop br 0 end end
	// A memory of 2^16 pages, above the ABI's limit.
	[]byte("\x00asm\x01\x00\x00\x00" +
		"\x05\x04\x01\x00\x80\x80\x04" +
		"\x07\x0a\x01\x06memory\x02\x00"),
}

// fuzzRecord returns the record the fuzz targets call hooks with.
func fuzzRecord() *plugins.Record {
	return &plugins.Record{
		Topic:     "orders",
		Key:       []byte("key-1"),
		Value:     []byte(`{"card":"4111111111111111"}`),
		Headers:   []plugins.Header{{Key: "h", Value: []byte("v")}},
		Timestamp: time.UnixMilli(1700000000000),
	}
}

// fuzzConsumed returns the consumed record the fuzz targets call the
// consume-side hooks with.
func fuzzConsumed() *kgo.Record {
	return &kgo.Record{
		Topic:     "orders",
		Partition: 2,
		Offset:    42,
		Key:       []byte("key-1"),
		Value:     []byte("\x00\x00\x00\x00\x01value"),
		Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte("v")}},
		Timestamp: time.UnixMilli(1700000000000),
	}
}

// fuzzPartitions is the partition count given to partitioners.
const fuzzPartitions = 4

// exerciseHooks calls once each hook of the kinds that p declares, and
// its batch form with two records, and checks what every call returned.
func exerciseHooks(t *testing.T, p *wasmhost.Plugin) {
	t.Helper()
	ctx := context.Background()
	kinds := p.Kinds()
	call := func(hook string, fn func() error) {
		t.Helper()
		var err error
		within(t, hook, func() { err = fn() })
		checkCallError(t, hook, err)
	}
	if kinds&plugins.KindInterceptor != 0 {
		call("OnSend", func() error {
			r := fuzzRecord()
			_, err := p.OnSend(ctx, r)
			if err != nil && !reflect.DeepEqual(r, fuzzRecord()) {
				t.Errorf("OnSend failed (%v) but changed the record: %+v", err, r)
			}
			return err
		})
		call("OnAck", func() error {
			return p.OnAck(ctx, fuzzRecord(), plugins.Ack{Offset: 7})
		})
		call("OnSendBatch", func() error {
			rs := []*plugins.Record{fuzzRecord(), fuzzRecord()}
			verdicts, errs := make([]plugins.Verdict, 2), make([]error, 2)
			if err := p.OnSendBatch(ctx, rs, verdicts, errs); err != nil {
				return err
			}
			for i, err := range errs {
				checkCallError(t, "OnSendBatch", err)
				if err != nil && !reflect.DeepEqual(rs[i], fuzzRecord()) {
					t.Errorf("OnSendBatch failed record %d (%v) but changed it: %+v", i, err, rs[i])
				}
			}
			return nil
		})
		call("OnAckBatch", func() error {
			rs := []*plugins.Record{fuzzRecord(), fuzzRecord()}
			acks := []plugins.Ack{{Offset: 7}, {Offset: -1, Err: errors.New("broker said no")}}
			errs := make([]error, 2)
			if err := p.OnAckBatch(ctx, rs, acks, errs); err != nil {
				return err
			}
			for _, err := range errs {
				checkCallError(t, "OnAckBatch", err)
			}
			return nil
		})
	}
	if kinds&plugins.KindSerializer != 0 {
		call("Serialize", func() error {
			b, err := p.Serialize(ctx, plugins.TargetValue, fuzzRecord())
			if len(b) > 1<<16 {
				t.Errorf("Serialize returned %d bytes, above the output limit", len(b))
			}
			return err
		})
	}
	if kinds&plugins.KindPartitioner != 0 {
		call("Partition", func() error {
			part, err := p.Partition(ctx, fuzzRecord(), fuzzPartitions)
			checkPartition(t, "Partition", part)
			return err
		})
		call("PartitionBatch", func() error {
			rs := []*plugins.Record{fuzzRecord(), fuzzRecord()}
			parts, errs := make([]int32, 2), make([]error, 2)
			if err := p.PartitionBatch(ctx, rs, []int32{fuzzPartitions, fuzzPartitions}, parts, errs); err != nil {
				return err
			}
			for i := range rs {
				checkPartition(t, "PartitionBatch", parts[i])
				checkCallError(t, "PartitionBatch", errs[i])
			}
			return nil
		})
	}
	if kinds&plugins.KindConsumeInterceptor != 0 {
		call("OnConsume", func() error {
			r := fuzzConsumed()
			_, err := p.OnConsume(ctx, r)
			if err != nil && !reflect.DeepEqual(r, fuzzConsumed()) {
				t.Errorf("OnConsume failed (%v) but changed the record: %+v", err, r)
			}
			return err
		})
	}
	if kinds&plugins.KindDeserializer != 0 {
		call("Deserialize", func() error {
			_, err := p.Deserialize(ctx, plugins.TargetValue, fuzzConsumed())
			return err
		})
	}
}

// checkCallError checks that a hook's error names the plugin, and that a
// *Fault or *GuestError names it in its fields too.
func checkCallError(t *testing.T, hook string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if want := fmt.Sprintf("plugin %q", fuzzPlugin); !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not contain %q", hook, err, want)
	}
	var f *wasmhost.Fault
	var ge *wasmhost.GuestError
	switch {
	case errors.As(err, &f):
		if f.Plugin != fuzzPlugin || !strings.HasPrefix(f.Hook, "kpipe_") {
			t.Errorf("%s: fault names plugin %q and hook %q", hook, f.Plugin, f.Hook)
		}
	case errors.As(err, &ge):
		if ge.Plugin != fuzzPlugin || !strings.HasPrefix(ge.Hook, "kpipe_") {
			t.Errorf("%s: guest error names plugin %q and hook %q", hook, ge.Plugin, ge.Hook)
		}
	}
}

// checkPartition checks that a partitioner's answer is a partition of the
// topic or the default partitioner.
func checkPartition(t *testing.T, hook string, part int32) {
	t.Helper()
	if part != plugins.DefaultPartition && (part < 0 || part >= fuzzPartitions) {
		t.Errorf("%s returned partition %d of %d", hook, part, fuzzPartitions)
	}
}
