package instrument

import "fmt"

// Limits that CheckLimits enforces on a module before it is compiled. Each
// bounds something that costs the compiler (wazero's) time or memory out of
// proportion to the bytes that declare it; compilation is Go code that
// cannot be stopped, so a module past one of them would keep a core busy
// long after its load timed out. Where engines share a limit (the
// implementation limits of the WebAssembly JavaScript API, which browsers
// enforce and compilers therefore respect) it is used; the others were
// measured against wazero 1.12 on a 2-core machine, and against the largest
// figures of real compiler output: the Go example plugins and a 22 MB Go
// program using most of the standard library, the C, Rust and
// AssemblyScript SDK examples, and wazero's TinyGo, Rust and Zig test
// modules (RATIONALE.md, "Module limits").
const (
	// MaxLocals is the most locals (parameters not included) a function
	// may declare: the JavaScript API's limit. The binary format declares
	// locals in runs, so a few bytes can declare 2^32 - 1 of them, for
	// which wazero allocates (gigabytes) and above 2^28 of which its
	// compiler panics. Real functions declare at most a few hundred.
	MaxLocals = 50000
	// MaxLocalsTotal is the most locals and parameters the module's
	// functions may have together. The compiler spends time on every
	// local of every function: 10,000 functions of 50,000 locals each,
	// 80 KB, took 18 s to compile. The 22 MB Go program has 54,000.
	MaxLocalsTotal = 10_000_000
	// MaxParams and MaxResults bound the parameters and results of a
	// function type: the JavaScript API's limits. A type of 100,000
	// parameters took 9 s to compile.
	MaxParams  = 1000
	MaxResults = 1000
	// MaxBodySize is the most bytes a function body may take: the
	// JavaScript API's limit. The largest real body seen is 62 KB.
	MaxBodySize = 7_654_321
	// MaxNesting is the deepest that blocks, loops, ifs and trys may nest
	// in a function, the function's own block not counted. Compile time
	// grows with the square of the depth: 16,000 nested blocks took 1.1 s,
	// nested loops 5 s, 200,000 nested blocks minutes. Go nests deepest,
	// a block per resume point of a function: 1,153 in the 22 MB program,
	// 550 in the example plugins; the other compilers stay under 50.
	MaxNesting = 10_000
	// MaxControlSquares bounds the sum, over the module's functions, of
	// the square of each function's blocks and branches (block, loop, if,
	// try, try_table, br_if and br_table instructions). wazero's compiler
	// walks the dominator tree of each basic block of a function, which
	// makes its time grow with the square of the number of basic blocks,
	// nested or not: a function of 10,000 blocks with a br_if each took
	// 2.1 s, of 8,000 nested loops and br_ifs 2.6 s (about 40 ns per unit
	// of the sum). A limit per function would still let a module repeat
	// the worst function it allows; this limit bounds the whole module to
	// about 40 s of compiler time, less than the least compile timeout.
	// The 22 MB Go program sums to 1.3e8, the example plugins to 1.6e7.
	MaxControlSquares = 1_000_000_000
	// MaxBrTableTargets is the most targets a br_table may have, its
	// default included: V8's limit. 100,000 targets took 0.6 s to compile,
	// 1,000,000 took 13 s. Go's largest has 1,643.
	MaxBrTableTargets = 65520
	// MaxBranchValues bounds the values that the module's branches carry,
	// summed over br, br_if and each target of br_table: a branch to a
	// block of many results costs the compiler each of them, and a
	// br_table repeats that for every target (one of 1,000 targets to a
	// block of 1,000 results, 5 KB, took 1.7 s). Go's blocks have no
	// results; other compilers carry at most a value or two.
	MaxBranchValues = 1_000_000
	// Counts of a module's entries: the JavaScript API's limits (the
	// element segments: wasmparser's, which is stricter). wazero's time
	// for them grows in proportion (a million empty functions took 6 s to
	// compile), so these keep a module's size from being spent on them.
	MaxTypes           = 1_000_000
	MaxFunctions       = 1_000_000
	MaxImports         = 100_000
	MaxExports         = 100_000
	MaxGlobals         = 1_000_000
	MaxTables          = 100
	MaxElementSegments = 100_000
	MaxDataSegments    = 100_000
)

