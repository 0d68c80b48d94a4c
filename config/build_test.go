package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func newHost(t *testing.T) *wasmhost.Host {
	t.Helper()
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.WithoutCompilationCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(ctx) })
	return h
}

// TestBuild turns a pipeline with WASM and built-in plugins into a running
// producer, sends records through it and checks that every plugin of the
// file ran under its configured name, and that the partitioner module chose
// the partitions.
func TestBuild(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 4)
	src := fmt.Sprintf(`
kafka {
  brokers = %q
  linger  = "0s"
  acks    = "all"
}
pipeline "p" {
  topic = %q
  interceptor "first"  { module = %q }
  interceptor "second" {
    module    = %q
    pool_size = 1
    timeout   = "1s"
  }
  key_serializer   { builtin = "string" }
  value_serializer { builtin = "json" }
  partitioner      { module = %q }
  circuit_breaker {
    threshold = 3
    cooldown  = "1s"
  }
}
`, strings.Join(brokers, ","), topic, noop, noop, keyhash)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	prod := buildProducer(t, ctx, src)
	keys := []string{"a", "b", "c", "d", "e", "f"}
	parts := map[string]int32{}
	for _, k := range keys {
		res := prod.SendSync(ctx, &plugins.Record{Key: []byte(k), Value: []byte(`{"k": "` + k + `"}`)})
		if res.Outcome != pipeline.Delivered {
			t.Fatalf("record %s: %v %v", k, res.Outcome, res.Err)
		}
		if res.Topic != topic {
			t.Errorf("record %s went to topic %q, want the pipeline's %q", k, res.Topic, topic)
		}
		parts[k] = res.Partition
	}
	// keyhash places keys like the built-in murmur2 partitioner.
	ref, _ := plugins.NewPartitioner(plugins.PartitionerMurmur2, nil)
	for _, k := range keys {
		want, _ := ref.Partition(ctx, &plugins.Record{Key: []byte(k)}, 4)
		if parts[k] != want {
			t.Errorf("key %s: partition %d, want %d (keyhash)", k, parts[k], want)
		}
	}
	st := prod.Stats()
	if _, err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, p := range st.Plugins {
		got[p.Name+"/"+string(p.Hook)] = p.Calls
	}
	for _, want := range []string{"first/on_send", "second/on_send", "string/serialize_key", "json/serialize_value", "keyhash/partition"} {
		if got[want] != uint64(len(keys)) {
			t.Errorf("%s: %d calls, want %d (all stats: %v)", want, got[want], len(keys), got)
		}
	}
	msgs := testbroker.ReadAll(t, brokers, topic, len(keys), false)
	for _, m := range msgs {
		if want := `{"k":"` + string(m.Key) + `"}`; string(m.Value) != want {
			t.Errorf("value %q, want the compacted %q (json serializer)", m.Value, want)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	dir := t.TempDir()
	src := fmt.Sprintf("pipeline \"p\" {\n  partitioner { module = %q }\n}\n", trap)
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, err := cfg.Build(context.Background(), cfg.Pipelines[0], newHost(t))
	if err == nil || !strings.Contains(err.Error(), "k.hcl:2:3: ") || !strings.Contains(err.Error(), "wrong kind") {
		t.Errorf("Build of an interceptor used as a partitioner: %v; want the block position and the wrong kind", err)
	}
}

func TestCheck(t *testing.T) {
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "text.wasm"), []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`pipeline "p" {
  interceptor "ok" { module = %q }
  interceptor "text" { module = "text.wasm" }
  interceptor "gone" { module = "gone.wasm" }
  partitioner { module = %q }
  value_serializer {
    module = %q
    memory_limit = "128KiB"
  }
  bogus = 1
}
`, noop, trap, noop)
	path := filepath.Join(dir, "k.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Check(context.Background(), path, newHost(t))
	if cfg != nil {
		t.Error("Check returned a config despite errors")
	}
	want := []string{
		"3:33: error: Cannot load module",
		"4:33: error: Module not found",
		"5:26: error: Cannot load module",
		"7:14: error: Cannot load module",
		"10:3: error: Unsupported argument",
	}
	var got []string
	for _, d := range diags {
		got = append(got, strings.TrimPrefix(FormatDiagnostic(d), path+":"))
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d:\n got: %s\nwant: %s...", i, got[i], want[i])
		}
	}

	// A clean file passes; CheckModules alone agrees.
	good := filepath.Join(dir, "good.hcl")
	if err := os.WriteFile(good, []byte(fmt.Sprintf("pipeline \"p\" {\n  interceptor \"ok\" { module = %q }\n}\n", noop)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags = Check(context.Background(), good, newHost(t))
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("Check(good) = %v", diags)
	}
	if d := cfg.CheckModules(context.Background(), newHost(t)); d.HasErrors() {
		t.Errorf("CheckModules(good) = %v", d)
	}
}

