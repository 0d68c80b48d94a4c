package wasmhost

import (
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// The results of kpipe_on_send and kpipe_on_send_batch name a record, or,
// for a plugin that enabled KPIPE_FEATURE_EDITS (ABI section 8.2), either a
// record or a list of edits to the record the host sent. Applying a short
// edit list costs both sides far less than encoding and decoding a whole
// record: BenchmarkSDKExamples measures the C header stamp with edits
// (c/stamp) against the same stamp without them (c-whole/stamp), 0.63-0.88
// against 1.8-2.4 µs per call on a loaded 2-core machine.

// decodeSendResult applies the bytes of a kpipe_on_send result to r, with
// the instance's abi.Applier for edit lists.
func (inst *instance) decodeSendResult(b []byte, r *plugins.Record) error {
	if inst.p.features&abi.FeatureEdits != 0 {
		return inst.edits.DecodeResult(b, r)
	}
	return abi.DecodeRecord(b, r)
}

// validateSendResult checks the bytes of a kpipe_on_send result as
// decodeSendResult would apply them.
func (p *Plugin) validateSendResult(b []byte) error {
	if p.features&abi.FeatureEdits != 0 {
		return abi.ValidateResult(b)
	}
	return abi.ValidateRecord(b)
}
