package main

import (
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
	r := kpipe(t, "", `{"value":"x"}`+"\n", "plugin", "test", mod, "--timeout", "0", "--input", "-")
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
