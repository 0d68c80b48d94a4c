package instrument

import (
	"bytes"
	"errors"
	"testing"
)

// moduleWithLocals returns a module of one function () -> () whose body
// declares locals in runs of the given counts, each of type i64.
func moduleWithLocals(runs ...uint32) []byte {
	body := appendU32(nil, uint32(len(runs)))
	for _, n := range runs {
		body = append(appendU32(body, n), 0x7e)
	}
	body = append(body, 0x0b) // end
	code := append(appendU32([]byte{1}, uint32(len(body))), body...)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = appendSection(m, secType, []byte{1, 0x60, 0, 0})
	m = appendSection(m, secFunction, []byte{1, 0})
	return appendSection(m, secCode, code)
}

// truncated returns wasm without its last two bytes.
func truncated(wasm []byte) []byte { return wasm[:len(wasm)-2] }

// module returns a module of the given types, functions (a type index
// each) and function bodies (without their size).
func module(types [][]byte, funcs []uint32, bodies [][]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	ts := appendU32(nil, uint32(len(types)))
	for _, t := range types {
		ts = append(ts, t...)
	}
	m = appendSection(m, secType, ts)
	fs := appendU32(nil, uint32(len(funcs)))
	for _, f := range funcs {
		fs = appendU32(fs, f)
	}
	m = appendSection(m, secFunction, fs)
	code := appendU32(nil, uint32(len(bodies)))
	for _, b := range bodies {
		code = append(appendU32(code, uint32(len(b))), b...)
	}
	return appendSection(m, secCode, code)
}

// funcType returns a function type of params i32 parameters and results
// i32 results.
func funcType(params, results int) []byte {
	t := appendU32([]byte{0x60}, uint32(params))
	t = append(t, bytes.Repeat([]byte{0x7f}, params)...)
	t = appendU32(t, uint32(results))
	return append(t, bytes.Repeat([]byte{0x7f}, results)...)
}

// body returns a function body without locals: code, then end.
func body(code ...[]byte) []byte {
	return append(append([]byte{0}, bytes.Join(code, nil)...), 0x0b)
}

// nested returns n nested blocks of opcode op (an if gets its condition),
// empty, with their ends.
func nested(op byte, n int) []byte {
	open := []byte{op, 0x40}
	if op == 0x04 {
		open = []byte{0x41, 0, op, 0x40}
	}
	return append(bytes.Repeat(open, n), bytes.Repeat([]byte{0x0b}, n)...)
}

// brTable returns a br_table of n targets, the default included, all to
// label 0, after its index.
func brTable(n int) []byte {
	c := appendU32([]byte{0x41, 0, 0x0e}, uint32(n-1))
	return append(c, make([]byte, n)...)
}

// repeat returns n copies of one function body (of type 0).
func repeat(n int, body []byte) ([]uint32, [][]byte) {
	funcs := make([]uint32, n)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = body
	}
	return funcs, bodies
}

// countOnly returns a module of one section whose content is only a vector
// count.
func countOnly(id byte, count uint32) []byte {
	return appendSection([]byte("\x00asm\x01\x00\x00\x00"), id, appendU32(nil, count))
}

