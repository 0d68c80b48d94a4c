package config

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// FuzzParse runs any source text through Parse, the checks kpipe validate
// makes before it loads modules (Check), and checks that there is a Config
// exactly when there is no error, and that every error names the file and a
// position inside the input whose line agrees with its byte offset, and
// that every diagnostic formats as one line.
// The seeds are the example configurations and every configuration the
// package's tests parse (the src strings of their tables), with a module
// file m.wasm beside the fuzzed file as those tests have.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	writeModule(f, dir, "m.wasm")
	file := filepath.Join(dir, "kpipe.hcl")
	examples, err := filepath.Glob("../examples/*.hcl")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range examples {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, src := range testSources(f) {
		f.Add([]byte(src))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse(src, file)
		if (cfg == nil) != diags.HasErrors() {
			t.Errorf("Parse returned config %v with diagnostics %v: want a config if and only if there is no error", cfg != nil, diags)
		}
		for _, d := range diags {
			checkDiagnostic(t, src, file, d)
		}
	})
}

// checkDiagnostic checks what FuzzParse says of one diagnostic of src.
func checkDiagnostic(t *testing.T, src []byte, file string, d *hcl.Diagnostic) {
	t.Helper()
	line := FormatDiagnostic(d)
	if strings.ContainsAny(line, "\n\r") {
		t.Errorf("a diagnostic of more than one line: %q", line)
	}
	if d.Severity != hcl.DiagError {
		return
	}
	s := d.Subject
	if s == nil {
		t.Errorf("an error without a position: %s", line)
		return
	}
	if s.Filename != file {
		t.Errorf("an error in file %q, want %q: %s", s.Filename, file, line)
	}
	if s.Start.Byte < 0 || s.Start.Byte > len(src) || s.End.Byte < s.Start.Byte || s.End.Byte > len(src) {
		t.Errorf("an error at bytes %d-%d of a %d-byte input: %s", s.Start.Byte, s.End.Byte, len(src), line)
		return
	}
	if s.Start.Column < 1 {
		t.Errorf("an error at column %d: %s", s.Start.Column, line)
	}
	if want := 1 + bytes.Count(src[:s.Start.Byte], []byte("\n")); s.Start.Line != want {
		t.Errorf("an error at line %d, byte %d, which is on line %d: %s", s.Start.Line, s.Start.Byte, want, line)
	}
}

// testSources returns the configurations the package's tests parse: every
// string literal given as a src field or assigned to src.
func testSources(tb testing.TB) []string {
	tests, err := filepath.Glob("*_test.go")
	if err != nil {
		tb.Fatal(err)
	}
	var srcs []string
	add := func(name ast.Expr, value ast.Expr) {
		id, ok := name.(*ast.Ident)
		lit, isLit := value.(*ast.BasicLit)
		if !ok || id.Name != "src" || !isLit || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			tb.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	fset := token.NewFileSet()
	for _, path := range tests {
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				add(n.Key, n.Value)
			case *ast.AssignStmt:
				if len(n.Lhs) == 1 && len(n.Rhs) == 1 {
					add(n.Lhs[0], n.Rhs[0])
				}
			}
			return true
		})
	}
	if len(srcs) < 25 {
		tb.Fatalf("%d configurations in the tests, expected more", len(srcs))
	}
	return srcs
}
