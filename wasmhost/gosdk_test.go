package wasmhost_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// TestGoViewStamp runs the Go example headerstamp, a RecordView interceptor,
// through the host on the ABI test vectors: the Go SDK asks for
// KPIPE_FEATURE_EDITS, and the edits it sends, singly and in a batch, must
// turn every record into results/set_header, as the other languages' stamps
// do (TestSDKExamples).
func TestGoViewStamp(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	p := load(t, h, "go-stamp", goGuest(t, "examples/plugins/headerstamp"), plugins.KindInterceptor,
		wasmhost.WithConfig([]byte(`{"headers":{"kpipe-stamp":"sdk"}}`)))
	if p.Features()&abi.FeatureEdits == 0 {
		t.Errorf("features %#x: the Go SDK asks for KPIPE_FEATURE_EDITS for a RecordView interceptor", p.Features())
	}
	names, rs := vectorRecords(t)
	for i, r := range rs {
		v, err := p.OnSend(ctx, r)
		if err != nil || v != plugins.Continue {
			t.Fatalf("%s: OnSend = %v, %v", names[i], v, err)
		}
		if got, want := encodeRecord(r), vector(t, "results/set_header/"+names[i]+".bin"); !bytes.Equal(got, want) {
			t.Errorf("%s: OnSend made %+v, not results/set_header", names[i], r)
		}
	}
	wantStampBatch(t, p)
}
