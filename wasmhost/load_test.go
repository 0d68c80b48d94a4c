package wasmhost_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func TestLoadErrors(t *testing.T) {
	h := newHost(t)
	tests := []struct {
		name  string
		wasm  []byte
		kind  plugins.Kind
		opts  []wasmhost.PluginOption
		wants []string // substrings of the error
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), 0, nil,
			[]string{"not a WebAssembly module"}},
		{"truncated wasm", wat(t, "noop")[:20], 0, nil,
			[]string{"compile:"}},
		{"bad ABI version", wat(t, "bad_abi"), 0, nil,
			[]string{"no supported ABI version", "declares v99", "supports v1", "kpipe_abi_v1"}},
		{"missing hook export", wat(t, "missing_export"), plugins.KindSerializer, nil,
			[]string{"missing export kpipe_serialize (i32, i32) -> i64", "required by the serializer kind"}},
		{"mistyped export", wat(t, "mistyped_export"), plugins.KindInterceptor, nil,
			[]string{"export kpipe_on_send has type (i32) -> i32, want (i32) -> i64"}},
		{"unknown import", wat(t, "unknown_import"), 0, nil,
			[]string{"unknown import kpipe.open_socket", "config_get"}},
		{"imported global and table", wat(t, "import_global"), 0, nil,
			[]string{"2 problems: ", "imports global env.base: a plugin may import only functions, from kpipe and wasi_snapshot_preview1",
				"imports table env.table: a plugin may import only functions"}},
		{"unknown kind bits", wat(t, "bad_kinds"), 0, nil,
			[]string{"kpipe_kinds returned 0x41", "unknown kind bits 0x40"}},
		{"WASI command", wat(t, "command"), 0, nil,
			[]string{"exports _start but not _initialize", "WASI command", "reactor, which kpipe needs", "-buildmode=c-shared"}},
		{"component", []byte("\x00asm\x0d\x00\x01\x00\x00\x00"), 0, nil,
			[]string{"a WebAssembly component (Component Model), not a core module", "kpipe runs core WebAssembly modules", "wasm32-wasip1"}},
		{"unknown binary version", []byte("\x00asm\x02\x00\x00\x00"), 0, nil,
			[]string{"unknown WebAssembly binary version 02000000"}},
		{"several problems at once", wat(t, "many_problems"), 0, nil,
			[]string{"4 problems: ", "exports _start but not _initialize", "missing export kpipe_buffer (i32) -> i32",
				"export kpipe_on_send has type (i32) -> i32, want (i32) -> i64", "unknown import kpipe.open_socket"}},
		{"every missing hook", wat(t, "missing_hooks"), 0, nil,
			[]string{"3 problems: ", "missing export kpipe_on_send (i32) -> i64, required by the interceptor kind",
				"missing export kpipe_serialize (i32, i32) -> i64, required by the serializer kind",
				"missing export kpipe_partition (i32, i32) -> i64, required by the partitioner kind"}},
		{"trapping _initialize", wat(t, "trap_init"), 0, nil,
			[]string{"_initialize: trap", "unreachable"}},
		{"kpipe_init error", wat(t, "init_error"), 0, nil,
			[]string{"kpipe_init failed: no config"}},
		{"wrong kind", wat(t, "trap"), plugins.KindSerializer, nil,
			[]string{"wrong kind: loaded as serializer, but the module declares interceptor"}},
		{"unknown kind", wat(t, "noop"), 0x40, nil,
			[]string{"unknown plugin kind 0x40"}},
		{"memory above limit", wat(t, "noop"), 0, []wasmhost.PluginOption{wasmhost.WithMemoryLimitPages(1)},
			[]string{"memory needs at least 2 pages, above the plugin's limit of 1 pages"}},
		{"tables above limit", wat(t, "table_huge"), 0, nil,
			[]string{"tables: its tables need at least 100000000 elements, above the limit of 1048576"}},
		// A module of 30 bytes that declares 2^28 - 1 locals in one run:
		// wazero allocated gigabytes for it and its compiler panicked,
		// crashing the process.
		{"too many locals", []byte("\x00asm\x01\x00\x00\x00" +
			"\x01\x04\x01\x60\x00\x00" + // type 0: () -> ()
			"\x03\x02\x01\x00" + // function 0 of type 0
			"\x0a\x09\x01\x07\x01\xff\xff\xff\x7f\x7e\x0b"), // its body: 2^28 - 1 i64 locals, end
			0, nil, []string{"compile: refused before compiling: at offset 0x16: function 0 (body 0): locals 268435455, above the limit of 50000"}},
		// A function of 200,000 nested blocks, 600 KB: wazero took
		// minutes to compile it, on a goroutine that went on after the
		// load timed out.
		{"nesting too deep", nestedBlocks(200000),
			0, nil, []string{"compile: refused before compiling: at offset 0x", "function 0 (body 0): nesting depth 10001, above the limit of 10000"}},
		// A type of 100,000 parameters: 9 s of compilation.
		{"too many parameters", append([]byte("\x00asm\x01\x00\x00\x00\x01\xa6\x8d\x06\x01\x60\xa0\x8d\x06"),
			append(bytes.Repeat([]byte{0x7f}, 100000), 0)...),
			0, nil, []string{"compile: refused before compiling: at offset 0xd: type 0: parameters 100000, above the limit of 1000"}},
		// 15 bytes that declare 2^32 - 1 globals: wazero's decoder
		// allocated for them all and the Go runtime died out of memory.
		{"vector count above its bytes", []byte("\x00asm\x01\x00\x00\x00\x06\x0a\xff\xff\xff\xff\x0f\x7f\x00\x41\x00\x0b"),
			0, nil, []string{"compile: at offset 0xa: the global section declares 4294967295 entries, but only 5 bytes follow"}},
		// wazero reads a section's entries past its end: this type
		// section's last type declares 265 million results in the bytes
		// after it, for which wazero asked for 2 GiB (FuzzLoad).
		{"count past a short section", []byte("\x00asm\x01\x00\x00\x00\x01\x12\x04`\x00\x00`\x00\x01\x7f`\x01\x7f\x01\x7f`\x01~\xfe\xd3\xd3~\x03\x05\x04\x00\x01\x02\x03\x05\x03\x01\x00"),
			0, nil, []string{"compile: at offset 0x1a: the results of a function type declares 265611774 entries, but only 11 bytes follow"}},
		// 15 bytes that declare an export name of 4 GiB - 16, which
		// wazero allocated before reading it.
		{"name longer than the module", []byte("\x00asm\x01\x00\x00\x00\x07\x07\x01\xf0\xff\xff\xff\x0f"),
			0, nil, []string{"compile: at offset 0xb: the name of an export declares 4294967280 bytes, but only 0 bytes follow"}},
		{"bad options", wat(t, "noop"), 0, []wasmhost.PluginOption{wasmhost.WithPoolSize(0), wasmhost.WithCallTimeout(-1),
			wasmhost.WithMemoryLimitPages(40000), wasmhost.WithMaxOutputBytes(0)},
			[]string{"pool size 0", "call timeout -1ns", "40000 pages", "output limit of 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := h.Load(context.Background(), "broken-"+strings.ReplaceAll(tt.name, " ", "-"), tt.wasm, tt.kind, tt.opts...)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, `load plugin "broken-`) {
				t.Errorf("error %q does not name the plugin", msg)
			}
			for _, w := range tt.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// nestedBlocks returns a module of one function () -> () whose body nests
// n empty blocks.
func nestedBlocks(n int) []byte {
	body := append([]byte{0}, bytes.Repeat([]byte{0x02, 0x40}, n)...) // no locals, n x block
	body = append(body, bytes.Repeat([]byte{0x0b}, n+1)...)           // their ends and the body's
	code := binary.AppendUvarint([]byte{1}, uint64(len(body)))
	code = append(code, body...)
	m := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type 0: () -> ()
		"\x03\x02\x01\x00") // function 0 of type 0
	m = append(binary.AppendUvarint(append(m, 0x0a), uint64(len(code))), code...)
	return m
}

func TestLoadFile(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	_, err := h.LoadFile(ctx, "missing", filepath.Join(t.TempDir(), "nope.wasm"), 0)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("LoadFile of a missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = h.LoadFile(ctx, "bad", bad, 0)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "not a WebAssembly module") {
		t.Errorf("LoadFile of a bad file: error %v does not name the file and the problem", err)
	}
	p, err := h.LoadFile(ctx, "noop", filepath.Join("testdata", "noop.wasm"), plugins.KindInterceptor)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "noop" || p.Kinds() != plugins.KindInterceptor|plugins.KindSerializer|plugins.KindPartitioner {
		t.Errorf("Name() = %q, Kinds() = %v", p.Name(), p.Kinds())
	}
}

func TestInspect(t *testing.T) {
	h := newHost(t)
	info, err := h.Inspect(context.Background(), wat(t, "hostcalls"))
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIVersion != 1 || len(info.Markers) != 1 || info.Kinds != plugins.KindInterceptor {
		t.Errorf("info = %+v", info)
	}
	if info.MemoryMinPages != 2 || info.MemoryMaxPages != 0 {
		t.Errorf("memory = %d..%d pages, want 2..none", info.MemoryMinPages, info.MemoryMaxPages)
	}
	wantImport := wasmhost.Func{Module: "kpipe", Name: "log", Signature: "(i32, i32, i32) -> ()"}
	found := false
	for _, f := range info.Imports {
		found = found || f == wantImport
	}
	if !found || len(info.Imports) != 5 {
		t.Errorf("imports = %+v, want 5 including %+v", info.Imports, wantImport)
	}
	var names []string
	for _, f := range info.Exports {
		names = append(names, f.Name+" "+f.Signature)
	}
	want := "kpipe_abi_v1 () -> (),kpipe_buffer (i32) -> i32,kpipe_kinds () -> i32,kpipe_on_ack (i32) -> i64,kpipe_on_send (i32) -> i64"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("exports = %s\nwant      %s", got, want)
	}

	// An invalid module: the error, which names the file (InspectFile)
	// and never calls the module "inspect", and what could be read.
	path := plugintest.WAT(t, "wasmhost/testdata/bad_abi.wat")
	info, err = h.InspectFile(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "wasmhost: inspect module from "+path+": no supported ABI version") ||
		strings.Contains(err.Error(), `"inspect"`) {
		t.Errorf("InspectFile(bad_abi) error = %v, want one naming the file", err)
	}
	info, err = h.Inspect(context.Background(), wat(t, "bad_abi"))
	if err == nil || !strings.HasPrefix(err.Error(), "wasmhost: inspect module: ") {
		t.Errorf("Inspect(bad_abi) error = %v", err)
	}
	if err == nil || info == nil || len(info.Markers) != 1 || info.Markers[0] != 99 || info.ABIVersion != 0 {
		t.Errorf("Inspect(bad_abi) = %+v, %v", info, err)
	}
	info, err = h.Inspect(context.Background(), wat(t, "bad_kinds"))
	if err == nil || info == nil || info.Kinds != 0x41 || info.InitError != nil {
		t.Errorf("Inspect(bad_kinds) = %+v, %v; want kinds 0x41 and an error", info, err)
	}
}

// TestInspectInitFailure checks that Inspect reports the kinds and ABI
// version of a module whose kpipe_init fails (as the Go examples' do
// without their config), with the init error, and that it passes the
// config it is given to kpipe_init.
func TestInspectInitFailure(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		wasm      func(testing.TB) []byte
		opts      []wasmhost.PluginOption
		kinds     plugins.Kind
		initError string // "": kpipe_init succeeds
	}{
		{"wat set_error", func(tb testing.TB) []byte { return wat(tb, "init_error") }, nil,
			plugins.KindInterceptor, "kpipe_init failed: no config"},
		// _initialize traps: no instance can say its kinds.
		{"wat trap", func(tb testing.TB) []byte { return wat(tb, "trap_init") }, nil,
			0, "_initialize: trap"},
		{"go init fails", func(tb testing.TB) []byte { return goGuest(tb, goSDKGuest) },
			[]wasmhost.PluginOption{wasmhost.WithConfig([]byte(`{"fail_init":true}`))},
			plugins.KindInterceptor | plugins.KindSerializer | plugins.KindPartitioner, "fail_init is set"},
		{"go init succeeds", func(tb testing.TB) []byte { return goGuest(tb, goSDKGuest) }, nil,
			plugins.KindInterceptor | plugins.KindSerializer | plugins.KindPartitioner, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := h.Inspect(ctx, tt.wasm(t), tt.opts...)
			if info == nil {
				t.Fatalf("Inspect returned no info: %v", err)
			}
			if info.Kinds != tt.kinds || info.ABIVersion != 1 {
				t.Errorf("kinds %#x, ABI v%d; want %#x, v1", uint32(info.Kinds), info.ABIVersion, uint32(tt.kinds))
			}
			if tt.initError == "" {
				if err != nil || info.InitError != nil {
					t.Errorf("error %v, InitError %v; want none", err, info.InitError)
				}
				return
			}
			if info.InitError == nil || !strings.Contains(info.InitError.Error(), tt.initError) {
				t.Errorf("InitError = %v, want one containing %q", info.InitError, tt.initError)
			}
			if err == nil || !strings.Contains(err.Error(), tt.initError) {
				t.Errorf("error = %v, want one containing %q", err, tt.initError)
			}
		})
	}
}

func TestHostClose(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.WithoutCompilationCache())
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, h, "noop", wat(t, "noop"), 0, wasmhost.WithCallTimeout(0))
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.OnSend(ctx, modeRecord(0)); !errors.Is(err, wasmhost.ErrClosed) {
		t.Errorf("OnSend after Host.Close: %v, want ErrClosed", err)
	}
	if _, err := h.Load(ctx, "late", wat(t, "noop"), 0); !errors.Is(err, wasmhost.ErrClosed) {
		t.Errorf("Load after Host.Close: %v, want ErrClosed", err)
	}
	if err := h.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestTypedViews checks that a module loaded as one kind yields the view of
// that kind and no other.
func TestTypedViews(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.LoadInterceptor(ctx, "keyhash", exampleWAT(t, "keyhash")); err == nil || !strings.Contains(err.Error(), "interceptor") {
		t.Errorf("LoadInterceptor of a partitioner: %v, want an error naming the kind", err)
	}
	part, err := h.LoadPartitioner(ctx, "keyhash", exampleWAT(t, "keyhash"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := part.Partition(ctx, &plugins.Record{Key: []byte("k")}, 3); err != nil || got != plugins.KeyPartition([]byte("k"), 3) {
		t.Errorf("Partition = %d, %v", got, err)
	}
	if p := part.Plugin(); p.Interceptor() != nil || p.Serializer() != nil || p.Partitioner() == nil {
		t.Errorf("views of a partitioner: interceptor %v, serializer %v, partitioner %v", p.Interceptor(), p.Serializer(), p.Partitioner())
	}
	ic, err := h.LoadInterceptor(ctx, "noop", exampleWAT(t, "noop"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ic.OnSend(ctx, &plugins.Record{Topic: "t"}); err != nil || v != plugins.Continue {
		t.Errorf("OnSend = %v, %v", v, err)
	}
	if err := ic.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestLoadPanicContained: a panic on a compilation's goroutine, where the
// module is read and rewritten before wazero compiles it, is the load's
// error naming the plugin, not the end of the process; the next load works.
func TestLoadPanicContained(t *testing.T) {
	h := newHost(t)
	restore := wasmhost.SetBeforeCompile(func() { panic("reader bug") })
	_, err := h.Load(context.Background(), "boom", wat(t, "noop"), plugins.KindInterceptor)
	restore()
	if err == nil || !strings.Contains(err.Error(), `"boom"`) || !strings.Contains(err.Error(), "reader bug") {
		t.Fatalf("Load with a panicking reader: %v; want an error naming the plugin and the panic", err)
	}
	load(t, h, "after", wat(t, "noop"), plugins.KindInterceptor)
}