// TestCheckModulesAfter checks what is loaded again after a failed
// LoadChain: the blocks it loaded before the failure are not (text.wasm,
// which cannot load, is not reported), the failed block is reported from
// the error alone when its load overran its time limit (noop.wasm would
// load) and loaded again otherwise, and the blocks after it are loaded.
func TestCheckModulesAfter(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "text.wasm"), []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`pipeline "p" {
  interceptor "before" { module = "text.wasm" }
  interceptor "failed" { module = %q }
  interceptor "after" { module = "text.wasm" }
}
`, noop)
	path := filepath.Join(dir, "k.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ics := cfg.Pipelines[0].Interceptors
	timedOut := fmt.Errorf("load plugin: _initialize: stopped: %w", context.DeadlineExceeded)
	for _, c := range []struct {
		name string
		err  error
		want []string
	}{
		{"timed out", &LoadError{Block: ics[1], Loaded: ics[:1], Err: timedOut}, []string{
			"3:35: error: Cannot load module: load plugin: _initialize: stopped: context deadline exceeded",
			"4:34: error: Cannot load module"}},
		{"failed quickly", &LoadError{Block: ics[1], Loaded: ics[:1], Err: errors.New("boom")}, []string{
			"4:34: error: Cannot load module"}},
		{"not a LoadError", errors.New("boom"), []string{
			"2:35: error: Cannot load module",
			"4:34: error: Cannot load module"}},
	} {
		var got []string
		for _, d := range cfg.CheckModulesAfter(context.Background(), newHost(t), c.err) {
			got = append(got, strings.TrimPrefix(FormatDiagnostic(d), path+":"))
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %d diagnostics, want %d:\n%s", c.name, len(got), len(c.want), strings.Join(got, "\n"))
			continue
		}
		for i := range c.want {
			if !strings.HasPrefix(got[i], c.want[i]) {
				t.Errorf("%s: diagnostic %d:\n got: %s\nwant: %s...", c.name, i, got[i], c.want[i])
			}
		}
	}
}

// TestBuildBatch checks that a batch block reaches the producer: with
// max_records = 4 and a linger far longer than the test, three records sent
// with Send wait in the stage queue, and the fourth, which fills the batch,
// sends all four.
func TestBuildBatch(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	brokers := testbroker.Brokers(t)
	topic := testbroker.CreateTopic(t, brokers, 1)
	src := fmt.Sprintf(`
kafka {
  brokers = %q
  linger  = "0s"
}
pipeline "p" {
  topic = %q
  interceptor "noop" { module = %q }
  batch {
    max_records = 4
    linger      = "1h"
  }
}
`, strings.Join(brokers, ","), topic, noop)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	prod := buildProducer(t, ctx, src)
	defer prod.Close(ctx)
	delivered := make(chan string, 4)
	send := func(v string) {
		prod.Send(ctx, &plugins.Record{Value: []byte(v)}, func(r *plugins.Record, res pipeline.Result) {
			if res.Err != nil {
				t.Errorf("record %s: %v", r.Value, res.Err)
			}
			delivered <- string(r.Value)
		})
	}
	for _, v := range []string{"a", "b", "c"} {
		send(v)
	}
	// Nothing may come out while the batch is not full. The wait is a
	// bound on how long a wrongly unbatched record would take to be
	// acknowledged by the broker, not a timing assertion on kpipe.
	select {
	case v := <-delivered:
		t.Fatalf("record %s delivered before its batch was full: the batch block did not reach the producer", v)
	case <-time.After(500 * time.Millisecond):
	}
	if st := prod.Stats(); st.InFlight != 3 {
		t.Fatalf("in flight: %d, want the 3 queued records", st.InFlight)
	}
	send("d")
	var got []string
	for range 4 {
		select {
		case v := <-delivered:
			got = append(got, v)
		case <-ctx.Done():
			t.Fatalf("only %v delivered after the batch filled: %v", got, ctx.Err())
		}
	}
	if strings.Join(got, "") != "abcd" {
		t.Errorf("delivered %v, want a b c d in order", got)
	}
}