// LimitError says that a module exceeds one of the limits of CheckLimits.
type LimitError struct {
	// Offset is the byte offset in the module of what exceeds the limit.
	Offset int
	// Where names what exceeds it: "function 12 (body 3)" (a function's
	// index counts imported functions, its body's does not), "type 5",
	// "import section" or "module".
	Where string
	// What names the quantity, such as "locals" or "nesting depth".
	What string
	// Value is the quantity, Limit its limit.
	Value, Limit uint64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("at offset %#x: %s: %s %d, above the limit of %d", e.Offset, e.Where, e.What, e.Value, e.Limit)
}

// sectionLimits are the limits on the entries of sections: what an entry
// is called, and the limit.
var sectionLimits = map[byte]struct {
	what  string
	limit uint64
}{
	secType: {"types", MaxTypes}, secImport: {"imports", MaxImports}, secFunction: {"functions", MaxFunctions},
	secTable: {"tables", MaxTables}, secGlobal: {"globals", MaxGlobals}, secExport: {"exports", MaxExports},
	secElement: {"element segments", MaxElementSegments}, secData: {"data segments", MaxDataSegments},
}

// CheckLimits returns a *LimitError if the module wasm exceeds one of the
// limits above (MaxLocals and the others), so that it can be refused
// before it is compiled. It reads every instruction of every function
// body, which takes about 1% of the time wazero takes to compile them. It
// returns an *UnsupportedError if it cannot read the module: that happens
// only to modules that wazero refuses too, as it decodes every instruction
// wazero accepts, typed function references included (and the exception
// instructions and atomics, which kpipe does not enable), and wazero
// validates a module before it compiles any of it.
func CheckLimits(wasm []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case *UnsupportedError:
				err = e
			case *LimitError:
				err = e
			default:
				panic(r)
			}
		}
	}()
	checkMagic(wasm)
	var m moduleLimits
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		id := r.byte()
		size := r.u32()
		off := r.pos
		if id == secCode {
			// The bodies are read as wazero reads them: from the rest
			// of the module, before the section's size is checked
			// (see checkCode).
			code := reader{b: wasm[off:], base: off, typedRefs: true}
			m.checkCode(&code)
		}
		s := reader{b: r.bytes(int(size)), base: off, typedRefs: true}
		if id == secCustom {
			continue
		}
		if l, ok := sectionLimits[id]; ok {
			at := s.pos
			if n := uint64(s.u32()); n > l.limit {
				panic(&LimitError{Offset: off + at, Where: sectionNames[id], What: l.what, Value: n, Limit: l.limit})
			}
			s.pos = at
		}
		switch id {
		case secType:
			m.readTypes(&s)
		case secImport:
			m.readImports(&s)
		case secFunction:
			for range s.u32() {
				m.funcTypes = append(m.funcTypes, s.u32())
			}
		}
	}
	return nil
}

// moduleLimits is what CheckLimits keeps of a module's sections to check
// its code, and the module-wide sums.
type moduleLimits struct {
	params, results []uint32 // by type index; 0 for a type not read
	importedFuncs   uint32
	funcTypes       []uint32 // type index by defined function
	locals          uint64   // locals and parameters of the functions so far
	controlSquares  uint64
	branchValues    uint64
}

// place is where a limit applies: a type, a function or the module. It
// becomes LimitError.Where only if the limit is exceeded, so that the
// checks of the many entries that pass cost no formatting.
type place struct {
	kind        byte // 't': type index; 'f': function index and body index; 0: the module
	index, body uint64
}

func (p place) String() string {
	switch p.kind {
	case 't':
		return fmt.Sprintf("type %d", p.index)
	case 'f':
		return fmt.Sprintf("function %d (body %d)", p.index, p.body)
	}
	return "module"
}

func (m *moduleLimits) exceeds(offset int, where place, what string, value, limit uint64) {
	if value > limit {
		panic(&LimitError{Offset: offset, Where: where.String(), What: what, Value: value, Limit: limit})
	}
}

// readTypes reads the type section, checking MaxParams and MaxResults.
// Types that are not function types (of proposals wazero does not
// support) end the reading: compilation refuses them.
func (m *moduleLimits) readTypes(r *reader) {
	for i := range r.u32() {
		at := r.pos
		if r.byte() != 0x60 {
			return
		}
		where := place{kind: 't', index: uint64(i)}
		n := r.u32()
		m.exceeds(r.base+at, where, "parameters", uint64(n), MaxParams)
		for range n {
			r.valType()
		}
		k := r.u32()
		m.exceeds(r.base+at, where, "results", uint64(k), MaxResults)
		for range k {
			r.valType()
		}
		m.params = append(m.params, n)
		m.results = append(m.results, k)
	}
}

