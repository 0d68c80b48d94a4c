package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/wasmhost"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Brokers": "brokers", "ClientID": "client_id", "TransactionalID": "transactional_id",
		"BatchMaxBytes": "batch_max_bytes", "MaxBufferedRecords": "max_buffered_records",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// parsePipeline parses src as dir/k.hcl, where dir holds modules a.wasm and
// b.wasm with different contents.
func parsePipeline(t *testing.T, dir, src string) (*config.Config, *config.Pipeline) {
	t.Helper()
	cfg, diags := config.Parse([]byte(src), filepath.Join(dir, "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg, cfg.Pipelines[0]
}

func TestDiffAndRestart(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a.wasm": "\x00asm\x01\x00\x00\x00", "b.wasm": "\x00asm\x01\x00\x00\x00\x00"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const base = `kafka {
  brokers = ["127.0.0.1:9092"]
}
pipeline "p" {
  topic = "t"
  interceptor "i1" { module = "a.wasm" }
  partitioner { module = "a.wasm" }
}
`
	oldCfg, oldP := parsePipeline(t, dir, base)
	r := &reloader{cfg: oldCfg, pipe: oldP}
	tests := []struct {
		name       string
		src        string
		brokersSet bool
		changes    string
		restart    []string
	}{
		{name: "same", src: base},
		{name: "same, moved", src: "\n\n" + base},
		{name: "partitioner replaced", src: strings.Replace(base, `partitioner { module = "a.wasm" }`, `partitioner { module = "b.wasm" }`, 1),
			changes: "replaced partitioner a (sha256 93a44bbb96c7) by b (sha256"},
		{name: "partitioner config", src: strings.Replace(base, `partitioner { module = "a.wasm" }`, `partitioner {
    module = "a.wasm"
    config = { n = 1 }
  }`, 1), changes: "replaced partitioner a"},
		{name: "interceptor added, builtin serializer", src: strings.Replace(base, `  partitioner`, `  interceptor "i2" { module = "b.wasm" }
  value_serializer { builtin = "json" }
  partitioner`, 1), changes: "added interceptor i2 (sha256 "},
		{name: "interceptor removed", src: strings.Replace(base, `  interceptor "i1" { module = "a.wasm" }`, ``, 1), changes: "removed interceptor i1"},
		{name: "brokers", src: strings.Replace(base, "9092", "9093", 1),
			restart: []string{"k.hcl:1:1: error: Needs a restart: the kafka settings brokers changed"}},
		{name: "brokers overridden", src: strings.Replace(base, "9092", "9093", 1), brokersSet: true},
		{name: "transactional id and topic", src: strings.Replace(strings.Replace(base, `  brokers`, `  transactional_id = "x"
  brokers`, 1), `topic = "t"`, `topic = "u"`, 1),
			restart: []string{"kafka settings transactional_id changed", `k.hcl:5:1: error: Needs a restart: the pipeline's topic changed from "t" to "u"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, p := parsePipeline(t, dir, tt.src)
			r.brokers = tt.brokersSet
			got := strings.Join(diffChains(oldP, p), "; ")
			if tt.changes == "" && got != "" || !strings.Contains(got, tt.changes) {
				t.Errorf("changes %q, want %q", got, tt.changes)
			}
			restart := r.needsRestart(cfg, p)
			if len(restart) != len(tt.restart) {
				t.Fatalf("needsRestart: %q, want %d like %q", restart, len(tt.restart), tt.restart)
			}
			for i, want := range tt.restart {
				if !strings.Contains(restart[i], want) {
					t.Errorf("needsRestart[%d] = %q, want it to contain %q", i, restart[i], want)
				}
			}
		})
	}
}

// TestWatcher replaces a watched file by a rename and writes one in place
// in several steps: each is reported once, after the quiet time; files not
// watched in the same directory are not reported.
func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "m.wasm")
	cfg := filepath.Join(dir, "k.hcl")
	for _, f := range []string{mod, cfg} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := newWatcher([]string{cfg, mod}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	expect := func(what, want string) {
		t.Helper()
		select {
		case got := <-w.changes:
			if want != "" && got != want {
				t.Errorf("%s: change of %s, want %s", what, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change reported within 5s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case got := <-w.changes:
			t.Errorf("%s: unexpected change of %s", what, got)
		case <-time.After(300 * time.Millisecond):
		}
	}

	tmp := filepath.Join(dir, ".m.wasm.tmp")
	if err := os.WriteFile(tmp, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, mod); err != nil {
		t.Fatal(err)
	}
	expect("atomic rename", mod)
	quiet("after the rename")

	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_, _ = f.WriteString("line\n")
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()
	expect("in-place writes", cfg)
	quiet("after the writes (debounced into one)")

	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	quiet("a file that is not watched")

	// A new set of files: the old module is no longer watched.
	other := filepath.Join(t.TempDir(), "n.wasm")
	w.watch([]string{cfg, other})
	time.Sleep(50 * time.Millisecond)
	if err := os.WriteFile(other, []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("a module in a new directory", other)
}

// TestProbeChain passes a synthetic record through every hook of a chain: a
// plugin that faults (trap.wasm) rejects it at its block, one that works,
// builtins and the pipeline's own bytes serializer and default partitioner
// do not.
func TestProbeChain(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	trap := plugintest.WAT(t, "examples/plugins/wat/trap.wasm")
	keyhash := plugintest.WAT(t, "examples/plugins/wat/keyhash.wasm")
	ctx := context.Background()
	host, err := wasmhost.New(ctx, wasmhost.WithoutCompilationCache())
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	for _, tt := range []struct {
		name, body, want string
	}{
		{"working", fmt.Sprintf(`  interceptor "a" { module = %q }
  key_serializer   { builtin = "bytes" }
  value_serializer { builtin = "json" }
  partitioner      { module = %q }`, noop, keyhash), ""},
		{"defaults", `  partitioner { builtin = "default" }`, ""},
		{"trap", fmt.Sprintf(`  interceptor "a" { module = %q }
  interceptor "t" { module = %q }`, noop, trap), `k.hcl:3:3: error: Plugin fails on a synthetic record: interceptor "t", hook kpipe_on_send`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, p := parsePipeline(t, t.TempDir(), "pipeline \"p\" {\n"+tt.body+"\n}\n")
			ch, err := cfg.LoadChain(ctx, p, host)
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close(ctx)
			err = probeChain(ctx, ch)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("probe: %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("probe: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLiveFlags checks the usage errors of the live flags: each ends run
// with exit status 2 before anything starts.
func TestLiveFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--watch"}, "--watch needs --config"},
		{[]string{"run", "--admin-public"}, "--admin-public needs --admin"},
		{[]string{"run", "--pprof"}, "--pprof needs --admin"},
		{[]string{"run", "--admin", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"run", "--admin", "9464"}, "want HOST:PORT"},
	} {
		var stdout, stderr strings.Builder
		code := Main(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != ExitUsage || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("kpipe %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, stderr.String(), ExitUsage, tt.want)
		}
	}
}
