package wasmhost

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by calls on a Plugin (or Load on a Host) after Close.
var ErrClosed = errors.New("wasmhost: closed")

// FaultReason says why a plugin call faulted (ABI section 7).
type FaultReason uint8

// The fault reasons.
const (
	// FaultTrap: the guest trapped (unreachable, out-of-bounds access,
	// division by zero, stack overflow, a bad argument to a host function).
	FaultTrap FaultReason = iota + 1
	// FaultExit: the guest called WASI proc_exit. An unrecovered Go panic in
	// a Go guest ends this way.
	FaultExit
	// FaultTimeout: the call ran past the plugin's call timeout.
	FaultTimeout
	// FaultCanceled: the caller's context was canceled during a call of a
	// plugin that runs with a call timeout.
	FaultCanceled
	// FaultMemory: the guest failed after the host refused to grow its
	// memory beyond the plugin's memory limit.
	FaultMemory
	// FaultInvalidOutput: the hook returned a result the ABI does not allow:
	// an unknown status, a slice outside guest memory or above the output
	// limit, or a record that does not decode.
	FaultInvalidOutput
	// FaultInstantiate: a new instance, replacing a faulted one, could not be
	// created or initialised, or its creation overran its limit (see
	// WithCallTimeout).
	FaultInstantiate

	numFaultReasons = iota + 1
)

var faultReasonNames = [numFaultReasons]string{
	FaultTrap:          "trap",
	FaultExit:          "exit",
	FaultTimeout:       "timeout",
	FaultCanceled:      "canceled",
	FaultMemory:        "memory limit",
	FaultInvalidOutput: "invalid output",
	FaultInstantiate:   "instantiate",
}

func (r FaultReason) String() string {
	if int(r) < len(faultReasonNames) && faultReasonNames[r] != "" {
		return faultReasonNames[r]
	}
	return fmt.Sprintf("FaultReason(%d)", uint8(r))
}

// Fault is the error of a plugin call that faulted: the instance that ran it
// was closed and will be replaced by a fresh one on a later call. The record
// itself was not changed.
type Fault struct {
	// Plugin is the name the plugin was loaded with.
	Plugin string
	// Hook is the guest export that was called, such as "kpipe_on_send".
	Hook string
	// Reason classifies the fault.
	Reason FaultReason
	// Err is the underlying error, from wazero or from output validation.
	Err error
}

func (f *Fault) Error() string {
	return fmt.Sprintf("wasmhost: plugin %q: %s: fault (%s): %v", f.Plugin, f.Hook, f.Reason, f.Err)
}

func (f *Fault) Unwrap() error { return f.Err }

// GuestError is the error of a hook that failed without a fault: it returned
// KPIPE_ERROR (with the message of its last set_error call), or a partitioner
// returned a partition out of range. The instance stays in use.
type GuestError struct {
	// Plugin is the name the plugin was loaded with.
	Plugin string
	// Hook is the guest export that was called, such as "kpipe_serialize".
	Hook string
	// Message is what the guest reported; empty if it set no message.
	Message string
}

func (e *GuestError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "failed without a message"
	}
	return fmt.Sprintf("wasmhost: plugin %q: %s: %s", e.Plugin, e.Hook, msg)
}
