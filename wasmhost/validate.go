package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
	"github.com/kpipe/kpipe/wasmhost/internal/instrument"
)

// ModuleInfo describes a plugin module, for `kpipe plugin inspect`.
type ModuleInfo struct {
	// ABIVersion is the newest ABI version the module declares that this
	// host supports, or 0 if there is none.
	ABIVersion int
	// Markers lists every ABI version the module declares
	// (kpipe_abi_vN exports), supported or not, in increasing order.
	Markers []int
	// Kinds is what the module's kpipe_kinds returned, or 0 if it could not
	// be called because the module is invalid. If the module fails to
	// initialise (see InitError), Kinds comes from an instance on which
	// only _initialize ran.
	Kinds plugins.Kind
	// InitError is why the module's first instance failed to initialise
	// (instantiation, _initialize, kpipe_init, kpipe_buffer), typically a
	// kpipe_init that wants a config Inspect was not given; nil if it
	// initialised, or if Inspect did not get that far. Inspect returns
	// this error too.
	InitError error
	// Features are the feature bits (ABI section 8) the module's first
	// instance enabled with enable_features during _initialize and
	// kpipe_init; 0 if it enabled none or failed to initialise.
	Features uint64
	// Exports are the module's exported functions, sorted by name.
	Exports []Func
	// Imports are the module's imported functions, in import order.
	Imports []Func
	// MemoryMinPages and MemoryMaxPages are the limits the module declares
	// for its exported memory (64 KiB pages); MemoryMaxPages is 0 if the
	// module declares no maximum.
	MemoryMinPages, MemoryMaxPages uint32
}

// FeatureNames names the feature bits of info.Features (ABI section 8.1),
// known or not, for display: "none", or names joined with "|".
func (info *ModuleInfo) FeatureNames() string { return abi.FeatureNames(info.Features) }

// Func is a function a module imports or exports.
type Func struct {
	// Module is the import module ("kpipe", "wasi_snapshot_preview1"); empty
	// for an export.
	Module string
	// Name is the function name.
	Name string
	// Signature is the WebAssembly type, such as "(i32, i32) -> i64".
	Signature string
}

// signature is a function type in the ABI tables.
type signature struct {
	params, results []api.ValueType
}

func (s signature) String() string { return formatSig(s.params, s.results) }

func formatSig(params, results []api.ValueType) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, t := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(api.ValueTypeName(t))
	}
	b.WriteString(") -> ")
	switch len(results) {
	case 0:
		b.WriteString("()")
	case 1:
		b.WriteString(api.ValueTypeName(results[0]))
	default:
		b.WriteByte('(')
		for i, t := range results {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(api.ValueTypeName(t))
		}
		b.WriteByte(')')
	}
	return b.String()
}

func sig(params, results []api.ValueType) signature { return signature{params, results} }

func vt(ts ...api.ValueType) []api.ValueType { return ts }

// exportSigs are the ABI's function exports with their exact types
// (ABI section 3), except the version markers, which are () -> ().
var exportSigs = map[string]signature{
	abi.ExportKinds:      sig(nil, vt(i32)),
	abi.ExportBuffer:     sig(vt(i32), vt(i32)),
	abi.ExportInit:       sig(nil, vt(i64)),
	abi.ExportInitialize: sig(nil, nil),
	abi.ExportOnSend:     sig(vt(i32), vt(i64)),
	abi.ExportOnAck:      sig(vt(i32), vt(i64)),
	abi.ExportSerialize:  sig(vt(i32, i32), vt(i64)),
	abi.ExportPartition:  sig(vt(i32, i32), vt(i64)),

	abi.ExportOnConsume:   sig(vt(i32), vt(i64)),
	abi.ExportDeserialize: sig(vt(i32, i32), vt(i64)),

	abi.ExportOnSendBatch:    sig(vt(i32, i32), vt(i64)),
	abi.ExportOnAckBatch:     sig(vt(i32, i32), vt(i64)),
	abi.ExportPartitionBatch: sig(vt(i32, i32), vt(i64)),
}

