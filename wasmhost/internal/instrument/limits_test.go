package instrument

import (
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

// TestCheckLocals checks the limit on the locals of a function, however
// they are split into runs.
func TestCheckLocals(t *testing.T) {
	tests := []struct {
		name   string
		wasm   []byte
		locals uint64 // 0: no error
		bad    bool   // an *UnsupportedError
	}{
		{"none", moduleWithLocals(), 0, false},
		{"at the limit", moduleWithLocals(MaxLocals), 0, false},
		{"at the limit in runs", moduleWithLocals(MaxLocals-1, 1), 0, false},
		{"one above", moduleWithLocals(MaxLocals + 1), MaxLocals + 1, false},
		{"one above in runs", moduleWithLocals(MaxLocals, 1), MaxLocals + 1, false},
		{"2^28 - 1 (wazero's compiler panics)", moduleWithLocals(1<<28 - 1), 1<<28 - 1, false},
		{"2^32 - 1 twice", moduleWithLocals(1<<32-1, 1<<32-1), 2 * (1<<32 - 1), false},
		{"truncated", truncated(moduleWithLocals(1)), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLocals(tt.wasm)
			var le *LocalsError
			var ue *UnsupportedError
			switch {
			case tt.bad:
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an *UnsupportedError", err)
				}
			case tt.locals == 0:
				if err != nil {
					t.Fatal(err)
				}
			case !errors.As(err, &le) || le.Locals != tt.locals || le.Function != 0:
				t.Fatalf("err = %v, want a *LocalsError of function 0 with %d locals", err, tt.locals)
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
