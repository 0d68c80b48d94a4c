package instrument

import (
	"fmt"
	"strings"
)

// UnsupportedError says why a module was not rewritten. The module may be
// perfectly valid: it uses something the rewriter does not decode, or it
// is malformed in a way the rewriter noticed.
type UnsupportedError struct {
	// Offset is the byte offset in the module where the problem was found.
	Offset int
	// Reason describes the problem.
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("instrument: at offset %#x: %s", e.Offset, e.Reason)
}

// Section ids of the binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// rank is the position of each known section in the order the binary format
// requires (the tag section sits between memory and global).
var rank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6, secGlobal: 7,
	secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

// External kinds of imports and exports.
const (
	externFunc   = 0
	externTable  = 1
	externMemory = 2
	externGlobal = 3
	externTag    = 4
)

// Names are the export names the rewriter adds, which the host reserves.
type Names struct {
	// Interrupt names the interrupt flag global.
	Interrupt string
	// Start names the module's start function, if it has one: the copy
	// has no start section, so that the host can call it once the
	// instance exists and its interrupt flag can be set (a start function
	// runs inside instantiation, out of the host's reach).
	Start string
	// Stack names the stack budget global (see callCosts), which is
	// negative after a call trapped for lack of budget.
	Stack string
}

// Rewrite returns a copy of the module wasm with interrupt checks and a
// stack budget (see the package documentation), exporting what it adds
// under names. It fails with an *UnsupportedError if the module uses
// something the rewriter does not understand or already exports one of
// the names; wasm is never modified.
func Rewrite(wasm []byte, names Names) (_ []byte, err error) {
	defer recoverUnsupported(&err)
	return rewrite(wasm, names), nil
}

// recoverUnsupported, deferred by the functions that read a module, turns
// a panic with an *UnsupportedError, how the readers report a problem
// (which keeps the many small readers simple), into *err; other panics go
// on.
func recoverUnsupported(err *error) {
	if r := recover(); r != nil {
		ue, ok := r.(*UnsupportedError)
		if !ok {
			panic(r)
		}
		*err = ue
	}
}

// checkMagic fails unless wasm starts with the WebAssembly magic number and
// has room for the version after it.
func checkMagic(wasm []byte) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		fail(0, "not a WebAssembly module")
	}
}

type section struct {
	id      byte
	start   int // offset of the id byte
	content []byte
	offset  int // offset of content
}

func rewrite(wasm []byte, names Names) []byte {
	checkMagic(wasm)
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		fail(4, fmt.Sprintf("binary format version %x is not 1 (components are not supported)", wasm[4:8]))
	}
	var secs []section
	last := 0
	for r := (reader{b: wasm, pos: 8}); !r.done(); {
		start := r.pos
		id := r.byte()
		size := r.u32()
		off := r.pos
		content := r.bytes(int(size))
		if id != secCustom {
			rk, ok := rank[id]
			if !ok {
				fail(start, fmt.Sprintf("unknown section id %d", id))
			}
			if rk <= last {
				fail(start, fmt.Sprintf("section %d out of order", id))
			}
			last = rk
		}
		secs = append(secs, section{id: id, start: start, content: content, offset: off})
	}

	// The index of the new globals is the number of globals before them.
	var globals uint32
	hasMemory, importedMemory, dataCount := false, false, false
	for _, s := range secs {
		switch s.id {
		case secDataCount:
			dataCount = true
		case secImport:
			g, m := importedGlobals(s)
			globals += g
			hasMemory = hasMemory || m
			importedMemory = m
		case secGlobal:
			r := reader{b: s.content, base: s.offset}
			globals += r.u32()
		case secMemory:
			r := reader{b: s.content, base: s.offset}
			hasMemory = hasMemory || r.u32() > 0
		}
	}
	if !hasMemory {
		fail(8, "the module has no memory, which the checks use to yield to the Go scheduler")
	}
	if globals > ^uint32(0)-3 {
		fail(8, "too many globals")
	}
	check := checkCode(globals, globals+1)
	// The exports to add: the interrupt flag, and the start function.
	exports := []export{{names.Interrupt, externGlobal, globals}, {names.Stack, externGlobal, globals + 2}}
	for _, s := range secs {
		if s.id == secStart {
			r := reader{b: s.content, base: s.offset}
			exports = append(exports, export{names.Start, externFunc, r.u32()})
			if !r.done() {
				r.fail("trailing bytes in the start section")
			}
		}
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	haveGlobal, haveExport := false, false
	// insertMissing adds the global or export section if the module has
	// none and the next section must come after it.
	insertMissing := func(nextRank int) {
		if !haveGlobal && nextRank > rank[secGlobal] {
			out = appendSection(out, secGlobal, appendGlobals(appendU32(nil, 3)))
			haveGlobal = true
		}
		if !haveExport && nextRank > rank[secExport] {
			out = appendSection(out, secExport, appendExports(appendU32(nil, uint32(len(exports))), exports))
			haveExport = true
		}
	}
	for _, s := range secs {
		switch s.id {
		case secCustom:
			r := reader{b: s.content, base: s.offset}
			if name := r.name(); strings.HasPrefix(name, ".debug_") {
				continue
			}
			out = append(out, wasm[s.start:s.offset+len(s.content)]...)
			continue
		case secGlobal:
			insertMissing(rank[s.id])
			r := reader{b: s.content, base: s.offset}
			n := r.u32()
			out = appendSection(out, secGlobal, appendGlobals(append(appendU32(nil, n+3), r.rest()...)))
			haveGlobal = true
		case secExport:
			insertMissing(rank[s.id])
			out = appendSection(out, secExport, rewriteExports(s, exports, names.Interrupt, names.Start, names.Stack))
			haveExport = true
		case secStart:
			// Exported as names.Start instead (see exports).
			insertMissing(rank[s.id])
		case secCode:
			insertMissing(rank[s.id])
			calls := newCallCosts(secs, globals+2)
			code, exceptions := rewriteCode(s, check, calls)
			if exceptions {
				// A caught exception skips the restores after the calls
				// it unwinds: such a module gets no stack budget.
				code, _ = rewriteCode(s, check, nil)
			}
			out = appendSection(out, secCode, code)
		case secData:
			insertMissing(rank[s.id])
			out = appendSection(out, secData, mergeData(s, importedMemory, dataCount))
		default:
			insertMissing(rank[s.id])
			out = append(out, wasm[s.start:s.offset+len(s.content)]...)
		}
	}
	insertMissing(1 << 30)
	return out
}

