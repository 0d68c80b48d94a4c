// Package plugintest gives tests the WebAssembly plugins they load: Go guests
// built on demand with the wasip1 port, and hand-written text-format modules
// whose compiled form is committed next to their source.
//
// Every helper reports problems through the testing.TB it is given: a missing
// Go toolchain skips the test (or fails it under CI=true, see
// internal/testenv), a guest that does not compile fails it.
package plugintest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kpipe/kpipe/internal/testenv"
)

// modulePath is the module path that identifies the repository root.
const modulePath = "github.com/kpipe/kpipe"

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// RepoRoot returns the absolute path of the repository root: the nearest
// directory, from the working directory upwards, whose go.mod declares the
// module github.com/kpipe/kpipe. Nested modules (such as test guests) are
// skipped over.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() { root, rootErr = findRoot() })
	if rootErr != nil {
		tb.Fatalf("plugintest: %v", rootErr)
	}
	return root
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && declaresModule(data, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no go.mod for module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod content declares module path.
func declaresModule(gomod []byte, path string) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}

// WAT returns the absolute path of the committed .wasm file compiled from the
// text-format module at path (relative to the repository root, with or
// without the .wat extension; a .wasm path is accepted too). It fails the
// test if the .wasm file is missing: run `wat2wasm X.wat -o X.wasm` and
// commit the result.
func WAT(tb testing.TB, path string) string {
	tb.Helper()
	p := filepath.Join(RepoRoot(tb), filepath.FromSlash(path))
	p = strings.TrimSuffix(strings.TrimSuffix(p, ".wat"), ".wasm") + ".wasm"
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("plugintest: compiled module for %s is missing (run wat2wasm and commit the .wasm): %v", path, err)
	}
	return p
}

// build is the outcome of building one Go guest, shared by every test of the
// process.
type build struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// GoPlugin builds the Go guest whose main package is in dir (relative to the
// repository root; it may live in a nested module) with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
//
// and returns the absolute path of the resulting .wasm file. Each directory
// is built once per test process, whatever the number of callers; the result
// is written to the user cache directory (kpipe/plugintest/), replacing the
// file of an earlier run atomically, so nothing accumulates in temporary
// directories. A build failure fails the test with the compiler's output.
func GoPlugin(tb testing.TB, dir string) string {
	tb.Helper()
	goTool := testenv.RequireTool(tb, "go")
	src := filepath.Join(RepoRoot(tb), filepath.FromSlash(dir))

	buildsMu.Lock()
	b := builds[src]
	if b == nil {
		b = &build{}
		builds[src] = b
	}
	buildsMu.Unlock()

	b.once.Do(func() { b.path, b.err = buildGuest(goTool, src) })
	if b.err != nil {
		tb.Fatalf("plugintest: build Go guest %s: %v", dir, b.err)
	}
	return b.path
}

func buildGuest(goTool, src string) (string, error) {
	if fi, err := os.Stat(src); err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", src)
	}
	outDir, err := outputDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(src))
	name := filepath.Base(src) + "-" + hex.EncodeToString(sum[:6])
	final := filepath.Join(outDir, name+".wasm")

	tmp, err := os.CreateTemp(outDir, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("create output file: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // a no-op once renamed

	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", tmpName, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.Bytes())
	}
	if err := os.Rename(tmpName, final); err != nil {
		return "", fmt.Errorf("install built guest: %w", err)
	}
	return final, nil
}

// outputDir returns the directory built guests are written to.
func outputDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kpipe", "plugintest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create output directory: %w", err)
	}
	return dir, nil
}
