package wasmhost

import (
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// The results of kpipe_on_send and kpipe_on_send_batch name a record, or,
// for a plugin that enabled KPIPE_FEATURE_EDITS (ABI section 8.2), either a
// record or a list of edits to the record the host sent. Applying a short
// edit list costs both sides far less than encoding and decoding a whole
// record: the C header stamp with edits (c/stamp) against the same stamp
// without them (c-whole/stamp), interleaved in one process as
// BenchmarkSDKStampRatios does, took 256 against 845 ns per single call and
// 166 against 621 ns per record in batches of 64 (fastest of 100 rounds,
// load average 17 on 2 cores). Each instance applies edit lists with an
// abi.Applier of its own, which needs no lock: an instance runs one call at
// a time.

// decodeSendResult applies the bytes of a kpipe_on_send result to r, with
// the instance's abi.Applier for edit lists. It is one call, which the
// compiler inlines into its callers.
func (inst *instance) decodeSendResult(b []byte, r *plugins.Record) error {
	return inst.edits.DecodeResult(b, r, inst.p.features&abi.FeatureEdits != 0)
}

// validateSendResult checks the bytes of a kpipe_on_send result as
// decodeSendResult would apply them.
func (p *Plugin) validateSendResult(b []byte) error {
	if p.features&abi.FeatureEdits != 0 {
		return abi.ValidateResult(b)
	}
	return abi.ValidateRecord(b)
}