// Budget is the number of checks between two yields to the Go scheduler,
// which is also the largest number of checks a guest passes after the
// interrupt global was set. See checkCode.
const Budget = 4096

// checkCode returns the instructions inserted at function entries (unless
// needsEntryCheck says the function's first loop comes first) and loop
// headers, given the indices of the interrupt and budget globals:
//
//	global.get $budget
//	i32.const 1
//	i32.sub
//	global.set $budget
//	global.get $budget
//	i32.eqz
//	if                      ;; once every Budget checks
//	  i32.const Budget
//	  global.set $budget    ;; first, so that a trap leaves a full budget
//	  global.get $interrupt
//	  if
//	    unreachable
//	  end
//	  i32.const 0
//	  memory.grow 0         ;; a no-op that runs Go code in the host
//	  drop
//	end
//
// Compiled code cannot be preempted by the Go runtime: a guest that never
// leaves it would block every stop-the-world phase of the garbage
// collector, and with it the goroutine that is to set the interrupt global.
// memory.grow is one of the instructions wazero implements in Go, so
// growing by zero pages now and then makes the guest preemptible at a cost
// of one exit per Budget checks. The budget lives in a global of its own
// because the guest writes it: a host store there could be lost.
func checkCode(interrupt, budget uint32) []byte {
	b := appendU32([]byte{0x23}, budget)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	b = appendU32(b, budget)
	b = append(b, 0x23)
	b = appendU32(b, budget)
	b = append(b, 0x45, 0x04, 0x40, 0x41)
	b = appendSLEB(b, Budget)
	b = append(b, 0x24)
	b = appendU32(b, budget)
	b = append(b, 0x23)
	b = appendU32(b, interrupt)
	return append(b, 0x04, 0x40, 0x00, 0x0b, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b)
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// importedGlobals counts the global imports of an import section and says
// whether it imports a memory, checking the types it has to read on the
// way.
func importedGlobals(s section) (n uint32, memory bool) {
	r := reader{b: s.content, base: s.offset}
	for range r.u32() {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case externFunc:
			r.u32()
		case externTable:
			r.refType()
			r.limits(false)
		case externMemory:
			r.limits(true)
			memory = true
		case externGlobal:
			r.valType()
			r.byte()
			n++
		case externTag:
			r.byte()
			r.u32()
		default:
			r.fail(fmt.Sprintf("unknown import kind %#x", kind))
		}
	}
	if !r.done() {
		r.fail("trailing bytes in the import section")
	}
	return n, memory
}

// appendGlobals appends the interrupt global, a mutable i32 initialised to
// zero, the budget global, a mutable i32 initialised to Budget, and the
// stack global, a mutable i32 initialised to StackBudget.
func appendGlobals(b []byte) []byte {
	b = append(b, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41)
	b = append(appendSLEB(b, Budget), 0x0b, 0x7f, 0x01, 0x41)
	return append(appendSLEB(b, StackBudget), 0x0b)
}

// export is an export the rewriter adds.
type export struct {
	name  string
	kind  byte
	index uint32
}

