package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// --wasm-cache decides where compiled plugins are kept: a directory fills
// with compiled code, "off" writes nothing.
func TestWASMCacheFlag(t *testing.T) {
	module := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	config := filepath.Join(t.TempDir(), "p.hcl")
	src := "pipeline \"p\" {\n  topic = \"t\"\n  interceptor \"noop\" { module = \"" + module + "\" }\n}\n"
	if err := os.WriteFile(config, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	files := func(dir string) int {
		n := 0
		_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	validate := func(t *testing.T, cache string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := Main(context.Background(), []string{"validate", "--wasm-cache", cache, "--config", config},
			strings.NewReader(""), &out, &errOut)
		if code != ExitOK {
			t.Fatalf("validate exited %d: %s%s", code, out.String(), errOut.String())
		}
	}

	dir := t.TempDir()
	validate(t, dir)
	if files(dir) == 0 {
		t.Errorf("--wasm-cache %s: no compiled module was written there", dir)
	}

	home, cwd := t.TempDir(), t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home) // where the default cache would go
	t.Setenv("HOME", home)
	t.Chdir(cwd) // where a directory named "off" would go
	validate(t, "off")
	if n := files(home) + files(cwd); n != 0 {
		t.Errorf("--wasm-cache off: %d files written", n)
	}
}
