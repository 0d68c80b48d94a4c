package kpipe

import (
	"fmt"
	"testing"

	"github.com/kpipe/kpipe/sdk/go/internal/ackexport"
)

// TestRegisterRefuses checks the panics of the Register functions, which all
// share register and registerInterceptor: a nil plugin, and a second plugin
// of a kind.
func TestRegisterRefuses(t *testing.T) {
	old := rt
	t.Cleanup(func() { rt = old })
	p := &funcPlugin{}
	var slot Serializer
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"nil", func() { register(&slot, nil, "RegisterSerializer") }, "kpipe: RegisterSerializer(nil)"},
		{"first", func() { register(&slot, Serializer(p), "RegisterSerializer") }, ""},
		{"second", func() { register(&slot, Serializer(p), "RegisterSerializer") }, "kpipe: RegisterSerializer called twice"},
		{"nil interceptor", func() { RegisterInterceptor(nil) }, "kpipe: RegisterInterceptor(nil)"},
		{"nil view interceptor", func() { RegisterViewInterceptor(nil) }, "kpipe: RegisterViewInterceptor(nil)"},
		{"interceptor", func() { RegisterInterceptor(p) }, ""},
		{"second interceptor", func() { RegisterInterceptor(p) }, "kpipe: an interceptor is already registered"},
		{"view after interceptor", func() { RegisterViewInterceptor(viewFunc(nil)) }, "kpipe: an interceptor is already registered"},
	}
	for _, tt := range tests {
		got := func() (msg string) {
			defer func() {
				if r := recover(); r != nil {
					msg = fmt.Sprint(r)
				}
			}()
			tt.call()
			return ""
		}()
		if got != tt.want {
			t.Errorf("%s: panic %q, want %q", tt.name, got, tt.want)
		}
	}
	if slot != Serializer(p) || rt.interceptor != Interceptor(p) {
		t.Errorf("registered %v and %v, want %v", slot, rt.interceptor, p)
	}
}

// TestAckLinked checks kpipe_init's check of the ack package.
func TestAckLinked(t *testing.T) {
	h := useFakeHost(t)
	oldLinked := ackexport.Linked
	t.Cleanup(func() { ackexport.Linked = oldLinked })
	for _, tt := range []struct {
		observer AckObserver
		linked   bool
		want     string
	}{
		{&funcPlugin{}, false, `the interceptor has OnAck, but the module does not export kpipe_on_ack: import _ "github.com/kpipe/kpipe/sdk/go/ack" in package main`},
		{nil, true, `the module imports github.com/kpipe/kpipe/sdk/go/ack, but no interceptor with an OnAck method is registered`},
	} {
		ackexport.Linked = tt.linked
		h.errMsg = ""
		r := &runtime{observer: tt.observer}
		if code := r.init(); code != statusError || h.errMsg != tt.want {
			t.Errorf("init with OnAck %v, ack linked %v = %d, %q; want %q", tt.observer != nil, tt.linked, code, h.errMsg, tt.want)
		}
	}
}
