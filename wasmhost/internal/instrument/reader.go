package instrument

import "fmt"

// reader decodes the binary format. Every read that runs past the end, and
// every value the rewriter does not understand, panics with an
// *UnsupportedError (recovered by Rewrite).
type reader struct {
	b    []byte
	pos  int
	base int // offset of b in the module, for error messages
	// typedRefs accepts the typed function references that wazero decodes
	// (value types 0x63 and 0x64 with a heap type, heap type indices),
	// which the rewriter refuses.
	typedRefs bool
}

func (r *reader) fail(reason string) {
	fail(r.base+r.pos, reason)
}

func (r *reader) done() bool { return r.pos >= len(r.b) }

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(fmt.Sprintf("length %d runs past the end", n))
	}
	b := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) rest() []byte {
	b := r.b[r.pos:]
	r.pos = len(r.b)
	return b
}

// leb reads an unsigned or signed LEB128 number of at most bits bits and
// returns its unsigned value (for signed numbers, the low bits).
func (r *reader) leb(bits int) uint64 {
	var v uint64
	maxBytes := (bits + 6) / 7
	for i := 0; ; i++ {
		if i == maxBytes {
			r.fail(fmt.Sprintf("LEB128 number longer than %d bytes", maxBytes))
		}
		c := r.byte()
		if i < 10 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.leb(32)) }

// name reads a length-prefixed name.
func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// Value types the rewriter accepts: numbers, v128 and the two MVP reference
// types. Typed references (0x63, 0x64) carry a heap type and are refused.
func isValType(c byte) bool {
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func (r *reader) valType() {
	if c := r.byte(); r.typedRefs && (c == 0x63 || c == 0x64) {
		r.heapType()
	} else if !isValType(c) {
		r.pos--
		r.fail(fmt.Sprintf("unsupported value type %#x", c))
	}
}

func (r *reader) refType() {
	if c := r.byte(); r.typedRefs && (c == 0x63 || c == 0x64) {
		r.heapType()
	} else if c != 0x70 && c != 0x6f {
		r.pos--
		r.fail(fmt.Sprintf("unsupported reference type %#x", c))
	}
}

// limits reads table or memory limits. Shared memories (threads) are
// accepted; 64-bit memories and tables are refused.
func (r *reader) limits(memory bool) {
	flags := r.byte()
	switch {
	case flags == 0x00:
		r.u32()
	case flags == 0x01:
		r.u32()
		r.u32()
	case memory && flags == 0x03:
		r.u32()
		r.u32()
	default:
		r.pos--
		r.fail(fmt.Sprintf("unsupported limits flags %#x", flags))
	}
}

// blockType reads the type of a block, loop, if or try_table: empty, one
// value type, or a type index (a non-negative s33).
func (r *reader) blockType() {
	c := r.byte()
	if c == 0x40 || isValType(c) {
		return
	}
	if r.typedRefs && (c == 0x63 || c == 0x64) {
		r.heapType()
		return
	}
	r.pos--
	// A type index: an s33 that must not be negative. Its sign is bit 6 of
	// its last byte.
	for i := 0; ; i++ {
		if i == 5 {
			r.fail("block type longer than 5 bytes")
		}
		c := r.byte()
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				r.pos--
				r.fail(fmt.Sprintf("unsupported block type (negative s33 ending in %#x)", c))
			}
			return
		}
	}
}

// memarg reads the alignment and offset of a memory access. Bit 6 of the
// alignment announces a memory index (multi-memory).
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.leb(64)
}

// immediates skips the immediates of every instruction except the block
// instructions and end, which rewriteBody handles.
func (r *reader) immediates(op byte) {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0f, op == 0x0a, // unreachable nop else return throw_ref
		op == 0x1a, op == 0x1b, // drop select
		op >= 0x45 && op <= 0xc4,           // numeric instructions and sign extension
		op == 0xd1, op == 0xd3, op == 0xd4: // ref.is_null ref.eq ref.as_non_null
	case op == 0x08, // throw tag
		op == 0x0c, op == 0x0d, // br br_if
		op == 0x10, op == 0x12, // call return_call
		op == 0x14, op == 0x15, // call_ref return_call_ref
		op >= 0x20 && op <= 0x26, // local.*, global.*, table.get/set
		op == 0x3f, op == 0x40,   // memory.size memory.grow
		op == 0xd2,             // ref.func
		op == 0xd5, op == 0xd6: // br_on_null br_on_non_null
		r.u32()
	case op == 0x0e: // br_table
		for range r.u32() {
			r.u32()
		}
		r.u32()
	case op == 0x11, op == 0x13: // call_indirect return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for range r.u32() {
			r.valType()
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x41:
		r.leb(32)
	case op == 0x42:
		r.leb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null heaptype
		r.heapType()
	case op == 0xfc:
		r.prefixFC()
	case op == 0xfd:
		r.prefixFD()
	case op == 0xfe:
		r.prefixFE()
	default:
		r.pos--
		r.fail(fmt.Sprintf("unsupported opcode %#x", op))
	}
}

// heapType reads a heap type: an abstract type byte or, with typedRefs,
// a type index (any s33: the abstract types are its negative values).
func (r *reader) heapType() {
	c := r.byte()
	if c == 0x70 || c == 0x6f {
		return
	}
	r.pos--
	if r.typedRefs {
		r.leb(33)
		return
	}
	r.fail(fmt.Sprintf("unsupported heap type %#x", c))
}

// prefixFC: saturating conversions, bulk memory and table instructions.
func (r *reader) prefixFC() {
	switch sub := r.u32(); {
	case sub <= 7: // trunc_sat
	case sub == 8: // memory.init data mem
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		// data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Sprintf("unsupported opcode 0xfc %d", sub))
	}
}

// prefixFD: SIMD, including relaxed SIMD.
func (r *reader) prefixFD() {
	switch sub := r.u32(); {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads, stores, load*_zero
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load*_lane, store*_lane
		r.memarg()
		r.byte()
	case sub <= 0x113: // every other SIMD instruction has no immediate
	default:
		r.fail(fmt.Sprintf("unsupported opcode 0xfd %d", sub))
	}
}

// prefixFE: atomic memory instructions (threads).
func (r *reader) prefixFE() {
	switch sub := r.u32(); {
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e: // notify, wait, loads, stores, rmw
		r.memarg()
	case sub == 0x03: // atomic.fence
		if r.byte() != 0 {
			r.pos--
			r.fail("atomic.fence with a non-zero immediate")
		}
	default:
		r.fail(fmt.Sprintf("unsupported opcode 0xfe %d", sub))
	}
}

// catchClauses reads the catch clauses of a try_table, after its block
// type.
func (r *reader) catchClauses() {
	for range r.u32() {
		switch kind := r.byte(); kind {
		case 0x00, 0x01: // catch, catch_ref: tag, label
			r.u32()
			r.u32()
		case 0x02, 0x03: // catch_all, catch_all_ref: label
			r.u32()
		default:
			r.pos--
			r.fail(fmt.Sprintf("unknown catch kind %#x", kind))
		}
	}
}
