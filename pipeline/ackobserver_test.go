package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// ackObserver is a native interceptor that implements plugins.AckObserver
// and counts how often it is asked and given acknowledgements.
type ackObserver struct {
	wants       bool
	asked, acks atomic.Int64
}

func (o *ackObserver) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}

func (o *ackObserver) OnAck(context.Context, *plugins.Record, plugins.Ack) error {
	o.acks.Add(1)
	return nil
}

func (o *ackObserver) WantsAcks() bool {
	o.asked.Add(1)
	return o.wants
}

// TestAckObserver checks that interceptors whose WantsAcks returns false, a
// native one and a WASM module without kpipe_on_ack, are never given OnAck
// and have no on_ack Stats entry, that WantsAcks is asked once, at New, and
// that the others still get every acknowledgement, delivered or failed.
func TestAckObserver(t *testing.T) {
	e := setup(t, 1)
	ctx := ctxT(t)
	h, err := wasmhost.New(ctx, wasmhost.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	sendOnly, err := h.LoadFile(ctx, "sendonly", plugintest.WAT(t, "wasmhost/testdata/sendonly.wat"), plugins.KindInterceptor)
	if err != nil {
		t.Fatal(err)
	}
	if sendOnly.WantsAcks() {
		t.Fatal("sendonly.wasm: WantsAcks() = true, want false")
	}
	deaf, listening := &ackObserver{wants: false}, &ackObserver{wants: true}
	var plain atomic.Int64 // an interceptor without WantsAcks
	p := e.producer(t,
		pipeline.Interceptor("deaf", deaf),
		pipeline.Interceptor("sendonly", sendOnly),
		pipeline.Interceptor("listening", listening),
		pipeline.Interceptor("plain", interceptorFunc{ack: func(context.Context, *plugins.Record, plugins.Ack) error {
			plain.Add(1)
			return nil
		}}))

	const n = 3
	for i := range n {
		if res := p.SendSync(ctx, rec("k", "v")); res.Outcome != pipeline.Delivered {
			t.Fatalf("record %d: %+v", i, res)
		}
	}
	// A record that fails after the interceptors: its acknowledgement
	// is an error, given only to those that want it.
	r := rec("k", "v")
	r.SetPartition(7)
	if res := p.SendSync(ctx, r); res.Outcome != pipeline.Failed {
		t.Fatalf("record to a missing partition: %+v", res)
	}

	if got := deaf.acks.Load(); got != 0 {
		t.Errorf("deaf got %d acknowledgements, want none", got)
	}
	if got := deaf.asked.Load(); got != 1 {
		t.Errorf("deaf was asked WantsAcks %d times, want once", got)
	}
	if got, want := listening.acks.Load(), int64(n+1); got != want {
		t.Errorf("listening got %d acknowledgements, want %d", got, want)
	}
	if got, want := plain.Load(), int64(n+1); got != want {
		t.Errorf("plain got %d acknowledgements, want %d", got, want)
	}
	if st := sendOnly.Stats(); st.Calls.OnSend != n+1 || st.Calls.OnAck != 0 {
		t.Errorf("sendonly.wasm calls %+v, want %d on_send and no on_ack", st.Calls, n+1)
	}
	for _, s := range p.Stats().Plugins {
		if s.Hook == pipeline.HookOnAck && (s.Name == "deaf" || s.Name == "sendonly") {
			t.Errorf("Stats has an on_ack entry for %s, which wants no acknowledgements: %+v", s.Name, s)
		}
	}
	for _, name := range []string{"deaf", "sendonly", "listening", "plain"} {
		if st := pluginStats(t, p, name, pipeline.HookOnSend); st.Calls != n+1 {
			t.Errorf("%s on_send: %+v, want %d calls", name, st, n+1)
		}
	}
	if st := pluginStats(t, p, "listening", pipeline.HookOnAck); st.Calls != n+1 {
		t.Errorf("listening on_ack: %+v, want %d calls", st, n+1)
	}
}