func appendExports(b []byte, exports []export) []byte {
	for _, e := range exports {
		b = appendU32(b, uint32(len(e.name)))
		b = append(b, e.name...)
		b = append(b, e.kind)
		b = appendU32(b, e.index)
	}
	return b
}

// rewriteExports returns the content of the export section with the
// exports added. It refuses a module that exports one of the reserved
// names itself.
func rewriteExports(s section, exports []export, reserved ...string) []byte {
	r := reader{b: s.content, base: s.offset}
	n := r.u32()
	body := r.pos
	for range n {
		at := r.pos
		name := r.name()
		for _, res := range reserved {
			if name == res {
				fail(s.offset+at, fmt.Sprintf("the module already exports %q, which the host reserves", name))
			}
		}
		r.byte()
		r.u32()
	}
	if !r.done() {
		r.fail("trailing bytes in the export section")
	}
	if n > ^uint32(0)-uint32(len(exports)) {
		r.fail("too many exports")
	}
	out := appendU32(nil, n+uint32(len(exports)))
	out = append(out, s.content[body:]...)
	return appendExports(out, exports)
}

// rewriteCode returns the content of the code section with check inserted
// at every function entry and at the start of every loop body, and, unless
// calls is nil, the stack budget charged around every call of a defined
// function (see callCosts). exceptions reports a try_table: the caller
// then rewrites again without the budget.
func rewriteCode(s section, check []byte, calls *callCosts) (_ []byte, exceptions bool) {
	r := reader{b: s.content, base: s.offset}
	n := r.u32()
	// Every body is at least two bytes, which bounds n before it sizes
	// anything.
	if int64(n) > int64(len(s.content)) {
		r.fail(fmt.Sprintf("%d function bodies cannot fit in %d bytes", n, len(s.content)))
	}
	out := appendU32(make([]byte, 0, len(s.content)+len(s.content)/8+int(n)*len(check)), n)
	var body []byte
	for range n {
		size := r.u32()
		fr := reader{b: r.bytes(int(size)), base: s.offset + r.pos - int(size)}
		var exc bool
		body, exc = rewriteBody(body[:0], &fr, check, calls)
		exceptions = exceptions || exc
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !r.done() {
		r.fail("trailing bytes in the code section")
	}
	return out, exceptions
}

// rewriteBody appends the rewritten function body read from r to out, and
// reports whether it has a try_table.
func rewriteBody(out []byte, r *reader, check []byte, calls *callCosts) (_ []byte, exceptions bool) {
	for range r.u32() {
		r.u32()
		r.valType()
	}
	out = append(out, r.b[:r.pos]...)
	if needsEntryCheck(*r) {
		out = append(out, check...)
	}
	copied := r.pos
	depth := 1 // the function body is a block that ends with its own end
	for depth > 0 {
		op := r.byte()
		switch op {
		case 0x02, 0x04: // block, if
			r.blockType()
			depth++
		case 0x03: // loop
			r.blockType()
			depth++
			out = append(out, r.b[copied:r.pos]...)
			out = append(out, check...)
			copied = r.pos
		case 0x10, 0x11, 0x14: // call, call_indirect, call_ref
			at := r.pos - 1
			cost := int64(0)
			if calls != nil {
				cost = calls.of(op, *r)
			}
			r.immediates(op)
			if cost > 0 {
				out = append(out, r.b[copied:at]...)
				out = append(out, calls.charge(cost)...)
				out = append(out, r.b[at:r.pos]...)
				out = append(out, calls.restore(cost)...)
				copied = r.pos
			}
		case 0x1f: // try_table
			exceptions = true
			r.blockType()
			r.catchClauses()
			depth++
		case 0x0b: // end
			depth--
		default:
			r.immediates(op)
		}
	}
	if !r.done() {
		r.fail("bytes after the end of the function body")
	}
	return append(out, r.b[copied:]...), exceptions
}

// needsEntryCheck reports whether a function body, read from r (a copy),
// needs the check at its entry. It does not if every call of the function
// reaches the header of a loop, and so a check, before it can call, branch
// or return: the body starts with straight-line code and block openings,
// then a loop. Every call then still passes at least one check, so endless
// recursion is stopped as surely, and a call costs one check instead of
// two. Go's wasm code is built that way: each function is a loop around a
// jump table.
func needsEntryCheck(r reader) bool {
	for {
		switch op := r.byte(); op {
		case 0x03: // loop
			return false
		case 0x02: // block: entered in sequence
			r.blockType()
		case 0x00, 0x04, 0x05, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x1f, 0xd5, 0xd6:
			// unreachable, if, else, throw, throw_ref, end, branches,
			// return, calls, try_table, br_on_null, br_on_non_null
			return true
		default:
			r.immediates(op)
		}
	}
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(content)))
	return append(out, content...)
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func fail(offset int, reason string) {
	panic(&UnsupportedError{Offset: offset, Reason: reason})
}
