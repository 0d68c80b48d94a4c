package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountLines(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    int
	}{
		{"", 0},
		{"a", 1},
		{"a\n", 1},
		{"a\n\nb", 3},
		{"a\r\nb\r\n", 2},
		{strings.Repeat("x\n", 3<<20/2), 3 << 20 / 2}, // over one 1 MiB read
	} {
		path := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := countLines(f)
		f.Close()
		if err != nil || got != tc.want {
			t.Errorf("countLines(%.20q...) = %d, %v; want %d", tc.content, got, err, tc.want)
		}
	}
}

func TestCountUnreadPipe(t *testing.T) {
	// Input that is not a file is read on through the reader's output:
	// exactly to its end, or for at most drainFor.
	lines := make(chan []inputLine, 10)
	// Lines 4 and 5 were received by the run and not sent; the rest
	// come from the reader, in batches.
	pending := []inputLine{{line: 4}, {line: 5}}
	lines <- []inputLine{{line: 6}, {line: 7}}
	lines <- []inputLine{{line: 8}, {line: 9}, {line: 9, err: io.EOF}}
	if u := countUnread(strings.NewReader(""), pending, lines, 3, "why"); u.n != 6 || u.atLeast || u.unknown {
		t.Errorf("to the end: %+v, want 6 lines", u)
	}
	lines <- []inputLine{{line: 4}}
	lines <- []inputLine{{line: 5}}
	if u := countUnread(strings.NewReader(""), nil, lines, 3, "why"); u.n != 2 || !u.atLeast {
		t.Errorf("input still open: %+v, want at least 2 lines", u)
	} else if !strings.Contains(u.String(), "at least 2 lines") {
		t.Errorf("String() = %q", u.String())
	}
	if u := countUnread(strings.NewReader(""), nil, lines, 3, "interrupted"); !u.unknown {
		t.Errorf("after an interrupt: %+v, want not counted", u)
	}
}
