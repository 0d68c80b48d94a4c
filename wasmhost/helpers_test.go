package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// cacheDir is a compilation cache shared by the tests of this process, so
// that each Go guest is compiled once.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmhost-test-cache-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Paths of the test guests, relative to the repository root.
const (
	goSDKGuest = "wasmhost/testdata/goguests/sdkguest"
	goRawGuest = "wasmhost/testdata/goguests/raw"
)

// wat returns the bytes of the compiled WAT test module name.
func wat(tb testing.TB, name string) []byte {
	tb.Helper()
	return readFile(tb, plugintest.WAT(tb, "wasmhost/testdata/"+name+".wat"))
}

// goGuest returns the bytes of a Go test guest, building it if needed.
func goGuest(tb testing.TB, dir string) []byte {
	tb.Helper()
	return readFile(tb, plugintest.GoPlugin(tb, dir))
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newHost returns a Host using the shared compilation cache, closed when the
// test ends.
func newHost(tb testing.TB, opts ...wasmhost.HostOption) *wasmhost.Host {
	tb.Helper()
	opts = append([]wasmhost.HostOption{wasmhost.WithCompilationCacheDir(cacheDir)}, opts...)
	h, err := wasmhost.New(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			tb.Errorf("Host.Close: %v", err)
		}
	})
	return h
}

func load(tb testing.TB, h *wasmhost.Host, name string, wasm []byte, kind plugins.Kind, opts ...wasmhost.PluginOption) *wasmhost.Plugin {
	tb.Helper()
	p, err := h.Load(context.Background(), name, wasm, kind, opts...)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return p
}

// modeRecord returns a record whose partition field selects the behaviour
// of the faulty, hostcalls and sdkguest test modules.
func modeRecord(mode int32) *plugins.Record {
	r := &plugins.Record{
		Topic:   "orders",
		Key:     []byte("key-1"),
		Value:   []byte("hello"),
		Headers: []plugins.Header{{Key: "h", Value: []byte("v")}},
	}
	r.SetPartition(mode)
	return r
}

// logBuffer is a logger whose output the test can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(b *logBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: b, Level: hclog.Trace})
}

// wantFault checks that err is a *Fault of plugin name and hook for reason,
// and that its message names both.
func wantFault(tb testing.TB, err error, plugin, hook string, reason wasmhost.FaultReason) *wasmhost.Fault {
	tb.Helper()
	var f *wasmhost.Fault
	if !errors.As(err, &f) {
		tb.Fatalf("error = %v (%T), want a *wasmhost.Fault", err, err)
	}
	if f.Plugin != plugin || f.Hook != hook || f.Reason != reason {
		tb.Fatalf("fault = {Plugin: %q, Hook: %q, Reason: %v}, want {%q, %q, %v}; error: %v",
			f.Plugin, f.Hook, f.Reason, plugin, hook, reason, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("%q", plugin)) || !strings.Contains(msg, hook) {
		tb.Fatalf("error %q does not name plugin %q and hook %s", msg, plugin, hook)
	}
	return f
}

// wantGuestError checks that err is a *GuestError of plugin and hook
// whose message contains want.
func wantGuestError(tb testing.TB, err error, plugin, hook, want string) {
	tb.Helper()
	var ge *wasmhost.GuestError
	if !errors.As(err, &ge) {
		tb.Fatalf("error = %v (%T), want a *wasmhost.GuestError", err, err)
	}
	if ge.Plugin != plugin || ge.Hook != hook || !strings.Contains(ge.Message, want) {
		tb.Fatalf("guest error = %+v, want plugin %q, hook %s, message containing %q", ge, plugin, hook, want)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", plugin)) || !strings.Contains(err.Error(), hook) {
		tb.Fatalf("error %q does not name plugin %q and hook %s", err, plugin, hook)
	}
}
