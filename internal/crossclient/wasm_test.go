package crossclient

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testenv"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// TestKpipeWASMInterceptorSeenByOtherClients runs records through a WASM
// interceptor (the headerstamp example plugin, built for wasip1 here) and
// requires kcat and kafka-python to see the records exactly as kpipe reported
// producing them, stamped headers included: what a guest writes crosses the
// ABI, the pipeline and the wire intact.
func TestKpipeWASMInterceptorSeenByOtherClients(t *testing.T) {
	t.Parallel()
	tl := requireTools(t)
	wasm := buildExamplePlugin(t, "headerstamp")
	brokers := testBrokers(t)
	topic := createTopic(t, brokers, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	host, err := wasmhost.New(ctx, wasmhost.WithCompilationCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	const stamp = "значение, с запятой=и равно"
	// Compiling the Go guest (a cold cache) took over the default load
	// timeout's minute on a 2-core machine with a load average of 25.
	stamper, err := host.LoadFile(ctx, "headerstamp", wasm, plugins.KindInterceptor,
		wasmhost.WithLoadTimeout(4*time.Minute),
		wasmhost.WithConfig([]byte(fmt.Sprintf(`{"headers": {"source": "kpipe", "x-stamp": %q}}`, stamp))))
	if err != nil {
		t.Fatalf("load headerstamp: %v", err)
	}
	p := newPipeline(t, brokers, topic, pipeline.Interceptor("headerstamp", stamper))

	const n = 20
	produced := make([]Record, n)
	errs := make(chan error, n)
	for i := range n {
		r := &plugins.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("value %d", i))}
		switch i % 3 {
		case 1: // a header the plugin replaces
			r.Headers = []plugins.Header{{Key: "source", Value: []byte("the producer")}}
		case 2: // one it leaves alone, and a tombstone
			r.Headers = []plugins.Header{{Key: "kept", Value: []byte("yes")}}
			r.Value = nil
		}
		p.Send(ctx, r, func(r *plugins.Record, res pipeline.Result) {
			if res.Outcome != pipeline.Delivered {
				errs <- fmt.Errorf("record %d: %v: %v", i, res.Outcome, res.Err)
				return
			}
			produced[i] = Record{Partition: res.Partition, Offset: res.Offset, Key: r.Key, Value: r.Value, Headers: slices.Clone(r.Headers)}
			errs <- nil
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sortRecords(produced)

	// The plugin must really have run, or agreement proves nothing.
	for _, r := range produced {
		if got := headerValues(r.Headers, "source"); !slices.Equal(got, []string{"kpipe"}) {
			t.Errorf("%s: source headers %q, want exactly [kpipe]", r, got)
		}
		if got := headerValues(r.Headers, "x-stamp"); !slices.Equal(got, []string{stamp}) {
			t.Errorf("%s: x-stamp headers %q, want exactly [%s]", r, got, stamp)
		}
	}

	tl.expectCommitted(ctx, t, brokers, topic, produced, "what kpipe produced")
}

func headerValues(hs []plugins.Header, key string) []string {
	var vs []string
	for _, h := range hs {
		if h.Key == key {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

// buildExamplePlugin builds examples/plugins/<name> for wasip1 as a reactor
// and returns the path of the module.
func buildExamplePlugin(t *testing.T, name string) string {
	t.Helper()
	goTool := testenv.RequireTool(t, "go")
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", out, "./"+name)
	cmd.Dir = filepath.Join("..", "..", "examples", "plugins")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}