// buildProducer parses src, builds its first pipeline and starts a producer
// with it.
func buildProducer(t *testing.T, ctx context.Context, src string) *pipeline.Producer {
	t.Helper()
	cfg, diags := Parse([]byte(src), filepath.Join(t.TempDir(), "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	opts, err := cfg.Build(ctx, cfg.Pipelines[0], newHost(t))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := pipeline.New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return prod
}

// TestLoadChecksModuleHash replaces a module after the file was parsed:
// loading refuses it, naming the block, because what would run is not what
// was parsed (or pinned).
func TestLoadChecksModuleHash(t *testing.T) {
	noop, err := os.ReadFile(plugintest.WAT(t, "examples/plugins/wat/noop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	keyhash, err := os.ReadFile(plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(noop)
	for _, tt := range []struct {
		name, pin, want string
	}{
		{"unpinned", "", "changed after the configuration was read"},
		{"pinned", fmt.Sprintf("\n    sha256 = %q", hex.EncodeToString(sum[:])), "but the block pins " + hex.EncodeToString(sum[:])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := filepath.Join(dir, "p.wasm")
			if err := os.WriteFile(mod, noop, 0o644); err != nil {
				t.Fatal(err)
			}
			src := fmt.Sprintf("pipeline \"p\" {\n  interceptor \"i\" {\n    module = \"p.wasm\"%s\n  }\n}\n", tt.pin)
			cfg, diags := Parse([]byte(src), filepath.Join(dir, "k.hcl"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if err := os.WriteFile(mod, keyhash, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := cfg.Build(context.Background(), cfg.Pipelines[0], newHost(t))
			if err == nil || !strings.Contains(err.Error(), "k.hcl:2:3: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build after the module changed: %v; want the block position and %q", err, tt.want)
			}
		})
	}
}

// TestLoadChain loads a pipeline's plugins in chain order, and closes them.
func TestLoadChain(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	src := fmt.Sprintf(`pipeline "p" {
  partitioner      { module = %q }
  value_serializer { builtin = "json" }
  interceptor "a"  { module = %q }
  interceptor "b"  { module = %q }
  circuit_breaker {
    threshold = 3
    cooldown  = "1s"
  }
}
`, keyhash, noop, noop)
	cfg, diags := Parse([]byte(src), filepath.Join(t.TempDir(), "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	ch, err := cfg.LoadChain(ctx, cfg.Pipelines[0], newHost(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, lp := range ch.Plugins {
		names = append(names, lp.Block.Name)
	}
	if got, want := strings.Join(names, ","), "a,b,json,keyhash"; got != want {
		t.Errorf("chain order %s, want %s", got, want)
	}
	// The breaker, two interceptors, the serializer and the partitioner.
	if n := len(ch.Options()); n != 5 {
		t.Errorf("%d options, want 5", n)
	}
	if err := ch.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a := ch.Plugins[0].Impl.(plugins.Interceptor)
	if _, err := a.OnSend(ctx, &plugins.Record{}); !errors.Is(err, wasmhost.ErrClosed) {
		t.Errorf("OnSend after Close: %v, want wasmhost.ErrClosed", err)
	}
}
