package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/internal/testenv"
)

// slowModule writes a valid interceptor module (ABI v1, doing nothing) with
// funcs filler functions of about 12 KiB of code each, and returns its path.
// Compiling it takes about a second per 4 MiB on an idle core, and wazero's
// compilation cannot be interrupted: the module stands for a large plugin
// (a Go or Rust guest with its dependencies) whose compilation is slow.
func slowModule(t *testing.T, funcs int) string {
	t.Helper()
	uleb := func(b *bytes.Buffer, v uint64) {
		for {
			c := byte(v & 0x7f)
			if v >>= 7; v == 0 {
				b.WriteByte(c)
				return
			}
			b.WriteByte(c | 0x80)
		}
	}
	section := func(out *bytes.Buffer, id byte, body []byte) {
		out.WriteByte(id)
		uleb(out, uint64(len(body)))
		out.Write(body)
	}
	var out bytes.Buffer
	out.Write([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	// Types: () -> (), () -> i32, () -> i64, (i32) -> i32, (i32) -> i64.
	section(&out, 1, []byte{5, 0x60, 0, 0, 0x60, 0, 1, 0x7f, 0x60, 0, 1, 0x7e, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 1, 0x7f, 1, 0x7e})
	exports := []struct {
		name string
		typ  byte
		body []byte
	}{
		{"kpipe_abi_v1", 0, []byte{0, 0x0b}},
		{"kpipe_kinds", 1, []byte{0, 0x41, 1, 0x0b}},           // interceptor
		{"kpipe_init", 2, []byte{0, 0x42, 0, 0x0b}},            // ok
		{"kpipe_buffer", 3, []byte{0, 0x41, 0x80, 0x08, 0x0b}}, // 1024: memory is 2 pages
		{"kpipe_on_send", 4, []byte{0, 0x42, 0, 0x0b}},         // unchanged
	}
	var fn bytes.Buffer
	uleb(&fn, uint64(len(exports)+funcs))
	for _, e := range exports {
		fn.WriteByte(e.typ)
	}
	fn.Write(bytes.Repeat([]byte{3}, funcs))
	section(&out, 3, fn.Bytes())
	section(&out, 5, []byte{1, 0, 2})
	var ex bytes.Buffer
	uleb(&ex, uint64(len(exports)+1))
	ex.Write(append([]byte{6}, "memory\x02\x00"...))
	for i, e := range exports {
		uleb(&ex, uint64(len(e.name)))
		ex.WriteString(e.name)
		ex.Write([]byte{0, byte(i)})
	}
	section(&out, 7, ex.Bytes())
	// A filler: local.get 0, then 2000 times (local.get 0, i32.add,
	// local.get 0, i32.mul).
	var filler bytes.Buffer
	filler.Write([]byte{0, 0x20, 0})
	filler.Write(bytes.Repeat([]byte{0x20, 0, 0x6a, 0x20, 0, 0x6c}, 2000))
	filler.WriteByte(0x0b)
	var code bytes.Buffer
	uleb(&code, uint64(len(exports)+funcs))
	for _, e := range exports {
		uleb(&code, uint64(len(e.body)))
		code.Write(e.body)
	}
	for range funcs {
		uleb(&code, uint64(filler.Len()))
		code.Write(filler.Bytes())
	}
	section(&out, 10, code.Bytes())
	path := filepath.Join(t.TempDir(), "slow.wasm")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInterruptCompile sends SIGINT to commands while they compile a module
// that takes many seconds to compile: the signal must be acknowledged on
// stderr, and kpipe must exit 130 at once, not after the compilation it
// abandoned ends. The compilation cache tells: kpipe writes a compiled
// module there when its compilation finishes, so the cache must be empty.
func TestInterruptCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a 36 MiB module")
	}
	mod := slowModule(t, 3000)
	cfg := hangConfig(t, mod, "1h")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"inspect", []string{"plugin", "inspect", mod, "--load-timeout", "1h"}},
		{"test", []string{"plugin", "test", mod, "--load-timeout", "1h"}},
		{"run", []string{"run", "--config", cfg}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			cmd := exec.Command(kpipeBin, append(c.args, "--wasm-cache", cache)...)
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				testenv.Unavailable(t, "kpipe ended before the signal (the compilation was fast, so the test checks nothing): %v\n%s%s", err, stdout.String(), stderr.String())
			case <-time.After(1500 * time.Millisecond):
			}
			interrupted(t, cmd, done, syscall.SIGINT, 5*time.Second, &stderr)
			if want := "kpipe: interrupt: stopping; press Ctrl-C again to exit at once"; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not acknowledge the signal with %q:\n%s", want, stderr.String())
			}
			var cached []string
			_ = filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					cached = append(cached, path)
				}
				return nil
			})
			if len(cached) > 0 {
				t.Errorf("kpipe waited for the compilation it abandoned: the cache holds %v", cached)
			}
		})
	}
}

// TestPluginTestOpenStdin runs plugin test with a stdin that stays open and
// never brings a line (sleep 30 | kpipe plugin test x.wasm): without
// --input it must not wait for stdin but test the built-in samples; with
// --input - it waits for records, and SIGINT must end it at once, exit 130,
// whether a record came before or not.
func TestPluginTestOpenStdin(t *testing.T) {
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	start := func(t *testing.T, args ...string) (*exec.Cmd, io.WriteCloser, *syncBuffer, *syncBuffer, <-chan error) {
		t.Helper()
		cmd := exec.Command(kpipeBin, args...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close() })
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, stdin, &stdout, &stderr, done
	}

	t.Run("no input", func(t *testing.T) {
		cmd, _, stdout, stderr, done := start(t, "plugin", "test", noop)
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("plugin test without --input waited for stdin to close\n%s%s", stdout.String(), stderr.String())
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(stdout.String(), "record 4") {
			t.Errorf("exit %d, want 0 and the 4 samples tested\n%s%s", code, stdout.String(), stderr.String())
		}
		if want := "stdin is read only with --input -"; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	})

	for _, lines := range []int{0, 1} {
		t.Run(fmt.Sprintf("input - after %d records", lines), func(t *testing.T) {
			cmd, stdin, stdout, stderr, done := start(t, "plugin", "test", noop, "--input", "-")
			if lines > 0 {
				if _, err := io.WriteString(stdin, `{"value":"one"}`+"\n"); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(stdout.String(), "result:") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			} else {
				time.Sleep(time.Second) // loading the module, or waiting for stdin
			}
			interrupted(t, cmd, done, syscall.SIGINT, 5*time.Second, stderr)
			if want := fmt.Sprintf("interrupted after %d records", lines); !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
			}
		})
	}
}
