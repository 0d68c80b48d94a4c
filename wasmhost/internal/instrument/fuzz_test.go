package instrument_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kpipe/kpipe/wasmhost/internal/instrument"
)

// FuzzRewrite checks that no input panics the rewriter, that every failure
// is an *UnsupportedError, and that a rewritten module is refused a second
// time (its export is taken) instead of being instrumented twice.
func FuzzRewrite(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.wasm")
	more, _ := filepath.Glob("../../testdata/*.wasm")
	for _, p := range append(seeds, more...) {
		f.Add(readFile(f, p))
	}
	f.Add(tagModule)
	// A code section claiming 2^32-1 bodies once made the rewriter size a
	// buffer from the count.
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0a\x06\xff\xff\xff\xff\x0f\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		orig := bytes.Clone(wasm)
		out, err := instrument.Rewrite(wasm, names)
		if !bytes.Equal(wasm, orig) {
			t.Fatal("Rewrite modified its input")
		}
		if err != nil {
			var ue *instrument.UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T) is not an *UnsupportedError", err, err)
			}
			return
		}
		if _, err := instrument.Rewrite(out, names); err == nil {
			t.Fatal("a rewritten module was rewritten again")
		}
	})
}
