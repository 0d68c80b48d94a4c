// Package testenv holds the rules tests follow when they need something from
// outside Go: a tool on PATH, or a real broker.
//
// A test that needs a missing tool is skipped with a message naming the tool,
// except when the environment variable CI is "true": then it fails, so that a
// CI run can never pass by skipping what it was meant to check.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of the named executable. If it is not on PATH
// the test is skipped, or failed under CI.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(tb, "tool %q is not installed (%v)", name, err)
	}
	return path
}

// Unavailable skips the test with the given reason, or fails it under CI.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true, refusing to skip: "+format, args...)
	}
	tb.Skipf(format, args...)
}
