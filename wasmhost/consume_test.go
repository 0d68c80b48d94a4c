package wasmhost_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// consumed returns a fetched record with value v.
func consumed(v string) *kgo.Record {
	r := &kgo.Record{Topic: "payments", Partition: 2, Offset: 41, Key: []byte("k1"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}, Timestamp: time.UnixMilli(1_700_000_000_000)}
	if v != "\x00null" {
		r.Value = []byte(v)
	}
	return r
}

func TestOnConsume(t *testing.T) {
	h := newHost(t)
	ci, err := h.LoadConsumeInterceptor(context.Background(), "consume", wat(t, "consume"))
	if err != nil {
		t.Fatal(err)
	}
	const hook = "kpipe_on_consume"
	tests := []struct {
		value     string
		verdict   plugins.Verdict
		wantValue string // "\x00null" for a null value
		wantTS    bool   // the timestamp is kept
		check     func(t *testing.T, err error)
	}{
		{value: "card 1234-5678", wantValue: "card ****-****", wantTS: true},
		{value: "no digits", wantValue: "no digits", wantTS: true},
		{value: "\x00null", wantValue: "\x00null", wantTS: true},
		{value: "", wantValue: "", wantTS: true},
		{value: "#secret", verdict: plugins.Drop, wantValue: "#secret", wantTS: true},
		// A result without a timestamp keeps the record's.
		{value: "^new", wantValue: "up", wantTS: true},
		{value: "?bad 12", wantValue: "?bad 12", wantTS: true, check: func(t *testing.T, err error) {
			wantGuestError(t, err, "consume", hook, "refused")
		}},
		{value: "!trap 12", wantValue: "!trap 12", wantTS: true, check: func(t *testing.T, err error) {
			wantFault(t, err, "consume", hook, wasmhost.FaultTrap)
		}},
		{value: "~out 12", wantValue: "~out 12", wantTS: true, check: func(t *testing.T, err error) {
			wantFault(t, err, "consume", hook, wasmhost.FaultInvalidOutput)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			r := consumed(tt.value)
			before := *r
			v, err := ci.OnConsume(context.Background(), r)
			if tt.check != nil {
				tt.check(t, err)
			} else if err != nil {
				t.Fatal(err)
			}
			if v != tt.verdict {
				t.Errorf("verdict %v, want %v", v, tt.verdict)
			}
			got := string(r.Value)
			if r.Value == nil {
				got = "\x00null"
			}
			if got != tt.wantValue {
				t.Errorf("value %q, want %q", got, tt.wantValue)
			}
			if r.Topic != before.Topic || r.Partition != before.Partition || r.Offset != before.Offset {
				t.Errorf("topic, partition, offset = %s %d %d, want them unchanged", r.Topic, r.Partition, r.Offset)
			}
			if !r.Timestamp.Equal(before.Timestamp) {
				t.Errorf("timestamp %v, want %v", r.Timestamp, before.Timestamp)
			}
			if tt.value == "^new" {
				if r.Key != nil || len(r.Headers) != 0 {
					t.Errorf("key %q headers %v, want the result's null key and no headers", r.Key, r.Headers)
				}
			} else if string(r.Key) != "k1" || len(r.Headers) != 1 {
				t.Errorf("key %q headers %v changed", r.Key, r.Headers)
			}
		})
	}
	st := ci.Plugin().Stats()
	if st.Calls.OnConsume != uint64(len(tests)) || st.Errors.OnConsume != 1 || st.InstancesReplaced != 2 {
		t.Errorf("stats %+v: want %d on_consume calls, 1 error, 2 instances replaced", st, len(tests))
	}
}

