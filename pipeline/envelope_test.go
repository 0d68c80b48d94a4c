package pipeline

import (
	"context"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

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

// Envelopes come back from put, zeroed, once put has filled a magazine. The
// magazines live in sync.Pools shared with every other producer of the test
// binary, which the garbage collector may clear and the race detector drops
// some Puts of on purpose: a round may get other envelopes, but not every
// round of many.
func TestEnvPool(t *testing.T) {
	var p envPool
	r := &plugins.Record{Value: []byte("v")}
	reusedRounds := 0
	for round := range 20 {
		sent := map[*envelope]bool{}
		for i := range magazineSize {
			e := getEnvelope()
			sent[e] = true
			e.kr = kgo.Record{Topic: "t", Value: r.Value, Context: context.Background()}
			e.rec, e.seen, e.explicit = r, 1, true
			e.cb = func(*plugins.Record, Result) {}
			p.put(e)
			if full := i == magazineSize-1; (p.ret == nil) != full {
				t.Fatalf("round %d, put %d: put's magazine is %v", round, i, p.ret)
			}
		}
		reused := 0
		for range magazineSize {
			e := getEnvelope()
			if !reflect.ValueOf(*e).IsZero() {
				t.Fatalf("get returned a used envelope: %+v", e)
			}
			if sent[e] {
				reused++
			}
			p.put(e)
		}
		if reused > 0 {
			reusedRounds++
		}
	}
	if reusedRounds == 0 {
		t.Error("no envelope was ever reused")
	}
}
