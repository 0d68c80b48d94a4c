package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunProfiles runs a plugin pipeline with --cpuprofile, --memprofile and
// --plugin-times: both files are gzip-compressed pprof profiles and the
// summary has a time line per plugin hook.
func TestRunProfiles(t *testing.T) {
	dir := t.TempDir()
	noop, err := filepath.Abs("../../examples/plugins/wat/noop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "p.hcl"), `pipeline "p" {
  topic = "t"
  interceptor "noop" { module = "`+noop+`" }
}
`)
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	input := strings.Repeat(`{"key":"k","value":"v"}`+"\n", 1000)
	r := kpipe(t, "", input, "run", "--config", cfg, "--cpuprofile", cpu, "--memprofile", mem, "--plugin-times")
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"plugin time (sampled, one call in 64):", "noop", "on_send", "per record,", "in all"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}
	for _, f := range []string{cpu, mem} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s is not a gzip-compressed profile (%d bytes)", filepath.Base(f), len(b))
		}
	}

	r = kpipe(t, "", input, "run", "--topic", "t", "--cpuprofile", filepath.Join(dir, "missing", "cpu.pprof"))
	if r.code != 3 || !strings.Contains(r.stderr, "--cpuprofile:") {
		t.Errorf("want exit 3 naming --cpuprofile for a file that cannot be created; got %s", r)
	}
}
