package instrument_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/wasmhost/internal/instrument"
)

const (
	exportName = "kpipe.interrupt"
	startName  = "kpipe.start"
	stackName  = "kpipe.stack"
)

var names = instrument.Names{Interrupt: exportName, Start: startName, Stack: stackName}

// features are the WebAssembly features the tests compile with: wazero's
// default (2.0) plus the experimental ones the rewriter also decodes.
const features = api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall |
	experimental.CoreFeaturesThreads | experimental.CoreFeaturesExceptionHandling

func newRuntime(t testing.TB) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(features))
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

func rewrite(t testing.TB, wasm []byte) []byte {
	t.Helper()
	out, err := instrument.Rewrite(wasm, names)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return out
}

// instantiate compiles and instantiates wasm in rt, which must not already
// hold a module of the same name.
func instantiate(t testing.TB, rt wazero.Runtime, wasm []byte, name string) api.Module {
	t.Helper()
	ctx := context.Background()
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(name).WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate %s: %v", name, err)
	}
	return mod
}

func interruptGlobal(t testing.TB, mod api.Module) api.MutableGlobal {
	t.Helper()
	g, ok := mod.ExportedGlobal(exportName).(api.MutableGlobal)
	if !ok {
		t.Fatalf("the rewritten module does not export a mutable global %q", exportName)
	}
	if g.Type() != api.ValueTypeI32 || g.Get() != 0 {
		t.Fatalf("interrupt global: type %v, value %d; want i32 0", g.Type(), g.Get())
	}
	return g
}

// tagModule has a tag section, try_table and throw, and no global section:
// the new global section must go after the tags. wat2wasm 1.0.32 cannot
// write try_table, hence the bytes. Its run returns 42.
var tagModule = []byte{
	0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
	0x01, 0x09, 0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x01, 0x7e, // types: [i32]->[], []->[i64]
	0x03, 0x03, 0x02, 0x00, 0x01, // functions
	0x05, 0x03, 0x01, 0x00, 0x00, // memory 0
	0x0d, 0x03, 0x01, 0x00, 0x00, // tag section: one tag of type 0
	0x07, 0x07, 0x01, 0x03, 'r', 'u', 'n', 0x00, 0x01, // export run
	0x0a, 0x1c, 0x02, // code: two bodies
	0x06, 0x00, 0x20, 0x00, 0x08, 0x00, 0x0b, // local.get 0, throw 0
	0x13, 0x00, // run
	0x02, 0x7f, // block (result i32)
	0x1f, 0x40, 0x01, 0x00, 0x00, 0x00, // try_table (catch 0 0): label 0 is the block
	0x41, 0x2a, 0x10, 0x00, // i32.const 42, call 0
	0x0b,       // end
	0x41, 0x00, // i32.const 0
	0x0b,       // end
	0xad, 0x0b, // i64.extend_i32_u, end
}

// TestSameResults runs the test modules before and after the rewrite.
func TestSameResults(t *testing.T) {
	for _, tt := range []struct {
		name string
		wasm []byte
		want uint64
	}{
		{"features", readFile(t, "testdata/features.wasm"), 0},
		{"tailcall", readFile(t, "testdata/tailcall.wasm"), 500500},
		{"atomics", readFile(t, "testdata/atomics.wasm"), 35},
		{"tag", tagModule, 42},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRuntime(t)
			orig := instantiate(t, rt, tt.wasm, "orig")
			inst := instantiate(t, rt, rewrite(t, tt.wasm), "rewritten")
			interruptGlobal(t, inst)
			ctx := context.Background()
			for i := range 2 { // twice: run changes state
				want, err := orig.ExportedFunction("run").Call(ctx)
				if err != nil {
					t.Fatalf("original run: %v", err)
				}
				got, err := inst.ExportedFunction("run").Call(ctx)
				if err != nil {
					t.Fatalf("rewritten run: %v", err)
				}
				if got[0] != want[0] {
					t.Errorf("call %d: rewritten run = %d, original %d", i, got[0], want[0])
				}
				if fn := orig.ExportedFunction("drops"); fn != nil && i == 0 {
					if _, err := fn.Call(ctx); err != nil {
						t.Fatal(err)
					}
					if _, err := inst.ExportedFunction("drops").Call(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if i == 0 && tt.want != 0 && want[0] != tt.want {
					t.Errorf("call %d: run = %d, want %d", i, want[0], tt.want)
				}
			}
		})
	}
}

