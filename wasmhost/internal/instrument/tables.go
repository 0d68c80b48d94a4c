package instrument

import "fmt"

// TablesError says that the tables a module defines need more elements
// than CapTables allows.
type TablesError struct {
	// Min is the sum of the minimum sizes of the module's tables.
	Min uint64
	// Limit is the limit CapTables was given.
	Limit uint32
}

func (e *TablesError) Error() string {
	return fmt.Sprintf("its tables need at least %d elements, above the limit of %d", e.Min, e.Limit)
}

// CapTables returns the module wasm with a maximum size on every table it
// defines, so that its tables together never hold more than limit
// elements, whatever table.grow asks for (a growth past a table's maximum
// fails in the guest: table.grow returns -1). A table keeps its declared
// maximum if that is smaller; the others share what the tables' minimum
// sizes leave of limit equally. Tables cost the host memory that no memory
// limit covers (wazero keeps 8 bytes per element in the Go heap), and a
// table without a maximum may grow to 2^32 - 1 elements.
//
// It returns wasm itself if the module defines no table, a *TablesError if
// the minimum sizes alone exceed limit, and an *UnsupportedError if it
// cannot read the module's sections or its table section; wasm is never
// modified. Imported tables are left alone: the host provides none.
func CapTables(wasm []byte, limit uint32) (_ []byte, err error) {
	defer recoverUnsupported(&err)
	checkMagic(wasm)
	var table *section
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		start := r.pos
		id := r.byte()
		size := r.u32()
		off := r.pos
		content := r.bytes(int(size))
		if id == secTable {
			if table != nil {
				fail(start, "two table sections")
			}
			table = &section{id: id, start: start, content: content, offset: off}
		}
	}
	if table == nil {
		return wasm, nil
	}
	type tableType struct {
		ref      byte
		min, max uint64
		hasMax   bool
	}
	r := reader{b: table.content, base: table.offset}
	n := r.u32()
	if n == 0 {
		return wasm, nil // an empty table section: nothing to bound
	}
	if int64(n) > int64(len(r.b)-r.pos) {
		r.fail(fmt.Sprintf("%d tables in %d bytes", n, len(r.b)-r.pos))
	}
	tables := make([]tableType, n)
	var sumMin uint64
	for i := range tables {
		t := &tables[i]
		pos := r.pos
		r.refType()
		t.ref = r.b[pos]
		switch flags := r.byte(); flags {
		case 0x00:
			t.min = r.leb(32)
		case 0x01:
			t.min, t.max, t.hasMax = r.leb(32), r.leb(32), true
		default:
			r.pos--
			r.fail(fmt.Sprintf("unsupported table limits flags %#x", flags))
		}
		sumMin += t.min
	}
	if !r.done() {
		r.fail("trailing bytes in the table section")
	}
	if sumMin > uint64(limit) {
		return nil, &TablesError{Min: sumMin, Limit: limit}
	}
	share := (uint64(limit) - sumMin) / uint64(len(tables))
	content := appendU32(nil, uint32(len(tables)))
	for _, t := range tables {
		max := t.min + share
		if t.hasMax && t.max < max {
			max = t.max
		}
		content = append(content, t.ref, 0x01)
		content = appendU32(content, uint32(t.min))
		content = appendU32(content, uint32(max))
	}
	out := make([]byte, 0, len(wasm)+len(content))
	out = append(out, wasm[:table.start]...)
	out = appendSection(out, secTable, content)
	return append(out, wasm[table.offset+len(table.content):]...), nil
}
