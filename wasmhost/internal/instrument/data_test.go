package instrument

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kpipe/kpipe/internal/plugintest"
)

// dataSection builds a data section of active segments for memory 0 at
// i32.const offsets.
func dataSection(segs ...any) []byte {
	b := appendU32(nil, uint32(len(segs)/2))
	for i := 0; i < len(segs); i += 2 {
		b = append(b, 0x00, 0x41)
		b = appendSLEB(b, int64(int32(segs[i].(int))))
		b = append(b, 0x0b)
		init := []byte(segs[i+1].(string))
		b = appendU32(b, uint32(len(init)))
		b = append(b, init...)
	}
	return b
}

// memoryImage applies the active segments of a data section (as
// dataSection writes them) to a zeroed memory of size bytes, in order.
func memoryImage(t *testing.T, content []byte, size int) []byte {
	t.Helper()
	mem := make([]byte, size)
	r := reader{b: content}
	for range r.u32() {
		if flag := r.u32(); flag != 0 {
			t.Fatalf("segment flag %d", flag)
		}
		if op := r.byte(); op != 0x41 {
			t.Fatalf("offset opcode %#x", op)
		}
		// A signed LEB128 offset, sign-extended from its last byte.
		var off int64
		shift := 0
		for {
			c := r.byte()
			off |= int64(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				if c&0x40 != 0 {
					off -= 1 << shift
				}
				break
			}
		}
		r.byte() // end
		init := r.bytes(int(r.u32()))
		copy(mem[uint32(off):], init)
	}
	return mem
}

func countSegments(content []byte) uint32 {
	r := reader{b: content}
	return r.u32()
}

func TestMergeData(t *testing.T) {
	// Runs 100-103 and 110-112 are 7 bytes apart: one segment, with the
	// later segment at 101 winning; 200 is 87 bytes further: its own.
	in := dataSection(100, "abc", 110, "de", 200, "xyz", 101, "Q")
	got := mergeData(section{content: in}, false, false)
	if n := countSegments(got); n != 2 {
		t.Errorf("%d segments, want 2", n)
	}
	want := memoryImage(t, in, 300)
	if img := memoryImage(t, got, 300); !bytes.Equal(img, want) {
		t.Errorf("merged memory differs:\n got %q\nwant %q", img[100:203], want[100:203])
	}
	if !bytes.Equal(memoryImage(t, got, 300)[100:112], []byte("aQc\x00\x00\x00\x00\x00\x00\x00de")) {
		t.Errorf("merged run %q", memoryImage(t, got, 300)[100:112])
	}
	// An offset that is a negative i32 is an unsigned one above 2^31.
	high := dataSection(-16, "abcd", -8, "efgh")
	if got := mergeData(section{content: high}, false, false); countSegments(got) != 1 {
		t.Errorf("segments at -16 and -8: %d segments, want 1", countSegments(got))
	}

	unchanged := []struct {
		name                    string
		content                 []byte
		importedMemory, dataCnt bool
	}{
		{"imported memory", dataSection(0, "a", 2, "b"), true, false},
		{"data count section", dataSection(0, "a", 2, "b"), false, true},
		{"one segment", dataSection(0, "ab"), false, false},
		{"empty segment", dataSection(0, "a", 2, ""), false, false},
		{"passive segment", append(dataSection(0, "a", 2, "b")[:0:0], 2, 0x01, 1, 'x', 0x00, 0x41, 0x00, 0x0b, 1, 'y'), false, false},
		{"global offset", []byte{2, 0x00, 0x23, 0x00, 0x0b, 1, 'x', 0x00, 0x41, 0x00, 0x0b, 1, 'y'}, false, false},
		{"spread too wide", dataSection(0, "a", mergeSpan+1, "b"), false, false},
		{"nothing to merge", dataSection(0, "a", 100, "b"), false, false},
		{"truncated", dataSection(0, "a", 2, "bcd")[:12], false, false},
	}
	for _, tt := range unchanged {
		if got := mergeData(section{content: tt.content}, tt.importedMemory, tt.dataCnt); !bytes.Equal(got, tt.content) {
			t.Errorf("%s: merged, want the section as it is", tt.name)
		}
	}
}

// The repository's Go guests, rewritten: far fewer segments, the same
// memory.
func TestMergeDataGoGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go guests")
	}
	for _, dir := range []string{"examples/plugins/redact", "wasmhost/testdata/goguests/sdkguest"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			wasm, err := os.ReadFile(plugintest.GoPlugin(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Rewrite(wasm, Names{Interrupt: "kpipe.interrupt", Start: "kpipe.start", Stack: "kpipe.stack"})
			if err != nil {
				t.Fatal(err)
			}
			before, after := sectionContent(t, wasm, secData), sectionContent(t, out, secData)
			nb, na := countSegments(before), countSegments(after)
			if na*100 > nb {
				t.Errorf("%d segments before, %d after: want at most 1%%", nb, na)
			}
			const size = 64 << 20
			if !bytes.Equal(memoryImage(t, before, size), memoryImage(t, after, size)) {
				t.Error("the merged segments write another memory")
			}
			t.Logf("%d segments (%d bytes) -> %d (%d bytes)", nb, len(before), na, len(after))
		})
	}
}

// sectionContent returns the content of wasm's section id.
func sectionContent(t *testing.T, wasm []byte, id byte) []byte {
	t.Helper()
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		sid := r.byte()
		content := r.bytes(int(r.u32()))
		if sid == id {
			return content
		}
	}
	t.Fatalf("no section %d", id)
	return nil
}
