package config

import (
	"strings"
	"testing"
)

// TestParseText checks what checkText refuses before HCL parses a file: NUL
// bytes (HCL's scanner stops at the first, so the rest of the file was
// ignored without a word), and nesting or operator chains deep enough to
// exhaust the goroutine stack in HCL's recursive parser and evaluator (a
// fatal error, with a stack trace, before the check). Each is one
// diagnostic at its position; files just within the limits parse.
func TestParseText(t *testing.T) {
	topic := func(expr string) string { return "pipeline \"p\" {\n  topic = " + expr + "\n}\n" }
	nested := func(open, inner, closing string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(closing, n)
	}
	tests := []struct {
		name string
		src  string
		want string // "" for a file that parses
	}{
		{"NUL hides the rest", "pipeline \"p\" {}\n\x00\nkafka {\n  acks = \"bogus\"\n}\n",
			"2:1: error: Not a text file: The file holds a NUL byte (0x00) here: a configuration file is HCL text, and this looks like a binary file."},
		{"NUL in a block", "pipeline \"p\" {\n  topic = \"t\"\x00\n}\n",
			"2:14: error: Not a text file: The file holds a NUL byte (0x00) here"},
		{"NUL after UTF-8", "# é\x00\npipeline \"p\" {}\n",
			"1:4: error: Not a text file"},
		// HCL's scanner took the newline after the invalid byte
		// into it and reported the error below on line 1.
		{"invalid UTF-8", "A0000{A0000000000\xdd\n0=", "1:18: error: Not UTF-8 text: The file holds a byte (0xdd) that is not UTF-8 here"},
		{"WebAssembly module", "\x00asm\x01\x00\x00\x00",
			"1:1: error: Not a text file: The file is a WebAssembly module, not an HCL configuration: name a module in a plugin block's module attribute, and give --config the .hcl file."},
		{"brackets", topic(nested("[", "1", "]", 100_000)),
			"2:1010: error: Nesting too deep: Brackets, braces, parentheses, quotes, interpolations and template directives are nested more than 1000 levels deep here; a configuration may nest at most 1000."},
		{"parentheses", topic(nested("(", "\"t\"", ")", 100_000)), "2:1010: error: Nesting too deep"},
		{"objects", topic(nested("{a=", "1", "}", 100_000)), "2:3008: error: Nesting too deep"},
		{"function calls", topic(nested("env(", "\"x\"", ")", 100_000)), "2:4010: error: Nesting too deep"},
		{"interpolations", topic(nested("\"${", "1", "}\"", 100_000)), "2:1509: error: Nesting too deep"},
		{"directives", topic("\"" + nested("%{if true}", "1", "%{endif}", 100_000) + "\""), "2:9982: error: Nesting too deep"},
		{"unary operators", topic(strings.Repeat("!", 1_000_000) + "true"),
			"2:10011: error: Expression too long: This expression has more than 10000 operators; a configuration may have at most 10000 in one expression."},
		{"binary operators", topic(strings.Repeat("1+", 1_000_000) + "1"), "2:20012: error: Expression too long"},
		{"operators over lines", topic("(" + strings.Repeat("1+\n", 1_000_000) + "1)"), "10002:2: error: Expression too long"},
		// The block, 998 parentheses and the quote: 1000 levels.
		{"nesting within the limit", topic(nested("(", "\"t\"", ")", 998)), ""},
		{"operators within the limit", topic("\"${" + strings.Repeat("1+", 9000) + "1}\""), ""},
		{"many operators in many expressions", "pipeline \"p\" {\n  topic = \"t\"\n  interceptor \"i\" {\n    builtin = \"json\"\n  }\n}\n" +
			"kafka {\n  retries = " + strings.Repeat("1+", 9000) + "1\n  max_in_flight = " + strings.Repeat("1+", 4) + "1\n  idempotence = false\n}\n", "4:15: error: Invalid builtin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]byte(tt.src), "k.hcl")
			var got []string
			for _, d := range diags {
				got = append(got, strings.TrimPrefix(FormatDiagnostic(d), "k.hcl:"))
			}
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("got %q, want no diagnostics", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Fatalf("got %q, want one diagnostic starting %q", got, tt.want)
			}
		})
	}
}
