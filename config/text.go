package config

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The deepest nesting (brackets, parentheses, braces, quotes and
// interpolations, template directives) and the most operators in one
// expression a configuration may have. HCL parses and evaluates
// expressions recursively, so a file nested tens of thousands of levels
// deep exhausts the goroutine stack, which is a fatal error Go cannot
// recover from; a real configuration stays far below both limits.
const (
	maxNesting   = 1000
	maxOperators = 10000
)

// checkText reports what makes src unreadable as an HCL configuration before
// HCL parses it, at its position: a NUL byte, which HCL's scanner takes for
// the end of the input, so that the rest of the file would be silently
// ignored (and which a text file does not hold: a WebAssembly module or
// another binary given as --config has them); a byte that is not UTF-8,
// which HCL's scanner may take together with the newline after it, so that
// its diagnostics give later lines the wrong line numbers; and nesting
// beyond maxNesting
// or maxOperators. It returns at most one diagnostic.
func checkText(src []byte, filename string) hcl.Diagnostics {
	if i := bytes.IndexByte(src, 0); i >= 0 {
		rng := byteRange(src, filename, i)
		detail := "The file holds a NUL byte (0x00) here: a configuration file is HCL text, and this looks like a binary file."
		if bytes.HasPrefix(src, []byte("\x00asm")) {
			detail = "The file is a WebAssembly module, not an HCL configuration: name a module in a plugin block's module attribute, and give --config the .hcl file."
		}
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Not a text file", Detail: detail, Subject: &rng}}
	}
	if !utf8.Valid(src) {
		i := invalidUTF8(src)
		rng := byteRange(src, filename, i)
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Not UTF-8 text",
			Detail:  fmt.Sprintf("The file holds a byte (0x%02x) that is not UTF-8 here: a configuration file is UTF-8 text.", src[i]),
			Subject: &rng}}
	}
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	// open holds, for each open bracket, quote or interpolation, the kind
	// of its opening token and the operators read at its level since the
	// last separator; directives counts the open %{if} and %{for}.
	type level struct {
		open hclsyntax.TokenType
		ops  int
	}
	open := []level{{open: hclsyntax.TokenNil}}
	directives, ops := 0, 0
	for i, t := range toks {
		top := &open[len(open)-1]
		switch t.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote,
			hclsyntax.TokenOHeredoc, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			open = append(open, level{open: t.Type})
			if t.Type == hclsyntax.TokenTemplateControl && i+1 < len(toks) && toks[i+1].Type == hclsyntax.TokenIdent {
				switch string(toks[i+1].Bytes) {
				case "if", "for":
					directives++
				case "endif", "endfor":
					directives = max(directives-1, 0)
				}
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCQuote,
			hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if len(open) > 1 {
				ops -= top.ops
				open = open[:len(open)-1]
			}
		case hclsyntax.TokenPlus, hclsyntax.TokenMinus, hclsyntax.TokenStar, hclsyntax.TokenSlash,
			hclsyntax.TokenPercent, hclsyntax.TokenBang, hclsyntax.TokenAnd, hclsyntax.TokenOr,
			hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq,
			hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenQuestion:
			top.ops++
			ops++
		case hclsyntax.TokenComma, hclsyntax.TokenEqual, hclsyntax.TokenFatArrow:
			ops -= top.ops
			top.ops = 0
		case hclsyntax.TokenNewline:
			// Newlines end an expression only where the parser does
			// not skip them: at the top, in blocks and objects.
			if top.open == hclsyntax.TokenNil || top.open == hclsyntax.TokenOBrace {
				ops -= top.ops
				top.ops = 0
			}
		}
		if depth := len(open) - 1 + directives; depth > maxNesting {
			rng := t.Range
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Nesting too deep",
				Detail:  "Brackets, braces, parentheses, quotes, interpolations and template directives are nested more than 1000 levels deep here; a configuration may nest at most 1000.",
				Subject: &rng}}
		}
		if ops > maxOperators {
			rng := t.Range
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Expression too long",
				Detail:  "This expression has more than 10000 operators; a configuration may have at most 10000 in one expression.",
				Subject: &rng}}
		}
	}
	return nil
}

// invalidUTF8 is the offset of the first byte of src that is not UTF-8, or
// len(src).
func invalidUTF8(src []byte) int {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(src)
}

// byteRange is the range of the one byte at offset i of src, with its line
// and column (in characters, as HCL counts them).
func byteRange(src []byte, filename string, i int) hcl.Range {
	line := 1 + bytes.Count(src[:i], []byte("\n"))
	lineStart := bytes.LastIndexByte(src[:i], '\n') + 1
	col := 1 + utf8.RuneCount(src[lineStart:i])
	return hcl.Range{
		Filename: filename,
		Start:    hcl.Pos{Line: line, Column: col, Byte: i},
		End:      hcl.Pos{Line: line, Column: col + 1, Byte: i + 1},
	}
}