// readImports counts the imported functions, which come first in the
// function index space.
func (m *moduleLimits) readImports(r *reader) {
	for _, imp := range r.imports() {
		if imp.Kind == importKinds[externFunc] {
			m.importedFuncs++
		}
	}
}

// checkCode checks every function body of the code section, reading them
// as wazero decodes them: r holds the rest of the module, not only the
// section (wazero checks a section's size after it decoded its entries). For
// each body wazero reads the local declarations from the module, whatever
// the body's size says, and allocates for their sum before it reads further;
// only then does it read the body, and it validates instructions after
// every body was read. So the locals are counted from the module
// (declaredLocals), a body whose instructions this cannot read ends the check
// of that body only, and the first problem found is raised, as an
// *UnsupportedError, once every body wazero would read was checked
// (FuzzLoad: a body whose size ran past the end of the module and whose
// declarations, read past the body, summed to 1.3 billion locals made
// wazero allocate 5 GB).
func (m *moduleLimits) checkCode(r *reader) {
	var unreadable *UnsupportedError
	n := r.u32()
	for i := range n {
		at := r.base + r.pos
		size := r.u32()
		where := place{kind: 'f', index: uint64(m.importedFuncs) + uint64(i), body: uint64(i)}
		m.exceeds(at, where, "body size in bytes", uint64(size), MaxBodySize)
		var results uint32
		if int(i) < len(m.funcTypes) && m.funcTypes[i] < uint32(len(m.params)) {
			m.locals += uint64(m.params[m.funcTypes[i]])
			results = m.results[m.funcTypes[i]]
		}
		start := r.pos
		decls := reader{b: r.b[start:], base: r.base + start, typedRefs: true}
		locals := declaredLocals(&decls) // raises where wazero fails too
		m.exceeds(r.base+start, where, "locals", locals, MaxLocals)
		m.locals += locals
		m.exceeds(r.base+start, place{}, "locals and parameters of its functions", m.locals, MaxLocalsTotal)
		body := reader{b: r.bytes(int(size)), base: r.base + start, typedRefs: true}
		if e := m.checkReadableBody(&body, where, results); e != nil && unreadable == nil {
			unreadable = e
		}
	}
	if unreadable != nil {
		panic(unreadable)
	}
}

// declaredLocals reads the local declarations at the start of a function
// body as wazero does, and returns how many locals they declare.
func declaredLocals(r *reader) (sum uint64) {
	for range r.u32() {
		sum += uint64(r.u32())
		r.anyValType()
	}
	return sum
}

// checkReadableBody is checkBody, returning the *UnsupportedError of a body
// it cannot read instead of raising it. The limits checked before that
// point still apply.
func (m *moduleLimits) checkReadableBody(r *reader, where place, results uint32) (unreadable *UnsupportedError) {
	defer func() {
		if v := recover(); v != nil {
			e, ok := v.(*UnsupportedError)
			if !ok {
				panic(v)
			}
			unreadable = e
		}
	}()
	m.checkBody(r, where, results)
	return nil
}

// checkBody reads one function body, of a function with the given number
// of results, to its end, checking its nesting, its br_tables
// and what it adds to the module-wide sums.
func (m *moduleLimits) checkBody(r *reader, where place, results uint32) {
	// The locals were counted already (checkCode).
	for range r.u32() {
		r.u32()
		r.valType()
	}
	// labels holds the arity of each enclosing label (the values a branch
	// to it carries), the function's own block first.
	labels := append(make([]uint32, 0, 16), results)
	var control uint64
	// branch charges a branch to label l to the module's branch values.
	branch := func(l uint32, times uint64) {
		if l < uint32(len(labels)) {
			m.branchValues += times * uint64(labels[len(labels)-1-int(l)])
		}
	}
	for len(labels) > 0 {
		at := r.pos
		switch op := r.byte(); op {
		case 0x02, 0x03, 0x04, 0x06: // block, loop, if, try (legacy exceptions)
			params, results := m.blockType(r)
			if op == 0x03 {
				labels = append(labels, params)
			} else {
				labels = append(labels, results)
			}
			control++
			m.exceeds(r.base+at, where, "nesting depth", uint64(len(labels)-1), MaxNesting)
		case 0x1f: // try_table
			_, results := m.blockType(r)
			r.catchClauses()
			labels = append(labels, results)
			control++
			m.exceeds(r.base+at, where, "nesting depth", uint64(len(labels)-1), MaxNesting)
		case 0x0b: // end
			labels = labels[:len(labels)-1]
		case 0x18: // delegate (legacy exceptions): ends a try
			r.u32()
			labels = labels[:len(labels)-1]
		case 0x07, 0x09: // catch tag, rethrow label (legacy exceptions)
			r.u32()
		case 0x19: // catch_all (legacy exceptions)
		case 0x0c, 0x0d: // br, br_if
			branch(r.u32(), 1)
			if op == 0x0d {
				control++
			}
		case 0x0e: // br_table
			n := uint64(r.u32()) + 1
			m.exceeds(r.base+at, where, "br_table targets", n, MaxBrTableTargets)
			for range n - 1 {
				r.u32()
			}
			branch(r.u32(), n) // every target has the default's arity
			control++
		default:
			r.immediates(op)
		}
	}
	if !r.done() {
		r.fail("bytes after the end of the function body")
	}
	m.exceeds(r.base+r.pos, place{}, "branch values (values carried by br, br_if and each br_table target)", m.branchValues, MaxBranchValues)
	m.controlSquares += control * control
	m.exceeds(r.base, place{}, "sum over its functions of the square of their blocks and branches", m.controlSquares, MaxControlSquares)
}

