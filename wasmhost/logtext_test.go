package wasmhost

import "testing"

// TestLogText: what a plugin logs reaches kpipe's output as printable text,
// whatever bytes it wrote; plain text is unchanged.
func TestLogText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, with\ttab", "plain text, with\ttab"},
		{"café ✓", "café ✓"},
		{"a\x00b", `a\x00b`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"two\nlines\r", `two\nlines\r`},
		{"bad \xff utf-8", `bad \xff utf-8`},
		{"sep\u2028", `sep\u2028`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := logText([]byte(tt.in)); got != tt.want {
			t.Errorf("logText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