// TestInterrupt checks that setting the global stops a call at a loop
// header and at a function entry, that clearing it lets calls run again,
// and that a spinning guest does not block the garbage collector.
func TestInterrupt(t *testing.T) {
	rt := newRuntime(t)
	mod := instantiate(t, rt, rewrite(t, readFile(t, "testdata/features.wasm")), "m")
	g := interruptGlobal(t, mod)
	ctx := context.Background()
	wantTrap := func(name string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("%s: %v, want an unreachable trap", name, err)
		}
	}

	g.Set(1)
	_, err := mod.ExportedFunction("spin").Call(ctx)
	wantTrap("spin with the flag set", err)
	_, err = mod.ExportedFunction("fib").Call(ctx, 40) // about 10^9 calls, no loop
	wantTrap("fib with the flag set", err)
	_, err = mod.ExportedFunction("deep").Call(ctx) // stopped before the stack overflows
	wantTrap("deep with the flag set", err)
	g.Set(0)
	if _, err := mod.ExportedFunction("run").Call(ctx); err != nil {
		t.Fatalf("run after clearing the flag: %v", err)
	}
	if r, err := mod.ExportedFunction("fib").Call(ctx, 20); err != nil || r[0] != 6765 {
		t.Fatalf("fib(20) = %v, %v; want 6765", r, err)
	}

	// An endless loop, interrupted while it runs. A garbage collection
	// (which stops the world) must complete meanwhile.
	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction("spin").Call(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	gcDone := make(chan struct{})
	go func() {
		runtime.GC()
		close(gcDone)
	}()
	select {
	case <-gcDone:
	case <-time.After(10 * time.Second):
		t.Fatal("a spinning guest blocks the garbage collector")
	}
	g.Set(1)
	select {
	case err := <-done:
		wantTrap("spin", err)
	case <-time.After(10 * time.Second):
		t.Fatal("spin was not interrupted")
	}
}

// TestRepoModules rewrites every WebAssembly module of the repository
// (test modules, examples, Go guests) and checks that wazero compiles the
// result, that the exports are kept, and that the interrupt global is
// there.
func TestRepoModules(t *testing.T) {
	root := plugintest.RepoRoot(t)
	var paths []string
	for _, pattern := range []string{"wasmhost/testdata/*.wat", "examples/plugins/wat/*.wat"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			if filepath.Base(p) == "reserved_export.wat" {
				continue // exports the reserved name on purpose: refused
			}
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, plugintest.WAT(t, rel))
		}
	}
	m, _ := filepath.Glob("testdata/*.wasm")
	paths = append(paths, m...)
	if len(paths) < 10 {
		t.Fatalf("found only %d modules: %v", len(paths), paths)
	}
	if !testing.Short() {
		for _, dir := range []string{"wasmhost/testdata/goguests/sdkguest", "examples/plugins/redact"} {
			paths = append(paths, plugintest.GoPlugin(t, dir))
		}
	}
	ctx := context.Background()
	rt := newRuntime(t)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			wasm := readFile(t, p)
			out := rewrite(t, wasm)
			orig, err := rt.CompileModule(ctx, wasm)
			if err != nil {
				t.Fatalf("compile original: %v", err)
			}
			defer orig.Close(ctx)
			cm, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("compile rewritten: %v", err)
			}
			defer cm.Close(ctx)
			for name, def := range orig.ExportedFunctions() {
				got, ok := cm.ExportedFunctions()[name]
				if !ok || got.Index() != def.Index() {
					t.Errorf("export %s lost or renumbered", name)
				}
			}
			// A start function is exported under startName.
			extra := 0
			if _, ok := cm.ExportedFunctions()[startName]; ok {
				extra = 1
			}
			if len(cm.ExportedFunctions()) != len(orig.ExportedFunctions())+extra {
				t.Errorf("rewritten module has %d function exports, original %d (+%d start)", len(cm.ExportedFunctions()), len(orig.ExportedFunctions()), extra)
			}
			// Rewriting twice is refused: the name is taken.
			var ue *instrument.UnsupportedError
			if _, err := instrument.Rewrite(out, names); !errors.As(err, &ue) || !strings.Contains(err.Error(), "already exports") {
				t.Errorf("second rewrite: %v, want an *UnsupportedError about the export", err)
			}
		})
	}
}

