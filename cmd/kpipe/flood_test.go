package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// TestPluginOutputFlood runs plugin test on a module that writes 100 MiB of
// lines to stderr in one call: kpipe's stderr must get a bounded amount (the
// log rate limit: bursts of 200 lines, then 100 a second, of 64-byte lines
// here) and say that lines were suppressed. Before the limit it got about
// 228 MB.
func TestPluginOutputFlood(t *testing.T) {
	mod := plugintest.WAT(t, "wasmhost/testdata/flood.wasm")
	r := kpipe(t, "", `{"value":"x"}`+"\n", "plugin", "test", mod, "--timeout", "1m", "--input", "-")
	if r.code != 0 {
		t.Fatalf("want exit 0, got exit %d:\n%.2000s", r.code, r.stderr)
	}
	t.Logf("kpipe's stderr got %d bytes for 100 MiB written by the plugin", len(r.stderr))
	if len(r.stderr) > 1<<20 {
		t.Errorf("kpipe's stderr got %d bytes, want at most 1 MiB", len(r.stderr))
	}
	if !strings.Contains(r.stderr, "log lines of the plugin suppressed") {
		t.Errorf("stderr does not say lines were suppressed:\n%.2000s", r.stderr)
	}
}

// TestRunSummarySuppressedLogLines runs the flood module as an interceptor
// in kpipe run (on the embedded broker): the summary must count the log
// lines its rate limit suppressed, under the plugin's name, and a run whose
// plugins suppressed nothing must not have that section.
func TestRunSummarySuppressedLogLines(t *testing.T) {
	mod := plugintest.WAT(t, "wasmhost/testdata/flood.wasm")
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "flood.hcl"), fmt.Sprintf(`pipeline "p" {
  topic = "t"
  interceptor "flood" {
    module  = %q
    timeout = "0s"
  }
}
`, mod))
	r := kpipe(t, dir, `{"value":"x"}`+"\n", "run", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("want exit 0, got exit %d:\n%.2000s", r.code, lastLines(r.stderr, 30))
	}
	const section = "plugin log lines suppressed by the log rate limit:"
	_, after, ok := strings.Cut(r.stderr, section)
	if !ok {
		t.Fatalf("the summary does not count suppressed log lines:\n%s", lastLines(r.stderr, 30))
	}
	var name string
	var n int
	if _, err := fmt.Sscan(after, &name, &n); err != nil || name != "flood" {
		t.Fatalf("suppressed log lines section %q: %v", lastLines(after, 3), err)
	}
	// 1600 Ki lines written; at most a few thousand get through.
	if n < 1600*1024-10000 || n > 1600*1024 {
		t.Errorf("flood: %d log lines suppressed, want nearly all of %d", n, 1600*1024)
	}

	r = kpipe(t, dir, `{"value":"x"}`+"\n", "run", "--topic", "t")
	if r.code != 0 {
		t.Fatalf("plain run: exit %d:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, section) {
		t.Errorf("a run with nothing suppressed shows the section:\n%s", r.stderr)
	}
}
