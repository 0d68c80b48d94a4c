package instrument

// Import is an import of a module.
type Import struct {
	// Module and Name are the import's two-level name.
	Module, Name string
	// Kind is what it imports: "function", "table", "memory", "global"
	// or "tag".
	Kind string
}

// importKinds names the external kinds of imports.
var importKinds = [...]string{externFunc: "function", externTable: "table", externMemory: "memory",
	externGlobal: "global", externTag: "tag"}

// Imports lists the imports of the module wasm, in order. It fails with an
// *UnsupportedError if it cannot read the module's sections or its import
// section.
func Imports(wasm []byte) (_ []Import, err error) {
	defer recoverUnsupported(&err)
	checkMagic(wasm)
	var imports []Import
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		id := r.byte()
		size := r.u32()
		off := r.pos
		content := r.bytes(int(size))
		if id == secImport {
			s := reader{b: content, base: off}
			imports = append(imports, s.imports()...)
		}
	}
	return imports, nil
}

// imports reads an import section.
func (s *reader) imports() []Import {
	var imports []Import
	for range s.u32() {
		imp := Import{Module: s.name(), Name: s.name()}
		imp.Kind = importKinds[s.importDesc()]
		imports = append(imports, imp)
	}
	if !s.done() {
		s.fail("trailing bytes in the import section")
	}
	return imports
}
