package plugintest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestDeclaresModule(t *testing.T) {
	tests := []struct {
		name  string
		gomod string
		want  bool
	}{
		{"plain", "module github.com/kpipe/kpipe\n\ngo 1.26\n", true},
		{"quoted", "module \"github.com/kpipe/kpipe\"\n", true},
		{"nested module", "module github.com/kpipe/kpipe/sdk/go\n", false},
		{"require only", "require github.com/kpipe/kpipe v0.0.0\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := declaresModule([]byte(tt.gomod), modulePath); got != tt.want {
				t.Errorf("declaresModule(%q) = %v, want %v", tt.gomod, got, tt.want)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !declaresModule(data, modulePath) {
		t.Fatalf("RepoRoot() = %s, whose go.mod does not declare %s", root, modulePath)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "plugintest", "plugintest.go")); err != nil {
		t.Fatalf("RepoRoot() = %s does not contain this package: %v", root, err)
	}
}

func TestWAT(t *testing.T) {
	// Every spelling of the path names the same committed .wasm file.
	want := WAT(t, "wasmhost/testdata/trap.wat")
	for _, p := range []string{"wasmhost/testdata/trap", "wasmhost/testdata/trap.wasm"} {
		if got := WAT(t, p); got != want {
			t.Errorf("WAT(%q) = %s, want %s", p, got, want)
		}
	}
}

func TestGoPlugin(t *testing.T) {
	p := GoPlugin(t, "internal/plugintest/testdata/tiny")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x00asm")) {
		t.Fatalf("%s is not a WebAssembly module", p)
	}
	// A second call reuses the first build.
	if again := GoPlugin(t, "internal/plugintest/testdata/tiny"); again != p {
		t.Fatalf("second GoPlugin = %s, want %s", again, p)
	}
}