// TestDebugSectionsStripped checks that .debug_* custom sections are
// dropped and other custom sections kept.
func TestDebugSectionsStripped(t *testing.T) {
	wasm := readFile(t, "testdata/tailcall.wasm")
	wasm = appendCustom(wasm, ".debug_info", "stale offsets")
	wasm = appendCustom(wasm, "producers", "kept")
	out := rewrite(t, wasm)
	if bytes.Contains(out, []byte(".debug_info")) || bytes.Contains(out, []byte("stale offsets")) {
		t.Error("the .debug_info section is still there")
	}
	if !bytes.Contains(out, []byte("producers")) || !bytes.Contains(out, []byte("kept")) {
		t.Error("the producers section was dropped")
	}
	if _, err := newRuntime(t).CompileModule(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

func appendCustom(wasm []byte, name, content string) []byte {
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, content...)
	return append(append(wasm, 0x00, byte(len(body))), body...)
}

// TestRefused checks modules the rewriter must refuse rather than guess.
func TestRefused(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	module := func(sections ...byte) []byte { return append(append([]byte{}, header...), sections...) }
	// one function of type () -> () whose body is body
	withBody := func(body ...byte) []byte {
		code := append([]byte{0x01, byte(len(body) + 1), 0x00}, body...)
		return module(append([]byte{0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x05, 0x03, 0x01, 0x00, 0x00, 0x0a, byte(len(code))}, code...)...)
	}
	for _, tt := range []struct {
		name, want string
		wasm       []byte
	}{
		{"not wasm", "not a WebAssembly module", []byte("hello world")},
		{"component", "version", []byte("\x00asm\x0d\x00\x01\x00")},
		{"truncated section", "runs past the end", module(0x01, 0x10, 0x00)},
		{"unknown section", "unknown section id 14", module(0x0e, 0x00)},
		{"sections out of order", "out of order", module(0x03, 0x01, 0x00, 0x01, 0x01, 0x00)},
		{"no memory", "no memory", module(0x01, 0x04, 0x01, 0x60, 0x00, 0x00)},
		{"reserved export", "already exports", module(0x05, 0x03, 0x01, 0x00, 0x00, 0x07, 0x13, 0x01, 0x0f, 'k', 'p', 'i', 'p', 'e', '.', 'i', 'n', 't', 'e', 'r', 'r', 'u', 'p', 't', 0x00, 0x00)},
		{"memory64", "unsupported limits flags 0x4", module(0x02, 0x08, 0x01, 0x01, 'm', 0x01, 'm', 0x02, 0x04, 0x01)},
		{"unknown opcode", "unsupported opcode 0xd7", withBody(0xd7, 0x0b)},
		{"legacy try", "unsupported opcode 0x6", withBody(0x06, 0x40, 0x0b, 0x0b)},
		{"unknown 0xfc", "unsupported opcode 0xfc 18", withBody(0xfc, 0x12, 0x0b)},
		{"unknown 0xfe", "unsupported opcode 0xfe 4", withBody(0xfe, 0x04, 0x0b)},
		{"typed local", "unsupported value type 0x63", module(0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
			0x05, 0x03, 0x01, 0x00, 0x00, 0x0a, 0x07, 0x01, 0x05, 0x01, 0x01, 0x63, 0x70, 0x0b)},
		{"negative block type", "negative s33", withBody(0x02, 0x7f|0x80, 0x7f, 0x0b, 0x0b)},
		{"body without end", "unexpected end", withBody(0x01)},
		{"bytes after end", "after the end", withBody(0x0b, 0x01)},
		{"overlong LEB", "LEB128", withBody(0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := instrument.Rewrite(tt.wasm, names)
			var ue *instrument.UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Rewrite = %v, want an *UnsupportedError containing %q", err, tt.want)
			}
		})
	}
}