// TestCheckLimits checks every limit of CheckLimits at and one above it,
// on small modules built for it.
func TestCheckLimits(t *testing.T) {
	unit := [][]byte{funcType(0, 0)}
	// manyLocals is a body declaring 2^30 locals of type i64.
	manyLocals := append(appendU32(appendU32(nil, 1), 1<<30), 0x7e, 0x0b)
	one := func(b []byte) []byte { return module(unit, []uint32{0}, [][]byte{b}) }
	// A br_if: each counts as a branch.
	brIf := []byte{0x41, 0, 0x0d, 0}
	// controlSquares returns n functions of 10,000 br_ifs each (1e8 each).
	controlSquares := func(n int) []byte {
		funcs, bodies := repeat(n, body(bytes.Repeat(brIf, 10000)))
		return module(unit, funcs, bodies)
	}
	// localsTotal returns n functions of MaxLocals locals each.
	localsTotal := func(n int) []byte {
		l := append(appendU32([]byte{1}, MaxLocals), 0x7e, 0x0b)
		funcs, bodies := repeat(n, l)
		return module(unit, funcs, bodies)
	}
	// paramsTotal returns n functions of MaxParams parameters each.
	paramsTotal := func(n int) []byte {
		funcs, bodies := repeat(n, body())
		return module([][]byte{funcType(MaxParams, 0)}, funcs, bodies)
	}
	// branchValues returns a function with a block of MaxResults results
	// and a br_table of n targets out of it.
	branchValues := func(n int) []byte {
		c := []byte{0x02, 0x00} // block of type 0
		c = append(c, bytes.Repeat([]byte{0x41, 0}, MaxResults)...)
		c = append(c, brTable(n)...)
		c = append(c, 0x0b)
		c = append(c, bytes.Repeat([]byte{0x1a}, MaxResults)...) // drop
		return module([][]byte{funcType(0, MaxResults), funcType(0, 0)}, []uint32{1}, [][]byte{body(c)})
	}
	tests := []struct {
		name  string
		wasm  []byte
		where string // "": no error
		what  string
		value uint64
		bad   bool // an *UnsupportedError
	}{
		{"no locals", moduleWithLocals(), "", "", 0, false},
		{"locals at the limit", moduleWithLocals(MaxLocals), "", "", 0, false},
		{"locals at the limit in runs", moduleWithLocals(MaxLocals-1, 1), "", "", 0, false},
		{"locals one above", moduleWithLocals(MaxLocals + 1), "function 0 (body 0)", "locals", MaxLocals + 1, false},
		{"locals one above in runs", moduleWithLocals(MaxLocals, 1), "function 0 (body 0)", "locals", MaxLocals + 1, false},
		{"2^28 - 1 locals (wazero's compiler panics)", moduleWithLocals(1<<28 - 1), "function 0 (body 0)", "locals", 1<<28 - 1, false},
		{"2^32 - 1 locals twice", moduleWithLocals(1<<32-1, 1<<32-1), "function 0 (body 0)", "locals", 2 * (1<<32 - 1), false},
		// wazero decodes the locals of every body before it validates
		// any instruction, and reads a body's declarations from the
		// module whatever its size says: neither an unreadable body
		// before it nor a size too small hides a body's locals
		// (FuzzLoad; wazero allocated 5 GB for such a module).
		{"locals after an unreadable body", module(unit, []uint32{0, 0}, [][]byte{{0, 0xff, 0x0b}, manyLocals}),
			"function 1 (body 1)", "locals", 1 << 30, false},
		{"locals declared past the body's size", func() []byte {
			m := []byte("\x00asm\x01\x00\x00\x00")
			m = appendSection(m, secType, []byte{1, 0x60, 0, 0})
			m = appendSection(m, secFunction, []byte{1, 0})
			return appendSection(m, secCode, append([]byte{1, 1}, manyLocals...)) // size 1
		}(), "function 0 (body 0)", "locals", 1 << 30, false},
		{"locals of a code section that runs past the end", func() []byte {
			m := []byte("\x00asm\x01\x00\x00\x00")
			m = appendSection(m, secType, []byte{1, 0x60, 0, 0})
			m = appendSection(m, secFunction, []byte{1, 0})
			code := append(appendU32([]byte{1}, uint32(len(manyLocals))), manyLocals...)
			// The section claims 100 bytes more than the module holds.
			return append(appendU32(append(m, secCode), uint32(len(code)+100)), code...)
		}(), "function 0 (body 0)", "locals", 1 << 30, false},
		{"truncated", truncated(moduleWithLocals(1)), "", "", 0, true},

		{"nested blocks at the limit", one(body(nested(0x02, MaxNesting))), "", "", 0, false},
		{"nested blocks one above", one(body(nested(0x02, MaxNesting+1))), "function 0 (body 0)", "nesting depth", MaxNesting + 1, false},
		// The module of the audit: minutes of compiler time.
		{"200,000 nested blocks", one(body(nested(0x02, 200000))), "function 0 (body 0)", "nesting depth", MaxNesting + 1, false},
		{"nested loops one above", one(body(nested(0x03, MaxNesting+1))), "function 0 (body 0)", "nesting depth", MaxNesting + 1, false},
		{"nested ifs one above", one(body(nested(0x04, MaxNesting+1))), "function 0 (body 0)", "nesting depth", MaxNesting + 1, false},
		{"nesting in the second function, after an import", func() []byte {
			m := module(unit, []uint32{0, 0}, [][]byte{body(), body(nested(0x02, MaxNesting+1))})
			// An import section of one function, env.f, after the type section.
			imp := appendSection(nil, secImport, []byte{1, 3, 'e', 'n', 'v', 1, 'f', 0, 0})
			return append(append(append([]byte{}, m[:14]...), imp...), m[14:]...)
		}(), "function 2 (body 1)", "nesting depth", MaxNesting + 1, false},

		// wazero decodes typed function references even without the
		// feature: a module using them must not escape the limits.
		{"nesting after a typed reference local", one(append([]byte{1, 1, 0x63, 0x70}, append(nested(0x02, MaxNesting+1), 0x0b)...)),
			"function 0 (body 0)", "nesting depth", MaxNesting + 1, false},

		{"parameters at the limit", module([][]byte{funcType(MaxParams, 0)}, nil, nil), "", "", 0, false},
		{"parameters one above", module([][]byte{funcType(0, 0), funcType(MaxParams+1, 0)}, nil, nil), "type 1", "parameters", MaxParams + 1, false},
		{"100,000 parameters", module([][]byte{funcType(100000, 0)}, nil, nil), "type 0", "parameters", 100000, false},
		{"results one above", module([][]byte{funcType(0, MaxResults+1)}, nil, nil), "type 0", "results", MaxResults + 1, false},

		{"body at the limit", one(body(make([]byte, MaxBodySize-2))), "", "", 0, false}, // nops
		{"body one above", one(body(make([]byte, MaxBodySize-1))), "function 0 (body 0)", "body size in bytes", MaxBodySize + 1, false},

		{"br_table at the limit", one(body(brTable(MaxBrTableTargets))), "", "", 0, false},
		{"br_table one above", one(body(brTable(MaxBrTableTargets + 1))), "function 0 (body 0)", "br_table targets", MaxBrTableTargets + 1, false},

		{"branch values at the limit", branchValues(MaxBranchValues / MaxResults), "", "", 0, false},
		{"branch values above", branchValues(MaxBranchValues/MaxResults + 1), "module",
			"branch values (values carried by br, br_if and each br_table target)", MaxBranchValues + MaxResults, false},

		{"blocks and branches at the limit", controlSquares(10), "", "", 0, false},
		{"blocks and branches above", controlSquares(11), "module",
			"sum over its functions of the square of their blocks and branches", 11e8, false},

		{"locals of the module at the limit", localsTotal(MaxLocalsTotal / MaxLocals), "", "", 0, false},
		{"locals of the module above", localsTotal(MaxLocalsTotal/MaxLocals + 1), "module",
			"locals and parameters of its functions", MaxLocalsTotal + MaxLocals, false},
		{"parameters of the module above", paramsTotal(MaxLocalsTotal/MaxParams + 1), "module",
			"locals and parameters of its functions", MaxLocalsTotal + MaxParams, false},
	}
	for id, l := range sectionLimits {
		tests = append(tests,
			struct {
				name  string
				wasm  []byte
				where string
				what  string
				value uint64
				bad   bool
			}{l.what + " one above", countOnly(id, uint32(l.limit+1)), sectionNames[id], l.what, l.limit + 1, false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLimits(tt.wasm)
			var le *LimitError
			var ue *UnsupportedError
			switch {
			case tt.bad:
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an *UnsupportedError", err)
				}
			case tt.where == "":
				if err != nil {
					t.Fatal(err)
				}
			case !errors.As(err, &le) || le.Where != tt.where || le.What != tt.what || le.Value != tt.value:
				t.Fatalf("err = %v, want a *LimitError of %s: %s %d", err, tt.where, tt.what, tt.value)
			}
		})
	}
}

