package instrument

import (
	"bytes"
	"errors"
	"testing"
)

// TestCapTables checks the limits CapTables gives tables: a maximum for
// each, the declared one if smaller, the rest of the limit shared equally,
// and an error for tables whose minimum sizes exceed the limit or a table
// section it cannot read.
func TestCapTables(t *testing.T) {
	const header = "\x00asm\x01\x00\x00\x00"
	// module builds a module of the sections given as (id, content).
	module := func(secs ...[]byte) []byte {
		b := []byte(header)
		for _, s := range secs {
			b = appendSection(b, s[0], s[1:])
		}
		return b
	}
	memory := []byte{secMemory, 1, 0x00, 1} // one memory of 1 page
	tables := func(entries ...byte) []byte { return append([]byte{secTable}, entries...) }
	tests := []struct {
		name    string
		in, out []byte
		tooMany bool // a *TablesError
		bad     bool // an *UnsupportedError
	}{
		{"no table", module(memory), module(memory), false, false},
		{"no maximum", module(tables(1, 0x70, 0x00, 5), memory), module(tables(1, 0x70, 0x01, 5, 0xe8, 0x07), memory), false, false},
		{"smaller maximum kept", module(tables(1, 0x70, 0x01, 5, 9)), module(tables(1, 0x70, 0x01, 5, 9)), false, false},
		{"larger maximum lowered", module(tables(1, 0x6f, 0x01, 0, 0xff, 0xff, 0x03)), module(tables(1, 0x6f, 0x01, 0, 0xe8, 0x07)), false, false},
		// 1000 - 10 - 0 = 990 to share: 495 each, so maxima of 505 and 495.
		{"shared", module(tables(2, 0x70, 0x00, 10, 0x70, 0x00, 0)), module(tables(2, 0x70, 0x01, 10, 0xf9, 0x03, 0x70, 0x01, 0, 0xef, 0x03)), false, false},
		{"minimum above limit", module(tables(1, 0x70, 0x00, 0xe9, 0x07)), nil, true, false},
		{"minimums above limit together", module(tables(2, 0x70, 0x00, 0xf4, 0x03, 0x70, 0x00, 0xf5, 0x03)), nil, true, false},
		{"64-bit table", module(tables(1, 0x70, 0x04, 1)), nil, false, true},
		{"truncated", module(tables(1, 0x70)), nil, false, true},
		// An empty table section once made CapTables divide by zero,
		// which crashed the process (FuzzLoad).
		{"empty table section", module(tables(0), memory), module(tables(0), memory), false, false},
		{"count above its bytes", module(tables(0xff, 0xff, 0xff, 0xff, 0x0f)), nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bytes.Clone(tt.in)
			out, err := CapTables(in, 1000)
			if !bytes.Equal(in, tt.in) {
				t.Fatal("CapTables modified its input")
			}
			var te *TablesError
			var ue *UnsupportedError
			switch {
			case tt.tooMany:
				if !errors.As(err, &te) || te.Limit != 1000 {
					t.Fatalf("err = %v, want a *TablesError", err)
				}
			case tt.bad:
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an *UnsupportedError", err)
				}
			case err != nil:
				t.Fatal(err)
			case !bytes.Equal(out, tt.out):
				t.Fatalf("CapTables = %x, want %x", out, tt.out)
			}
		})
	}
}