// blockType reads the type of a block and returns the number of its
// parameters and results; a type index CheckLimits did not read counts
// as none.
func (m *moduleLimits) blockType(r *reader) (params, results uint32) {
	at := r.pos
	r.blockType()
	switch c := r.b[at]; {
	case c == 0x40:
		return 0, 0
	case isValType(c), c == 0x63, c == 0x64:
		return 0, 1
	}
	t := (&reader{b: r.b[at:r.pos]}).leb(33)
	if t < uint64(len(m.params)) {
		return m.params[t], m.results[t]
	}
	return 0, 0
}

// CountError says that a vector of the module declares more entries than
// the bytes left in the module could hold (every entry takes at least one
// byte), or that a name, function body or data segment declares more
// bytes than are left.
type CountError struct {
	// Offset is the byte offset of the count in the module.
	Offset int
	// What names the vector, or what has the length.
	What string
	// Count is the count (or the length in bytes) the module declares;
	// Left the bytes left in the module after it.
	Count uint32
	Left  int
	// Length says that Count is a length in bytes, not a number of
	// entries.
	Length bool
}

func (e *CountError) Error() string {
	unit := "entries"
	if e.Length {
		unit = "bytes"
	}
	return fmt.Sprintf("at offset %#x: the %s declares %d %s, but only %d bytes follow", e.Offset, e.What, e.Count, unit, e.Left)
}

// sectionNames names the sections whose content starts with a vector.
var sectionNames = map[byte]string{secType: "type section", secImport: "import section", secFunction: "function section",
	secTable: "table section", secMemory: "memory section", secGlobal: "global section", secExport: "export section",
	secElement: "element section", secCode: "code section", secData: "data section", secTag: "tag section"}

// CheckCounts returns a *CountError if the module wasm declares a count or
// a length that the bytes after it could not hold: the vector of every
// section, the function references or expressions of each element
// segment, the parameters and results of each function type, the names of
// the "name" section, the names of imports, exports and custom sections,
// the size of each function body and of each data segment's bytes.
// wazero's decoder allocates for what is declared before it reads it, so a
// module of a few dozen bytes that declares 2^32 - 1 entries or bytes made
// it ask for more memory than the machine has, which is a fatal error of
// the Go runtime, not a panic: the process died. wazero reads a section's
// entries from the whole module and compares what it read with the
// section's size only afterwards, so the entries of a section whose size
// is too small are read from the bytes after it: CheckCounts reads them
// the same way, and compares counts with the bytes left in the module. It
// returns an *UnsupportedError if it cannot read what it checks.
func CheckCounts(wasm []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case *UnsupportedError:
				err = e
			case *CountError:
				err = e
			default:
				panic(r)
			}
		}
	}()
	checkMagic(wasm)
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		id := r.byte()
		size := r.u32()
		// s reads the section's content, up to the end of the module.
		s := reader{b: wasm, pos: r.pos}
		name, ok := sectionNames[id]
		switch {
		case ok:
			n := s.count(name)
			switch id {
			case secType:
				for range n {
					if s.byte() != 0x60 {
						return nil // a type this does not read: left to wazero
					}
					for range s.count("parameters of a function type") {
						s.anyValType()
					}
					for range s.count("results of a function type") {
						s.anyValType()
					}
				}
			case secImport:
				for range n {
					s.checkedName("module name of an import")
					s.checkedName("name of an import")
					s.importDesc()
				}
			case secExport:
				for range n {
					s.checkedName("name of an export")
					s.byte()
					s.u32()
				}
			case secElement:
				for range n {
					s.elementSegment()
				}
			case secCode:
				for range n {
					s.bytes(int(s.length("function body")))
				}
			case secData:
				for range n {
					s.dataSegment()
				}
			}
		case id == secCustom:
			if s.checkedName("name of a custom section") == "name" {
				s.nameSection(r.pos + int(size))
			}
		}
		r.bytes(int(size))
	}
	return nil
}