// TestCheckCounts checks that vectors whose counts the bytes after them
// cannot hold are refused, and that CheckCounts accepts a module whose
// counts fit.
func TestCheckCounts(t *testing.T) {
	const header = "\x00asm\x01\x00\x00\x00"
	huge := appendU32(nil, 1<<32-1)
	tests := []struct {
		name string
		wasm []byte
		what string // "": no error
	}{
		{"fits", moduleWithLocals(3), ""},
		{"global section", appendSection([]byte(header), secGlobal, append(huge, 0x7f, 0x00, 0x41, 0x00, 0x0b)), "global section"},
		{"export section", appendSection([]byte(header), secExport, append(huge, 0)), "export section"},
		{"function type", appendSection([]byte(header), secType, append(append([]byte{1, 0x60}, huge...), 0x7f)), "parameters of a function type"},
		{"element segment", appendSection([]byte(header), secElement, append(append([]byte{1, 0, 0x41, 0, 0x0b}, huge...), 0)), "element segment"},
		{"function names", appendSection([]byte(header), secCustom,
			append([]byte("\x04name\x01\x08"), append(huge, 0, 1, 'a')...)), "function names of the name section"},
		// wazero reads a section's entries past its end: a count there
		// is checked against the rest of the module. This type section
		// of 4 bytes ends inside the count of the results of its type.
		{"count past a short section", append([]byte(header+"\x01\x04\x01\x60\x00"), huge...), "results of a function type"},
		{"subsection count past its end", appendSection([]byte(header), secCustom,
			append([]byte("\x04name\x01\x00"), huge...)), "function names of the name section"},
		// A value type the rewriter refuses (exnref) must not stop the
		// checks of the types after it.
		{"count after exnref", appendSection([]byte(header), secType,
			append([]byte{2, 0x60, 1, 0x69, 0, 0x60}, append(huge, 0x7f)...)), "parameters of a function type"},
		// Lengths in bytes, for which wazero allocates too.
		{"export name", appendSection([]byte(header), secExport, append([]byte{1}, huge...)), "name of an export"},
		{"import name", appendSection([]byte(header), secImport, append([]byte{1, 1, 'm'}, huge...)), "name of an import"},
		{"custom section name", appendSection([]byte(header), secCustom, huge), "name of a custom section"},
		{"name in the name section", appendSection([]byte(header), secCustom,
			append([]byte("\x04name\x01\x07\x01\x00"), huge...)), "function name of the name section"},
		{"function body", appendSection([]byte(header), secCode, append([]byte{1}, huge...)), "function body"},
		{"data segment", appendSection([]byte(header), secData, append([]byte{1, 1}, huge...)), "data segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCounts(tt.wasm)
			var ce *CountError
			switch {
			case tt.what == "":
				if err != nil {
					t.Fatal(err)
				}
			case !errors.As(err, &ce) || ce.What != tt.what || ce.Count != 1<<32-1:
				t.Fatalf("err = %v, want a *CountError of the %s", err, tt.what)
			}
		})
	}
}
