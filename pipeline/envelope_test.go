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
	if got := envelopeOf(&e.kr); got != e {
		t.Fatalf("envelopeOf(&e.kr) = %p, want %p", got, e)
	}
}

// Envelopes come back from put a whole magazine at a time, zeroed. A
// sync.Pool may drop a magazine (the garbage collector clears it, and the
// race detector drops some Puts on purpose), so a round may get new
// envelopes instead; but not every round of many.
func TestEnvPool(t *testing.T) {
	var p envPool
	r := &plugins.Record{Value: []byte("v")}
	wholeRounds := 0
	for round := range 20 {
		sent := map[*envelope]bool{}
		for range magazineSize {
			e := p.get()
			sent[e] = true
			e.kr = kgo.Record{Topic: "t", Value: r.Value, Context: context.Background()}
			e.rec, e.seen, e.explicit = r, 1, true
			e.cb = func(*plugins.Record, Result) {}
			p.put(e)
		}
		if p.ret != nil {
			t.Fatalf("a full magazine stayed with put: %d envelopes", p.ret.n)
		}
		reused := 0
		for range magazineSize {
			e := p.get()
			if !reflect.ValueOf(*e).IsZero() {
				t.Fatalf("get returned a used envelope: %+v", e)
			}
			if sent[e] {
				reused++
			}
			p.put(e)
		}
		switch reused {
		case magazineSize:
			wholeRounds++
		case 0:
		default:
			t.Fatalf("round %d: %d of %d envelopes reused, want all or none", round, reused, magazineSize)
		}
	}
	if wholeRounds == 0 {
		t.Error("no magazine was ever reused")
	}
}