// TestMinimalModule checks modules without global or export sections.
func TestMinimalModule(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	wasm = append(wasm, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x05, 0x03, 0x01, 0x00, 0x00,
		0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b)
	for _, w := range [][]byte{append(wasm[:8:8], 0x05, 0x03, 0x01, 0x00, 0x00), wasm} {
		mod := instantiate(t, newRuntime(t), rewrite(t, w), "m")
		interruptGlobal(t, mod)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStartFunctionExported checks that a start function no longer runs
// at instantiation but is exported as startName, that calling it runs it,
// that an endless start function stops once the interrupt global is set,
// and that a module exporting startName itself is refused.
func TestStartFunctionExported(t *testing.T) {
	// types: () -> (); func 0: the start function, which stores 7 at
	// address 0, or loops forever if address 4 is not 0; start 0; memory
	// 1 page, exported as "memory"; data at 4: the loop switch.
	build := func(loop byte) []byte {
		wasm := []byte("\x00asm\x01\x00\x00\x00")
		wasm = append(wasm, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00) // type
		wasm = append(wasm, 0x03, 0x02, 0x01, 0x00)             // function
		wasm = append(wasm, 0x05, 0x03, 0x01, 0x00, 0x01)       // memory
		wasm = append(wasm, 0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00)
		wasm = append(wasm, 0x08, 0x01, 0x00) // start 0
		body := []byte{0x00,
			0x03, 0x40, // loop
			0x41, 0x04, 0x28, 0x02, 0x00, 0x0d, 0x00, // i32.const 4, i32.load, br_if 0
			0x0b,                                     // end
			0x41, 0x00, 0x41, 0x07, 0x36, 0x02, 0x00, // i32.store [0] = 7
			0x0b}
		wasm = append(wasm, 0x0a, byte(len(body)+2), 0x01, byte(len(body)))
		wasm = append(wasm, body...)
		return append(wasm, 0x0b, 0x07, 0x01, 0x00, 0x41, 0x04, 0x0b, 0x01, loop) // data at 4
	}
	ctx := context.Background()
	rt := newRuntime(t)
	mod := instantiate(t, rt, rewrite(t, build(0)), "once")
	if v, _ := mod.Memory().ReadUint32Le(0); v != 0 {
		t.Fatalf("the start function ran at instantiation (memory[0] = %d)", v)
	}
	start := mod.ExportedFunction(startName)
	if start == nil {
		t.Fatalf("the rewritten module does not export %q", startName)
	}
	if _, err := start.Call(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := mod.Memory().ReadUint32Le(0); v != 7 {
		t.Fatalf("after calling %s memory[0] = %d, want 7", startName, v)
	}

	mod = instantiate(t, rt, rewrite(t, build(1)), "endless")
	g := interruptGlobal(t, mod)
	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction(startName).Call(ctx)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	g.Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("interrupted start function: %v, want an unreachable trap", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the endless start function did not stop within 10s of the interrupt")
	}

	// A module that exports the start name itself is refused; one
	// without a start function does not get the export.
	plain := rewrite(t, readFile(t, "testdata/tailcall.wasm"))
	cm, err := rt.CompileModule(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close(ctx)
	if _, ok := cm.ExportedFunctions()[startName]; ok {
		t.Errorf("a module without a start function exports %q", startName)
	}
	var ue *instrument.UnsupportedError
	if _, err := instrument.Rewrite(rewrite(t, build(0)), instrument.Names{Interrupt: "other", Start: startName, Stack: "other.stack"}); !errors.As(err, &ue) || !strings.Contains(err.Error(), startName) {
		t.Errorf("rewriting a module that exports %q: %v, want an *UnsupportedError naming it", startName, err)
	}
}
