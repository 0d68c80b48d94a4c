package pipeline

import (
	"context"
	"testing"

	"github.com/kpipe/kpipe/plugins"
)

func TestEnvelopeOf(t *testing.T) {
	e := new(envelope)
	ctx, cancel := context.WithCancel(context.Background())
	e.open(ctx, &plugins.Record{}, nil)
	if got := envelopeOf(&e.kr); got != e {
		t.Fatalf("envelopeOf(&e.kr) = %p, want %p", got, e)
	}
	// The handle franz-go keeps never ends and reads nothing from the
	// envelope, whatever becomes of the record's context or the
	// envelope.
	cancel()
	*e = envelope{}
	h := (*envHandle)(e)
	if h.Done() != nil || h.Err() != nil || h.Value("k") != nil {
		t.Fatalf("handle: Done %v, Err %v", h.Done(), h.Err())
	}
	if _, ok := h.Deadline(); ok {
		t.Fatal("handle has a deadline")
	}
}
