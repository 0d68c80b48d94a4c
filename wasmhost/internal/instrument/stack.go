package instrument

import "fmt"

// StackBudget is how many bytes of call frames, as callCosts estimates
// them, a call chain of the module may hold at once: 8 MiB. A call that
// would exceed it traps with unreachable, before the frame exists.
const StackBudget = 8 << 20

// Frame cost estimate: a fixed part for the return address, the saved frame
// pointer and spilled registers, and a part per parameter and local (each
// a 64-bit slot, v128 two). wazero's frames for small functions measured
// below it; see TestStackBudget.
const (
	frameFixed    = 64
	frameSlotCost = 16
)

// callCosts charges a module's calls to the stack budget: a global that
// starts at StackBudget, from which every call of a function the module
// defines subtracts the callee's estimated frame size before it is made,
// trapping if the budget goes negative, and to which the caller adds it
// back when the call returns. A call of an imported function (a host
// function, which runs on Go's stack) costs nothing; a call_indirect or
// call_ref costs the largest frame of the module, since the callee is not
// known. Tail calls replace the caller's frame and cost nothing: the
// charge made for the caller covers the callee, and the caller's caller
// restores it. The outermost call, from the host, is not charged. A trap
// leaves the budget short, but the host discards an instance after a
// trap; a caught exception would also skip the restores, so a module with
// try_table gets no budget (rewrite).
type callCosts struct {
	global   uint32  // index of the stack global
	imported uint32  // number of imported functions
	cost     []int64 // by defined function
	max      int64
}

// newCallCosts reads the function types and locals of a module's sections
// to estimate the frame of every function it defines.
func newCallCosts(secs []section, global uint32) *callCosts {
	c := &callCosts{global: global}
	var params []int64 // by type index
	var types []uint32 // by defined function
	for _, s := range secs {
		r := reader{b: s.content, base: s.offset}
		switch s.id {
		case secType:
			for range r.u32() {
				if form := r.byte(); form != 0x60 {
					r.pos--
					r.fail(fmt.Sprintf("unsupported type form %#x", form))
				}
				n := int64(0)
				for range r.u32() {
					n += slotsOf(r.byte())
				}
				for range r.u32() {
					r.valType()
				}
				params = append(params, n)
			}
		case secImport:
			for range r.u32() {
				r.name()
				r.name()
				if r.importDesc() == externFunc {
					c.imported++
				}
			}
		case secFunction:
			for range r.u32() {
				types = append(types, r.u32())
			}
		case secCode:
			n := r.u32()
			if int(n) != len(types) {
				r.fail(fmt.Sprintf("%d function bodies for %d functions", n, len(types)))
			}
			for i := range n {
				size := r.u32()
				body := reader{b: r.bytes(int(size)), base: s.offset + r.pos - int(size)}
				slots := int64(0)
				for range body.u32() {
					count := int64(body.u32())
					slots += count * slotsOf(body.byte())
				}
				if types[i] >= uint32(len(params)) {
					r.fail(fmt.Sprintf("function %d has unknown type %d", i, types[i]))
				}
				// Clamped: a frame above the budget can never be called.
				cost := min(frameFixed+frameSlotCost*(slots+params[types[i]]), StackBudget+1)
				c.cost = append(c.cost, cost)
				c.max = max(c.max, cost)
			}
		}
	}
	return c
}

// slotsOf is the number of 64-bit slots of a value type.
func slotsOf(t byte) int64 {
	if t == 0x7b { // v128
		return 2
	}
	return 1
}

// of returns the cost of the call instruction op whose immediates r (a
// copy) is about to read.
func (c *callCosts) of(op byte, r reader) int64 {
	if op != 0x10 {
		return c.max
	}
	f := r.u32()
	if f < c.imported {
		return 0
	}
	if i := f - c.imported; i < uint32(len(c.cost)) {
		return c.cost[i]
	}
	return c.max // an invalid index: compilation will refuse the module
}

// charge returns the code inserted before a call of the given cost:
//
//	global.get $stack
//	i32.const cost
//	i32.sub
//	global.set $stack
//	global.get $stack
//	i32.const 0
//	i32.lt_s
//	if
//	  unreachable
//	end
func (c *callCosts) charge(cost int64) []byte {
	b := appendU32([]byte{0x23}, c.global)
	b = appendSLEB(append(b, 0x41), cost)
	b = appendU32(append(b, 0x6b, 0x24), c.global)
	b = appendU32(append(b, 0x23), c.global)
	return append(b, 0x41, 0x00, 0x48, 0x04, 0x40, 0x00, 0x0b)
}

// restore returns the code inserted after a call of the given cost, which
// gives the cost back: global.get $stack, i32.const cost, i32.add,
// global.set $stack. It leaves the call's results alone.
func (c *callCosts) restore(cost int64) []byte {
	b := appendU32([]byte{0x23}, c.global)
	b = appendSLEB(append(b, 0x41), cost)
	return appendU32(append(b, 0x6a, 0x24), c.global)
}
