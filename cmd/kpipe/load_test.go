package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// hangingModules are test modules that never finish one phase of loading,
// with the phase kpipe's error must name.
var hangingModules = []struct{ module, phase string }{
	{"loop_start", "start function"},
	{"loop_initialize", "_initialize"},
	{"loop_init", "kpipe_init"},
}

// hangConfig writes a configuration whose one interceptor is module, with
// the load timeout given, and returns its path.
func hangConfig(t *testing.T, module, loadTimeout string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hang.hcl")
	src := fmt.Sprintf(`pipeline "p" {
  topic = "t"
  interceptor "hang" {
    module       = %q
    load_timeout = %q
  }
}
`, module, loadTimeout)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHangingLoadEnds runs run, validate and plugin inspect on modules that
// loop forever in their start function, _initialize or kpipe_init, with a
// load timeout of 500ms: each command must end within a few seconds with
// exit 1 and an error naming the plugin (or module file), the phase and the
// limit.
func TestHangingLoadEnds(t *testing.T) {
	const bound = 8 * time.Second // 500ms, the process start and a busy machine
	for _, hm := range hangingModules {
		mod := plugintest.WAT(t, "wasmhost/testdata/"+hm.module+".wasm")
		cfg := hangConfig(t, mod, "500ms")
		for _, c := range []struct {
			name  string
			args  []string
			out   func(result) string
			wants []string
		}{
			{"run", []string{"run", "--config", cfg}, func(r result) string { return r.stderr },
				[]string{`"hang"`, mod, hm.phase + ":", "limit of 500ms"}},
			{"validate", []string{"validate", "--config", cfg}, func(r result) string { return r.stderr },
				[]string{cfg + ":4:", `"hang"`, mod, hm.phase + ":", "limit of 500ms"}},
			{"inspect", []string{"plugin", "inspect", mod, "--load-timeout", "500ms"}, func(r result) string { return r.stdout },
				[]string{"load:     FAILED", "inspect module from " + mod, hm.phase + ":", "limit of 500ms"}},
		} {
			t.Run(hm.module+"/"+c.name, func(t *testing.T) {
				start := time.Now()
				r := kpipe(t, "", "", c.args...)
				elapsed := time.Since(start)
				if r.code != 1 {
					t.Errorf("exit %d, want 1: %s", r.code, r)
				}
				for _, want := range c.wants {
					if !strings.Contains(c.out(r), want) {
						t.Errorf("output does not contain %q: %s", want, r)
					}
				}
				if strings.Contains(r.stdout+r.stderr, `load plugin "inspect"`) {
					t.Errorf("the error calls the module \"inspect\": %s", r)
				}
				if elapsed > bound {
					t.Errorf("%s took %v, want at most %v", c.name, elapsed, bound)
				}
				t.Logf("%s on %s ended after %v", c.name, hm.module, elapsed.Round(time.Millisecond))
			})
		}
	}
}

// TestInterruptHangingLoad sends SIGINT (and once SIGTERM) to run, validate
// and plugin inspect while they load a module that never finishes loading,
// with a load timeout of an hour: each must exit 130 within a few seconds.
func TestInterruptHangingLoad(t *testing.T) {
	const bound = 5 * time.Second
	for _, hm := range hangingModules {
		mod := plugintest.WAT(t, "wasmhost/testdata/"+hm.module+".wasm")
		cfg := hangConfig(t, mod, "1h")
		for _, c := range []struct {
			name string
			args []string
			sig  syscall.Signal
		}{
			{"run", []string{"run", "--config", cfg}, syscall.SIGINT},
			{"validate", []string{"validate", "--config", cfg}, syscall.SIGINT},
			{"inspect", []string{"plugin", "inspect", mod, "--load-timeout", "1h"}, syscall.SIGINT},
			{"inspect SIGTERM", []string{"plugin", "inspect", mod, "--load-timeout", "1h"}, syscall.SIGTERM},
		} {
			t.Run(hm.module+"/"+c.name, func(t *testing.T) {
				cmd := exec.Command(kpipeBin, c.args...)
				var stdout, stderr syncBuffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				// Let it reach the endless phase (compilation included).
				select {
				case err := <-done:
					t.Fatalf("kpipe ended before the signal: %v\n%s%s", err, stdout.String(), stderr.String())
				case <-time.After(1500 * time.Millisecond):
				}
				interrupted(t, cmd, done, c.sig, bound, &stderr)
			})
		}
	}
}
