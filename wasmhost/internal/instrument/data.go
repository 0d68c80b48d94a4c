package instrument

// Data segments: the Go linker writes a module's initialised memory as tens
// of thousands of small segments (39,431 in the redact example, 25 bytes
// each on average, with gaps of about 24 zero bytes between them), and the
// runtime decodes, keeps and copies each of them. A module whose data
// segments all write bytes at constant offsets can have them merged into
// fewer segments that write the same memory: the zero bytes of a short gap
// between two runs of written bytes are written too, which a fresh memory
// holds already. For the quickstart's four Go modules this took about 12 MB
// off the peak memory of a 100,000-record run and about 10% off the CPU of
// a one-record run, which is mostly loading (wasmhost's RATIONALE.md,
// "Merged data segments", has the measurements).

const (
	// mergeGap is the longest run of unwritten bytes a merged segment
	// spans (and writes zeros to). Go's gaps are mostly 17 to 32 bytes;
	// longer runs of zeros are left out of the segments, as the linker
	// left them.
	mergeGap = 32
	// mergeSpan bounds the memory between the lowest and the highest byte
	// the segments write, which merging lays out in a buffer of that
	// size: segments spread wider are left as they are.
	mergeSpan = 64 << 20
)

// mergeData returns the content of data section s with its segments merged
// as described above, or s's content as it is when merging could change
// what a guest sees: when the memory is imported (its initial bytes are
// not known to be zero), when the module has a data count section (its
// code may then name segments by index, with memory.init or data.drop),
// when a segment is passive, for another memory, has an offset that is not
// an i32.const, or is empty (an empty segment still traps when its offset
// is out of bounds), or when the segments span more than mergeSpan bytes.
// Segments that overlap are laid out in order, so the later one wins, as
// when they are applied. The merged segments write the same bytes within
// the same bounds, so a module whose segments do not fit its memory still
// fails to instantiate.
func mergeData(s section, importedMemory, dataCount bool) []byte {
	if importedMemory || dataCount {
		return s.content
	}
	type segment struct {
		offset uint32
		init   []byte
	}
	var segs []segment
	lo, hi := uint64(1<<32), uint64(0)
	b := s.content
	pos := 0
	// uleb and sleb32 read LEB128 numbers; ok turns false on anything
	// unusual, and merging is then not attempted.
	ok := true
	uleb := func() uint64 {
		var v uint64
		for shift := 0; ok; shift += 7 {
			if pos >= len(b) || shift > 63 {
				ok = false
				return 0
			}
			c := b[pos]
			pos++
			v |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return v
			}
		}
		return 0
	}
	sleb32 := func() uint32 {
		var v int64
		shift := 0
		for ; ok; shift += 7 {
			if pos >= len(b) || shift > 28 {
				ok = false
				return 0
			}
			c := b[pos]
			pos++
			v |= int64(c&0x7f) << shift
			if c&0x80 == 0 {
				if c&0x40 != 0 {
					v -= 1 << (shift + 7)
				}
				break
			}
		}
		return uint32(v)
	}
	n := uleb()
	if !ok || n < 2 || n > uint64(len(b)) {
		return s.content
	}
	for range n {
		if uleb() != 0 || !ok || pos >= len(b) || b[pos] != 0x41 { // active, memory 0, i32.const
			return s.content
		}
		pos++
		off := sleb32()
		if !ok || pos >= len(b) || b[pos] != 0x0b { // end
			return s.content
		}
		pos++
		size := uleb()
		if !ok || size == 0 || size > uint64(len(b)-pos) {
			return s.content
		}
		segs = append(segs, segment{off, b[pos : pos+int(size)]})
		pos += int(size)
		lo, hi = min(lo, uint64(off)), max(hi, uint64(off)+size)
	}
	if pos != len(b) || hi-lo > mergeSpan {
		return s.content
	}
	// The bytes the segments write, and which ones they write (a bit
	// per byte: this is garbage once the section is written).
	image := make([]byte, hi-lo)
	bits := make([]uint64, (hi-lo+63)/64)
	for _, sg := range segs {
		at := uint64(sg.offset) - lo
		copy(image[at:], sg.init)
		for i := at; i < at+uint64(len(sg.init)); i++ {
			bits[i/64] |= 1 << (i % 64)
		}
	}
	size := int(hi - lo)
	written := func(i int) bool { return bits[i/64]&(1<<(i%64)) != 0 }
	// The runs of written bytes, joined across gaps of at most mergeGap
	// unwritten ones.
	var body []byte
	count := uint64(0)
	for i := 0; i < size; {
		if !written(i) {
			i++
			continue
		}
		start, end := i, i+1
		for j := end; j < size; {
			if written(j) {
				j++
				end = j
				continue
			}
			next := j
			for next < size && !written(next) && next-end <= mergeGap {
				next++
			}
			if next == size || !written(next) {
				break // the gap is too long, or runs to the end
			}
			j = next
		}
		body = append(body, 0x00, 0x41)
		body = appendSLEB(body, int64(int32(uint32(lo)+uint32(start))))
		body = append(body, 0x0b)
		body = appendU32(body, uint32(end-start))
		body = append(body, image[start:end]...)
		count++
		i = end
	}
	if count >= n {
		return s.content
	}
	return append(appendU32(nil, uint32(count)), body...)
}
