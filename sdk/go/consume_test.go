package kpipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/kpipe/kpipe/sdk/go/internal/consumeexport"
)

// consumeFuncs implements the consume-side kinds with replaceable functions.
type consumeFuncs struct {
	onConsume   func(*ConsumedRecord) (Action, error)
	deserialize func(Target, *ConsumedRecord) ([]byte, error)
}

func (p *consumeFuncs) OnConsume(r *ConsumedRecord) (Action, error) { return p.onConsume(r) }
func (p *consumeFuncs) Deserialize(t Target, r *ConsumedRecord) ([]byte, error) {
	return p.deserialize(t, r)
}

// useConsume registers p as both consume-side kinds for the test, with in
// in the input buffer.
func useConsume(t *testing.T, p *consumeFuncs, in []byte) (*runtime, int32) {
	t.Helper()
	old := crt
	crt = consumeRuntime{interceptor: p, deserializer: p}
	t.Cleanup(func() { crt = old })
	r := &runtime{}
	copy(r.buffer(int32(max(len(in), 64<<10))), in)
	return r, int32(len(in))
}

// maskDigits replaces every ASCII digit of v in place, as the masking
// example plugins do, and says whether it changed anything.
func maskDigits(v []byte) bool {
	changed := false
	for i, c := range v {
		if c >= '0' && c <= '9' {
			v[i], changed = '*', true
		}
	}
	return changed
}

// TestVectorConsumed decodes every consumed vector and checks that masking
// its value gives results/mask_digits, and that the offset and partition
// are those of the encoding.
func TestVectorConsumed(t *testing.T) {
	useFakeHost(t)
	for _, name := range vectorNames(t, "records.txt") {
		t.Run(name, func(t *testing.T) {
			in := readVector(t, "consumed/"+name+".bin")
			var seen ConsumedRecord
			rt, n := useConsume(t, &consumeFuncs{onConsume: func(r *ConsumedRecord) (Action, error) {
				seen = *r
				maskDigits(r.Value)
				return Changed, nil
			}}, in)
			out, code := rt.onConsume(n)
			if code != statusOK {
				t.Fatalf("onConsume code %d", code)
			}
			if want := int64(binary.LittleEndian.Uint64(in)); seen.Offset != want || seen.Offset < 1<<40 || !seen.HasPartition {
				t.Errorf("offset %d (want %d), has partition %v", seen.Offset, want, seen.HasPartition)
			}
			if want := readVector(t, "results/mask_digits/"+name+".bin"); !bytes.Equal(out, want) {
				t.Errorf("masked record differs from results/mask_digits/%s.bin", name)
			}
		})
	}
}

func TestOnConsumeAndDeserialize(t *testing.T) {
	in := readVector(t, "consumed/full.bin")
	tests := []struct {
		name     string
		p        consumeFuncs
		call     func(*runtime, int32) ([]byte, int64)
		wantOut  string
		wantCode int64
		wantErr  string
	}{
		{"unchanged", consumeFuncs{onConsume: func(r *ConsumedRecord) (Action, error) { r.Value = nil; return Unchanged, nil }},
			(*runtime).onConsume, "", statusOK, ""},
		{"drop", consumeFuncs{onConsume: func(*ConsumedRecord) (Action, error) { return Drop, nil }},
			(*runtime).onConsume, "", statusDrop, ""},
		{"error", consumeFuncs{onConsume: func(*ConsumedRecord) (Action, error) { return Changed, errors.New("nope") }},
			(*runtime).onConsume, "", statusError, "nope"},
		{"panic", consumeFuncs{onConsume: func(*ConsumedRecord) (Action, error) { panic("boom") }},
			(*runtime).onConsume, "", statusError, "panic in OnConsume: boom"},
		{"deserialize value", consumeFuncs{deserialize: func(t Target, r *ConsumedRecord) ([]byte, error) {
			if t != TargetValue {
				return nil, errors.New("wrong target")
			}
			return r.Value[1:7], nil
		}}, func(rt *runtime, n int32) ([]byte, int64) { return rt.deserialize(int32(TargetValue), n) }, `"id":1`, statusOK, ""},
		{"deserialize to null", consumeFuncs{deserialize: func(Target, *ConsumedRecord) ([]byte, error) { return nil, nil }},
			func(rt *runtime, n int32) ([]byte, int64) { return rt.deserialize(int32(TargetKey), n) }, "", statusNull, ""},
		{"deserialize error", consumeFuncs{deserialize: func(Target, *ConsumedRecord) ([]byte, error) { return nil, errors.New("bad frame") }},
			func(rt *runtime, n int32) ([]byte, int64) { return rt.deserialize(int32(TargetKey), n) }, "", statusError, "bad frame"},
		{"unknown target", consumeFuncs{deserialize: func(Target, *ConsumedRecord) ([]byte, error) { return nil, nil }},
			func(rt *runtime, n int32) ([]byte, int64) { return rt.deserialize(7, n) }, "", statusError, "unknown deserializer target 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			p := tt.p
			rt, n := useConsume(t, &p, in)
			out, code := tt.call(rt, n)
			if code != tt.wantCode || string(out) != tt.wantOut {
				t.Fatalf("= (%q, %d), want (%q, %d)", out, code, tt.wantOut, tt.wantCode)
			}
			if tt.wantErr != "" && !strings.Contains(h.errMsg, tt.wantErr) {
				t.Fatalf("set_error(%q), want it to contain %q", h.errMsg, tt.wantErr)
			}
		})
	}
	// A short input is refused, not read past its end.
	h := useFakeHost(t)
	rt, _ := useConsume(t, &consumeFuncs{onConsume: func(*ConsumedRecord) (Action, error) { return Unchanged, nil }}, in)
	if _, code := rt.onConsume(4); code != statusError || !strings.Contains(h.errMsg, "has no offset") {
		t.Errorf("onConsume(4) = %d, %q", code, h.errMsg)
	}
}

// TestConsumeLinked checks kpipe_init's check of the consume package.
func TestConsumeLinked(t *testing.T) {
	h := useFakeHost(t)
	old, oldLinked := crt, consumeexport.Linked
	t.Cleanup(func() { crt, consumeexport.Linked = old, oldLinked })
	crt = consumeRuntime{interceptor: &consumeFuncs{}}
	consumeexport.Linked = false
	rt := &runtime{}
	if code := rt.init(); code != statusError || !strings.Contains(h.errMsg, `import _ "github.com/kpipe/kpipe/sdk/go/consume"`) {
		t.Errorf("init without the consume package = %d, %q", code, h.errMsg)
	}
	if k := rt.kinds(); k != kindConsumeInterceptor {
		t.Errorf("kinds %d, want %d", k, kindConsumeInterceptor)
	}
	crt = consumeRuntime{}
	consumeexport.Linked = true
	if code := rt.init(); code != statusError || !strings.Contains(h.errMsg, "no consume interceptor or deserializer is registered") {
		t.Errorf("init with the package but no plugin = %d, %q", code, h.errMsg)
	}
}