// count reads the count of a vector and panics with a *CountError if the
// bytes left cannot hold that many entries.
func (r *reader) count(what string) uint32 {
	at := r.pos
	n := r.u32()
	if left := len(r.b) - r.pos; int64(n) > int64(left) {
		panic(&CountError{Offset: r.base + at, What: what, Count: n, Left: left})
	}
	return n
}

// length reads a length in bytes and panics with a *CountError if the
// bytes left are fewer.
func (r *reader) length(what string) uint32 {
	at := r.pos
	n := r.u32()
	if left := len(r.b) - r.pos; int64(n) > int64(left) {
		panic(&CountError{Offset: r.base + at, What: what, Count: n, Left: left, Length: true})
	}
	return n
}

// checkedName reads a name whose length length checks.
func (r *reader) checkedName(what string) string {
	return string(r.bytes(int(r.length(what))))
}

// anyValType skips a value type as wazero's decoder reads it: a typed
// reference (0x63, 0x64) with its heap type, any other byte alone (wazero
// stops at a byte that is no value type, and value types it knows, such
// as exnref, that the rewriter refuses must not stop the checks).
func (r *reader) anyValType() {
	if c := r.byte(); c == 0x63 || c == 0x64 {
		r.heapType()
	}
}

// importDesc skips the description of an import, after its names, and
// returns its kind.
func (r *reader) importDesc() (kind byte) {
	switch kind = r.byte(); kind {
	case externFunc:
		r.u32()
	case externTable:
		r.refType()
		r.limits(false)
	case externMemory:
		r.limits(true)
	case externGlobal:
		r.valType()
		r.byte()
	case externTag:
		r.byte()
		r.u32()
	default:
		r.fail(fmt.Sprintf("unknown import kind %#x", kind))
	}
	return kind
}

// dataSegment checks the length of the bytes of one data segment.
func (r *reader) dataSegment() {
	switch flags := r.u32(); flags {
	case 0:
		r.constExpr()
	case 1:
	case 2:
		r.u32() // memory index
		r.constExpr()
	default:
		r.fail(fmt.Sprintf("unknown data segment flags %d", flags))
	}
	r.bytes(int(r.length("data segment")))
}

// constExpr skips a constant expression, up to its end.
func (r *reader) constExpr() {
	for {
		op := r.byte()
		if op == 0x0b {
			return
		}
		r.immediates(op)
	}
}

// elementSegment checks the vector of one element segment.
func (r *reader) elementSegment() {
	flags := r.u32()
	if flags > 7 {
		r.fail(fmt.Sprintf("unknown element segment flags %d", flags))
	}
	if flags&1 == 0 { // active
		if flags&2 != 0 {
			r.u32() // table index
		}
		r.constExpr()
	}
	if flags&3 != 0 { // an element kind or a reference type
		r.byte()
	}
	n := r.count("element segment")
	for range n {
		if flags&4 != 0 {
			r.constExpr()
		} else {
			r.u32()
		}
	}
}

// nameSection checks the vectors and names of the subsections of a
// "name" custom section that wazero decodes, function names (1) and local
// names (2), up to end, the end of the section. As with sections, wazero
// reads a subsection's entries up to the end of the module, whatever its
// size.
func (r *reader) nameSection(end int) {
	for r.pos < end {
		id := r.byte()
		size := r.u32()
		sub := reader{b: r.b, pos: r.pos, base: r.base}
		switch id {
		case 1:
			for range sub.count("function names of the name section") {
				sub.u32()
				sub.checkedName("function name of the name section")
			}
		case 2:
			for range sub.count("local names of the name section") {
				sub.u32()
				for range sub.count("local names of a function") {
					sub.u32()
					sub.checkedName("local name of the name section")
				}
			}
		}
		r.bytes(int(size))
	}
}
