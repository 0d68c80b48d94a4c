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
	defer func() {
		if r := recover(); r != nil {
			ue, ok := r.(*UnsupportedError)
			if !ok {
				panic(r)
			}
			err = ue
		}
	}()
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		fail(0, "not a WebAssembly module")
	}
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
