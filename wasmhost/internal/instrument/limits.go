package instrument

import "fmt"

// MaxLocals is the most locals (parameters not included) that CheckLocals
// lets a function declare: the limit the WebAssembly JavaScript API sets
// on engines, which compilers respect.
const MaxLocals = 50000

// LocalsError says that a function declares more locals than MaxLocals.
type LocalsError struct {
	// Function is the index of the function's body in the code section
	// (functions the module defines, imports not counted).
	Function int
	// Locals is the number of locals it declares.
	Locals uint64
}

func (e *LocalsError) Error() string {
	return fmt.Sprintf("function body %d declares %d locals, above the limit of %d", e.Function, e.Locals, MaxLocals)
}

// CheckLocals returns a *LocalsError if a function of the module wasm
// declares more than MaxLocals locals. The binary format declares locals
// in runs (a count and a type), so a few bytes can declare 2^32 - 1 of
// them, which wazero allocates for when it compiles the module (gigabytes
// for one function) and whose compiler panics above 2^28. It returns an
// *UnsupportedError if it cannot read the module's sections or the local
// declarations of its code section.
func CheckLocals(wasm []byte) (err error) {
	defer recoverUnsupported(&err)
	checkMagic(wasm)
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		id := r.byte()
		size := r.u32()
		off := r.pos
		content := r.bytes(int(size))
		if id != secCode {
			continue
		}
		s := reader{b: content, base: off}
		for i := range int(s.u32()) {
			n := s.u32()
			body := reader{b: s.bytes(int(n)), base: off + s.pos - int(n)}
			var locals uint64
			for range body.u32() {
				locals += uint64(body.u32())
				body.valType()
			}
			if locals > MaxLocals {
				return &LocalsError{Function: i, Locals: locals}
			}
		}
	}
	return nil
}

// CountError says that a vector of the module declares more entries than
// the bytes left could hold (every entry takes at least one byte).
type CountError struct {
	// Offset is the byte offset of the count in the module.
	Offset int
	// What names the vector.
	What string
	// Count is the count the module declares; Left the bytes left.
	Count uint32
	Left  int
}

func (e *CountError) Error() string {
	return fmt.Sprintf("at offset %#x: the %s declares %d entries, but only %d bytes follow", e.Offset, e.What, e.Count, e.Left)
}

// sectionNames names the sections whose content starts with a vector.
var sectionNames = map[byte]string{secType: "type section", secImport: "import section", secFunction: "function section",
	secTable: "table section", secMemory: "memory section", secGlobal: "global section", secExport: "export section",
	secElement: "element section", secCode: "code section", secData: "data section", secTag: "tag section"}

// CheckCounts returns a *CountError if a vector of the module wasm
// declares more entries than the bytes that follow its count could hold:
// the vector of every section, the function references or expressions of
// each element segment, the parameters and results of each function type,
// and the names of the "name" section. wazero's decoder allocates for the
// declared count before it reads the entries, so a module of a few dozen
// bytes that declares 2^32 - 1 of them made it ask for more memory than the
// machine has, which is a fatal error of the Go runtime, not a panic: the
// process died. It returns an *UnsupportedError if it cannot read what it
// checks.
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
		off := r.pos
		s := reader{b: r.bytes(int(size)), base: off}
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
						s.valType()
					}
					for range s.count("results of a function type") {
						s.valType()
					}
				}
			case secElement:
				for range n {
					s.elementSegment()
				}
			}
		case id == secCustom && s.name() == "name":
			s.nameSection()
		}
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

// nameSection checks the vectors of the subsections of a "name" custom
// section that wazero decodes: function names (1) and local names (2).
func (r *reader) nameSection() {
	for !r.done() {
		id := r.byte()
		size := r.u32()
		sub := reader{b: r.bytes(int(size)), base: r.base + r.pos - int(size)}
		switch id {
		case 1:
			for range sub.count("function names of the name section") {
				sub.u32()
				sub.name()
			}
		case 2:
			for range sub.count("local names of the name section") {
				sub.u32()
				for range sub.count("local names of a function") {
					sub.u32()
					sub.name()
				}
			}
		}
	}
}
