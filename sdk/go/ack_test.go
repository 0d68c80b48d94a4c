package kpipe

import (
	"strings"
	"testing"

	"github.com/kpipe/kpipe/sdk/go/internal/ackexport"
)

// sendOnly is an interceptor without OnAck.
type sendOnly struct{}

func (sendOnly) OnSend(*Record) (Action, error) { return Unchanged, nil }

// TestInitChecksAckExport checks that kpipe_init fails when an interceptor
// has OnAck but package ack (which exports kpipe_on_ack) is not linked in,
// and when package ack is linked in without an interceptor that has OnAck;
// and that it passes when both or neither are there.
func TestInitChecksAckExport(t *testing.T) {
	h := useFakeHost(t)
	defer func(linked bool) { ackexport.Linked = linked }(ackexport.Linked)
	withAck := &funcPlugin{onSend: func(*Record) (Action, error) { return Unchanged, nil },
		onAck: func(*Record, Ack) error { return nil }, init: func() error { return nil }}
	tests := []struct {
		name    string
		p       Interceptor
		linked  bool
		wantErr string
	}{
		{"OnAck and package ack", withAck, true, ""},
		{"neither", sendOnly{}, false, ""},
		{"OnAck without package ack", withAck, false, `import _ "github.com/kpipe/kpipe/sdk/go/ack"`},
		{"package ack without OnAck", sendOnly{}, true, "no interceptor with an OnAck method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ackexport.Linked = tt.linked
			var r runtime
			r.interceptor = tt.p
			r.observer, _ = tt.p.(AckObserver)
			h.errMsg = ""
			code := r.init()
			if tt.wantErr == "" {
				if code != statusOK {
					t.Fatalf("init = %d (%q), want 0", code, h.errMsg)
				}
				return
			}
			if code != statusError || !strings.Contains(h.errMsg, tt.wantErr) {
				t.Fatalf("init = %d (%q), want an error containing %q", code, h.errMsg, tt.wantErr)
			}
		})
	}
}

// TestAckHooksWithoutOnAck checks that the acknowledgement hooks fail, rather
// than panic, for an interceptor without OnAck.
func TestAckHooksWithoutOnAck(t *testing.T) {
	h := useFakeHost(t)
	r := &runtime{interceptor: sendOnly{}}
	if code := r.onAck(0); code != statusError || !strings.Contains(h.errMsg, "no interceptor with OnAck") {
		t.Errorf("onAck = %d (%q)", code, h.errMsg)
	}
	if code := r.onAckBatch(1, 0); code != statusError || !strings.Contains(h.errMsg, "no interceptor with OnAck") {
		t.Errorf("onAckBatch = %d (%q)", code, h.errMsg)
	}
}

// TestRegisterInterceptorObserver checks that registering finds OnAck.
func TestRegisterInterceptorObserver(t *testing.T) {
	defer func(saved runtime) { rt = saved }(rt)
	rt = runtime{}
	RegisterInterceptor(sendOnly{})
	if rt.observer != nil {
		t.Error("an interceptor without OnAck became the observer")
	}
	rt = runtime{}
	p := &funcPlugin{}
	RegisterInterceptor(p)
	if rt.observer != AckObserver(p) {
		t.Error("an interceptor with OnAck is not the observer")
	}
}