func sameSig(def api.FunctionDefinition, want signature) bool {
	return slices.Equal(def.ParamTypes(), want.params) && slices.Equal(def.ResultTypes(), want.results)
}

// describe reads what a compiled module imports and exports.
func describe(cm wazero.CompiledModule) *ModuleInfo {
	info := &ModuleInfo{}
	for name, def := range cm.ExportedFunctions() {
		info.Exports = append(info.Exports, Func{Name: name, Signature: formatSig(def.ParamTypes(), def.ResultTypes())})
		if v, ok := abi.MarkerVersion(name); ok {
			info.Markers = append(info.Markers, v)
		}
	}
	slices.SortFunc(info.Exports, func(a, b Func) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(info.Markers)
	for _, v := range info.Markers {
		if slices.Contains(abi.SupportedVersions, v) {
			info.ABIVersion = v
		}
	}
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		info.Imports = append(info.Imports, Func{Module: mod, Name: name, Signature: formatSig(def.ParamTypes(), def.ResultTypes())})
	}
	if mem, ok := cm.ExportedMemories()[abi.ExportMemory]; ok {
		info.MemoryMinPages = mem.Min()
		if max, ok := mem.Max(); ok {
			info.MemoryMaxPages = max
		}
	}
	return info
}

func versionList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = "v" + strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// problems is a list of everything wrong with a module, reported at once
// rather than one per attempt.
type problems []error

