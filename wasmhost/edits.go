package wasmhost

import (
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// The results of kpipe_on_send and kpipe_on_send_batch name a record, or,
// for a plugin that enabled KPIPE_FEATURE_EDITS (ABI section 8.2), either a
// record or a list of edits to the record the host sent. Applying a short
// edit list costs the host far less than decoding a whole record
// (BenchmarkSDKExamples, c-edits/stamp against c/stamp).

// decodeSendResult applies the bytes of a kpipe_on_send result to r.
func (p *Plugin) decodeSendResult(b []byte, r *plugins.Record) error {
	if p.features&abi.FeatureEdits != 0 {
		return abi.DecodeResult(b, r)
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