// TestOnConsumeBatch checks that a batch gives every record the result of
// its own call, and that a fault costs exactly its record.
func TestOnConsumeBatch(t *testing.T) {
	h := newHost(t)
	ci, err := h.LoadConsumeInterceptor(context.Background(), "consume", wat(t, "consume"), wasmhost.WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	values := []string{"a1", "!trap", "#drop", "?err", "b22", "plain"}
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = consumed(v)
	}
	verdicts := make([]plugins.Verdict, len(rs))
	errs := make([]error, len(rs))
	if err := ci.OnConsumeBatch(context.Background(), rs, verdicts, errs); err != nil {
		t.Fatal(err)
	}
	wantValues := []string{"a*", "!trap", "#drop", "?err", "b**", "plain"}
	for i, r := range rs {
		if string(r.Value) != wantValues[i] {
			t.Errorf("record %d: value %q, want %q", i, r.Value, wantValues[i])
		}
		if wantDrop := i == 2; (verdicts[i] == plugins.Drop) != wantDrop {
			t.Errorf("record %d: verdict %v", i, verdicts[i])
		}
		if wantErr := i == 1 || i == 3; (errs[i] != nil) != wantErr {
			t.Errorf("record %d: error %v", i, errs[i])
		}
	}
	wantFault(t, errs[1], "consume", "kpipe_on_consume", wasmhost.FaultTrap)
	wantGuestError(t, errs[3], "consume", "kpipe_on_consume", "refused")
}

func TestDeserialize(t *testing.T) {
	h := newHost(t)
	d, err := h.LoadDeserializer(context.Background(), "wire", wat(t, "consume"))
	if err != nil {
		t.Fatal(err)
	}
	framed := func(s string) []byte { return append([]byte{0, 0, 0, 0, 7}, s...) }
	tests := []struct {
		name   string
		target plugins.Target
		key    []byte
		value  []byte
		want   []byte // nil: null
		errMsg string
	}{
		{"value", plugins.TargetValue, []byte("k"), framed(`{"a":1}`), []byte(`{"a":1}`), ""},
		{"key", plugins.TargetKey, framed("user-1"), framed("v"), []byte("user-1"), ""},
		{"empty payload is null", plugins.TargetValue, nil, framed(""), nil, ""},
		{"no prefix", plugins.TargetValue, nil, []byte("plain"), nil, "no wire-format prefix"},
		{"wrong magic byte", plugins.TargetKey, []byte{1, 0, 0, 0, 7, 'x'}, nil, nil, "no wire-format prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &kgo.Record{Topic: "t", Partition: 1, Offset: 9, Key: tt.key, Value: tt.value}
			got, err := d.Deserialize(context.Background(), tt.target, r)
			if tt.errMsg != "" {
				wantGuestError(t, err, "wire", "kpipe_deserialize", tt.errMsg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || !bytes.Equal(got, tt.want) {
				t.Errorf("got %q (nil %v), want %q (nil %v)", got, got == nil, tt.want, tt.want == nil)
			}
		})
	}
}

// TestConsumeKindsNeedV2 checks that the consume kinds are refused in a
// module that exports only the v1 marker, and that a module of both kinds
// loads as either, but not as a producer kind.
func TestConsumeKindsNeedV2(t *testing.T) {
	h := newHost(t)
	_, err := h.Load(context.Background(), "old", wat(t, "consume_v1"), 0)
	for _, want := range []string{`plugin "old"`, "declares consume interceptor, a kind of ABI v2", "export kpipe_abi_v2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(consume_v1) error = %v, want it to contain %q", err, want)
		}
	}
	p := load(t, h, "both", wat(t, "consume"), 0)
	if p.Kinds() != plugins.KindConsumeInterceptor|plugins.KindDeserializer || p.ConsumeInterceptor() == nil || p.Deserializer() == nil || p.Interceptor() != nil {
		t.Errorf("kinds %v; views %v %v %v", p.Kinds(), p.ConsumeInterceptor(), p.Deserializer(), p.Interceptor())
	}
	_, err = h.LoadInterceptor(context.Background(), "x", wat(t, "consume"))
	if err == nil || !strings.Contains(err.Error(), "loaded as interceptor, but the module declares consume interceptor+deserializer") {
		t.Errorf("LoadInterceptor(consume) error = %v", err)
	}
	// A v1 module loads and runs as before on this host.
	ic, err := h.LoadInterceptor(context.Background(), "noop", wat(t, "noop"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ic.OnSend(context.Background(), modeRecord(0)); v != plugins.Continue || err != nil {
		t.Errorf("noop OnSend = %v, %v", v, err)
	}
	info, err := h.Inspect(context.Background(), wat(t, "consume"))
	if err != nil || info.ABIVersion != 2 || len(info.Markers) != 2 {
		t.Errorf("Inspect(consume) = %+v, %v: want ABI v2 of markers v1 and v2", info, err)
	}
}