func (ps problems) Error() string {
	if len(ps) == 1 {
		return ps[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems: ", len(ps))
	for i, p := range ps {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (ps problems) Unwrap() []error { return ps }

// err returns nil if there is no problem.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// The first bytes of a core module and of a component (Component Model
// binary format: version 0x0d, layer 1).
const (
	coreHeader      = "\x00asm\x01\x00\x00\x00"
	componentHeader = "\x00asm\x0d\x00\x01\x00"
)

// checkHeader recognises what is not a core WebAssembly module before the
// compiler does, to say what kpipe needs instead.
func checkHeader(wasm []byte) error {
	switch {
	case !bytes.HasPrefix(wasm, []byte("\x00asm")):
		return errors.New("not a WebAssembly module (the binary does not start with \\0asm)")
	case bytes.HasPrefix(wasm, []byte(componentHeader)):
		return errors.New("a WebAssembly component (Component Model), not a core module: kpipe runs core WebAssembly " +
			"modules that export the plugin ABI's functions (sdk/ABI.md); build for a core target instead " +
			"(Rust: wasm32-wasip1 or wasm32-unknown-unknown with crate-type cdylib, not wasm32-wasip2; " +
			"toolchains that only emit components, such as componentize-py and jco, cannot build kpipe plugins)")
	case len(wasm) >= 8 && !bytes.HasPrefix(wasm, []byte(coreHeader)):
		return fmt.Errorf("unknown WebAssembly binary version %x (a core module has version 01000000)", wasm[4:8])
	}
	return nil
}

// validateStatic checks everything ABI section 3 and 6 require that can be
// checked without running the module, and reports every problem it finds.
// The hook exports that the module's kinds require are checked once
// kpipe_kinds answered (validateKinds). wasm is the module cm was compiled
// from, whose imports of tables, globals and tags the compiled module does
// not list; memLimitPages is the plugin's memory limit.
func validateStatic(cm wazero.CompiledModule, wasm []byte, info *ModuleInfo, memLimitPages uint32) error {
	var ps problems
	exports := cm.ExportedFunctions()
	_, hasStart := exports[abi.ExportStart]
	_, hasInit := exports[abi.ExportInitialize]
	if hasStart && !hasInit {
		ps = append(ps, fmt.Errorf("exports %s but not %s: it is a WASI command, which runs main and exits, not a reactor, "+
			"which kpipe needs: a module whose functions the host calls (build Go guests with -buildmode=c-shared, "+
			"C with -mexec-model=reactor, Rust as a cdylib)", abi.ExportStart, abi.ExportInitialize))
	}
	if info.ABIVersion == 0 {
		found := "none"
		if len(info.Markers) > 0 {
			found = versionList(info.Markers)
		}
		ps = append(ps, fmt.Errorf("no supported ABI version: the module declares %s, this host supports %s (export a function named %s1, or %s%d for the consume-side kinds)",
			found, versionList(abi.SupportedVersions), abi.MarkerPrefix, abi.MarkerPrefix, abi.ConsumeVersion))
	} else {
		marker := abi.MarkerPrefix + strconv.Itoa(info.ABIVersion)
		if def := exports[marker]; !sameSig(def, sig(nil, nil)) {
			ps = append(ps, fmt.Errorf("export %s has type %s, want () -> ()", marker, formatSig(def.ParamTypes(), def.ResultTypes())))
		}
	}
	mems := cm.ExportedMemories()
	if _, ok := mems[abi.ExportMemory]; !ok {
		ps = append(ps, fmt.Errorf("missing export %q (the module must export its linear memory)", abi.ExportMemory))
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		ps = append(ps, fmt.Errorf("imports memory %s.%s: a plugin must define and export its own memory", mod, name))
	}
	// Neither the host nor WASI provides anything but functions (and a
	// memory import is reported above): without this, instantiation
	// would fail with wazero's "module[env] not instantiated", which
	// names neither the import nor what is wrong with it. A module that
	// compiled has an import section this reads.
	imports, _ := instrument.Imports(wasm)
	for _, imp := range imports {
		if imp.Kind != "function" && imp.Kind != "memory" {
			ps = append(ps, fmt.Errorf("imports %s %s.%s: a plugin may import only functions, from %s and %s",
				imp.Kind, imp.Module, imp.Name, abi.HostModule, abi.WASIModule))
		}
	}
	if info.MemoryMinPages > memLimitPages {
		ps = append(ps, fmt.Errorf("memory needs at least %d pages, above the plugin's limit of %d pages", info.MemoryMinPages, memLimitPages))
	}
	for _, name := range []string{abi.ExportKinds, abi.ExportBuffer} {
		if _, ok := exports[name]; !ok {
			ps = append(ps, fmt.Errorf("missing export %s %s", name, exportSigs[name]))
		}
	}
	names := make([]string, 0, len(exportSigs))
	for name := range exportSigs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if def, ok := exports[name]; ok && !sameSig(def, exportSigs[name]) {
			ps = append(ps, fmt.Errorf("export %s has type %s, want %s", name, formatSig(def.ParamTypes(), def.ResultTypes()), exportSigs[name]))
		}
	}
	for _, h := range []hook{hookOnSend, hookOnAck, hookPartition} {
		if _, ok := exports[hookNames[batchOf[h]]]; !ok {
			continue
		}
		if _, ok := exports[hookNames[h]]; !ok {
			ps = append(ps, fmt.Errorf("exports %s without %s: a module with a batch hook must also export its per-record hook",
				hookNames[batchOf[h]], hookNames[h]))
		}
	}
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch mod {
		case abi.WASIModule:
			// wazero names any WASI function it does not implement when
			// the module is instantiated.
		case abi.HostModule:
			hf, ok := hostFuncByName[name]
			if !ok {
				ps = append(ps, fmt.Errorf("unknown import %s.%s: the %s module has %s", mod, name, abi.HostModule, hostFuncNames()))
			} else if want := sig(hf.params, hf.results); !sameSig(def, want) {
				ps = append(ps, fmt.Errorf("import %s.%s has type %s, want %s", mod, name, formatSig(def.ParamTypes(), def.ResultTypes()), want))
			}
		default:
			ps = append(ps, fmt.Errorf("unknown import %s.%s: a plugin may import only from %s and %s", mod, name, abi.HostModule, abi.WASIModule))
		}
	}
	return ps.err()
}

func hostFuncNames() string {
	names := make([]string, len(hostFuncs))
	for i, f := range hostFuncs {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// kindNames spells a kind set, such as "interceptor+serializer".
func kindNames(k plugins.Kind) string {
	var s []string
	for _, x := range []struct {
		k    plugins.Kind
		name string
	}{{plugins.KindInterceptor, "interceptor"}, {plugins.KindSerializer, "serializer"}, {plugins.KindPartitioner, "partitioner"},
		{plugins.KindConsumeInterceptor, "consume interceptor"}, {plugins.KindDeserializer, "deserializer"}} {
		if k&x.k != 0 {
			s = append(s, x.name)
			k &^= x.k
		}
	}
	if k != 0 {
		s = append(s, fmt.Sprintf("unknown(%#x)", uint32(k)))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// validateKinds checks the kinds a module declared against the ABI version
// it implements (version, its newest marker the host supports), the kind it
// is loaded as, and its exports.
func validateKinds(declared, want plugins.Kind, version int, exports map[string]api.FunctionDefinition) error {
	if declared&^abi.AllKinds != 0 {
		return fmt.Errorf("%s returned %#x, which has unknown kind bits %#x", abi.ExportKinds, uint32(declared), uint32(declared&^abi.AllKinds))
	}
	if c := declared & abi.ConsumeKinds; c != 0 && version < abi.ConsumeVersion {
		return fmt.Errorf("%s declares %s, a kind of ABI v%d, but the module exports only the marker of v%d: export %s%d",
			abi.ExportKinds, kindNames(c), abi.ConsumeVersion, version, abi.MarkerPrefix, abi.ConsumeVersion)
	}
	if declared == 0 {
		return fmt.Errorf("%s returned 0: the module declares no plugin kind", abi.ExportKinds)
	}
	if declared&want != want {
		return fmt.Errorf("wrong kind: loaded as %s, but the module declares %s", kindNames(want), kindNames(declared))
	}
	return missingHooks(declared, exports, "the module declares").err()
}

// missingHooks lists the hook exports that kinds require and exports lack;
// why says where the kinds come from.
func missingHooks(kinds plugins.Kind, exports map[string]api.FunctionDefinition, why string) problems {
	var ps problems
	for h := range numHooks {
		if kinds&hookKinds[h] == 0 || h == hookOnAck { // kpipe_on_ack is optional
			continue
		}
		if _, ok := exports[hookNames[h]]; !ok {
			ps = append(ps, fmt.Errorf("missing export %s %s, required by the %s kind %s",
				hookNames[h], exportSigs[hookNames[h]], kindNames(hookKinds[h]), why))
		}
	}
	return ps
}

// Inspect compiles a module and describes it: the ABI version, the kinds it
// declares, its imports and exports. It also validates the module as Load
// would with the same options (instantiating it once, in the sandbox, which
// runs its kpipe_init; give WithConfig for a plugin that needs a config).
// The options are those of Load; the pool size is always 1. If the module
// is invalid, or does not load with these options, Inspect returns the
// error together with whatever it could read (nil only if the bytes are not
// a WebAssembly module at all): when only the initialisation fails, the
// info has the kinds anyway, and the error again as InitError.
func (h *Host) Inspect(ctx context.Context, wasm []byte, opts ...PluginOption) (*ModuleInfo, error) {
	return h.inspect(ctx, "module", wasm, opts)
}

// InspectFile reads a module from path and inspects it as Inspect does;
// errors, and the plugin's log lines, name the file.
func (h *Host) InspectFile(ctx context.Context, path string, opts ...PluginOption) (*ModuleInfo, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: inspect module: %w", err)
	}
	return h.inspect(ctx, path, wasm, append(opts[:len(opts):len(opts)], WithFile(path)))
}

// inspect implements Inspect and InspectFile; name is the plugin's name in
// its log lines.
func (h *Host) inspect(ctx context.Context, name string, wasm []byte, opts []PluginOption) (*ModuleInfo, error) {
	opts = append(opts[:len(opts):len(opts)], WithPoolSize(1), pluginOptionFunc(func(c *pluginConfig) { c.inspect = true }))
	p, info, err := h.load(ctx, name, wasm, 0, opts)
	if err != nil {
		return info, err
	}
	info.Kinds = p.Kinds()
	return info, p.Close(ctx)
}
