// Package instrument rewrites a WebAssembly module so that the host can
// interrupt a running call cheaply.
//
// Rewrite appends three mutable i32 globals (new globals come after the
// existing ones, so no index changes), exports the first, the interrupt
// flag, and the third, the stack budget, under names the host chooses, and
// inserts at every function entry
// and at the start of every loop body a check (see checkCode; a function
// that reaches its first loop before it can call or branch needs no check
// at its entry, the loop's comes first): it counts
// down the second global, and once every Budget checks tests the interrupt
// flag, trapping with unreachable if it is set, and yields to the Go
// scheduler. A host that sets the flag to a non-zero value
// (api.MutableGlobal.Set in wazero) therefore stops the guest within Budget
// loop iterations or function calls: endless loops and endless recursion
// included. A start function, which would run inside instantiation where
// no flag can be set yet, is exported under a second name the host chooses
// instead, for the host to call once the instance exists. Calls of the
// module's own functions are charged to a stack budget (StackBudget, see
// callCosts), so that endless or very deep recursion traps long before the
// runtime's call stack grows to its own, much larger, ceiling. Everything else
// in the module is copied verbatim, except custom
// sections named .debug_*, whose code offsets the inserted instructions
// would invalidate.
//
// The rewriter decodes every instruction of every function body, so it
// refuses (with an *UnsupportedError) anything it does not fully understand
// instead of producing a module that means something else: memory64,
// typed function references in types, legacy exception handling, unknown
// opcodes. It does not validate the module: a malformed module either
// fails here or fails to compile afterwards.
//
// CheckLimits, CheckCounts and CapTables read a module before the host
// compiles it: the first two refuse modules whose structure would cost the
// compiler time or memory out of proportion to their size (see the limits
// in limits.go), the last bounds its tables.
package instrument
