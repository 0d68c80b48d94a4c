package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func TestOnSendResults(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))

	t.Run("unchanged", func(t *testing.T) {
		r := modeRecord(0)
		key := r.Key
		if v, err := p.OnSend(ctx, r); err != nil || v != plugins.Continue {
			t.Fatalf("OnSend = %v, %v", v, err)
		}
		if &r.Key[0] != &key[0] {
			t.Error("an unchanged record got new key bytes")
		}
	})
	t.Run("echoed record replaces the fields", func(t *testing.T) {
		r := modeRecord(9)
		r.Timestamp = time.UnixMilli(1_700_000_000_000)
		r.Value = nil
		want := *r
		if v, err := p.OnSend(ctx, r); err != nil || v != plugins.Continue {
			t.Fatalf("OnSend = %v, %v", v, err)
		}
		if !r.Timestamp.Equal(want.Timestamp) {
			t.Errorf("timestamp = %v, want %v", r.Timestamp, want.Timestamp)
		}
		r.Timestamp = want.Timestamp
		if !reflect.DeepEqual(*r, want) {
			t.Errorf("record = %+v, want %+v", r, want)
		}
		if &r.Key[0] == &want.Key[0] || r.Value != nil {
			t.Error("decoded record shares the old key, or lost the null value")
		}
	})
	t.Run("partition cleared", func(t *testing.T) {
		r := modeRecord(12)
		if _, err := p.OnSend(ctx, r); err != nil || r.HasPartition {
			t.Fatalf("OnSend: %v; HasPartition = %v, want false", err, r.HasPartition)
		}
	})
	t.Run("drop", func(t *testing.T) {
		if v, err := p.OnSend(ctx, modeRecord(10)); err != nil || v != plugins.Drop {
			t.Fatalf("OnSend = %v, %v; want Drop", v, err)
		}
	})
	t.Run("guest error", func(t *testing.T) {
		r := modeRecord(7)
		before := *modeRecord(7)
		_, err := p.OnSend(ctx, r)
		wantGuestError(t, err, "faulty", "kpipe_on_send", "bad record")
		if !reflect.DeepEqual(*r, before) {
			t.Error("a guest error changed the record")
		}
		if st := p.Stats(); st.Errors.OnSend != 1 || st.InstancesReplaced != 0 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("large record grows the buffer", func(t *testing.T) {
		r := modeRecord(9)
		r.Value = bytes.Repeat([]byte("x"), 200_000)
		if _, err := p.OnSend(ctx, r); err != nil || len(r.Value) != 200_000 {
			t.Fatalf("OnSend of a 200 kB record: %v (value %d bytes)", err, len(r.Value))
		}
	})
}

func TestSerializeAndPartition(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	faulty := load(t, h, "faulty", wat(t, "faulty"), plugins.KindSerializer|plugins.KindPartitioner, wasmhost.WithCallTimeout(0))
	noop := load(t, h, "noop", wat(t, "noop"), plugins.KindSerializer|plugins.KindPartitioner, wasmhost.WithCallTimeout(0))
	r := modeRecord(0)
	r.ClearPartition()

	if b, err := faulty.Serialize(ctx, plugins.TargetKey, r); err != nil || b != nil {
		t.Errorf("Serialize(key) = %q, %v; want null", b, err)
	}
	b, err := faulty.Serialize(ctx, plugins.TargetValue, r)
	if err != nil || len(b) == 0 {
		t.Fatalf("Serialize(value) = %q, %v", b, err)
	}
	if !bytes.Contains(b, []byte("orders")) || !bytes.Contains(b, []byte("hello")) {
		t.Errorf("Serialize(value) = %q, want the encoded record", b)
	}
	if b, err := noop.Serialize(ctx, plugins.TargetValue, r); err != nil || b == nil || len(b) != 0 {
		t.Errorf("noop Serialize = %#v, %v; want empty, not null", b, err)
	}
	if n, err := faulty.Partition(ctx, r, 6); err != nil || n != 5 {
		t.Errorf("Partition = %d, %v; want 5", n, err)
	}
	if n, err := noop.Partition(ctx, r, 6); err != nil || n != plugins.DefaultPartition {
		t.Errorf("noop Partition = %d, %v; want DefaultPartition", n, err)
	}

	// For a record that names a partition, faulty returns that number.
	for _, tt := range []struct {
		result int32
		fault  bool
		want   string
	}{
		{-4, false, ""},                         // KPIPE_DEFAULT_PARTITION
		{-2, false, "failed without a message"}, // KPIPE_ERROR
		{6, false, "partition 6 is out of range for 6 partitions"},
		{1 << 30, false, "out of range"},
		{-1, true, "result -1 is not a partition"}, // KPIPE_DROP is not a partitioner status
		{-9, true, "result -9 is not a partition"},
	} {
		named := modeRecord(tt.result)
		n, err := faulty.Partition(ctx, named, 6)
		switch {
		case n != plugins.DefaultPartition:
			t.Errorf("result %d: Partition = %d, want DefaultPartition", tt.result, n)
		case tt.fault:
			f := wantFault(t, err, "faulty", "kpipe_partition", wasmhost.FaultInvalidOutput)
			if !strings.Contains(f.Error(), tt.want) {
				t.Errorf("result %d: %v, want %q", tt.result, err, tt.want)
			}
		case tt.want == "":
			if err != nil {
				t.Errorf("result %d: %v", tt.result, err)
			}
		default:
			wantGuestError(t, err, "faulty", "kpipe_partition", "")
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("result %d: %v, want %q", tt.result, err, tt.want)
			}
		}
	}
	if st := faulty.Stats(); st.Errors.Partition != 3 || st.Calls.Partition != 7 {
		t.Errorf("stats = %+v, want 3 partitioner errors in 7 calls", st)
	}
}

func TestInputBufferGrowthRefused(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	// noop.wat's kpipe_buffer returns 0 for more than 64 KiB.
	p := load(t, h, "noop", wat(t, "noop"), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
	r := modeRecord(0)
	r.Value = make([]byte, 100_000)
	_, err := p.OnSend(ctx, r)
	f := wantFault(t, err, "noop", "kpipe_on_send", wasmhost.FaultInvalidOutput)
	if !strings.Contains(f.Error(), "kpipe_buffer(131072) returned 0") {
		t.Errorf("fault %v does not explain the refused buffer", f)
	}
	if _, err := p.OnSend(ctx, modeRecord(0)); err != nil {
		t.Errorf("a small record after the fault: %v", err)
	}
}

func TestGoGuestHooks(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	var logs logBuffer
	p := load(t, h, "sdk", goGuest(t, goSDKGuest), 0, wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(0),
		wasmhost.WithLogger(newLogger(&logs)), wasmhost.WithConfig([]byte(`{"greeting": "hi"}`)))
	if p.Kinds() != plugins.KindInterceptor|plugins.KindSerializer|plugins.KindPartitioner {
		t.Fatalf("Kinds() = %v", p.Kinds())
	}

	r := modeRecord(4)
	if v, err := p.OnSend(ctx, r); err != nil || v != plugins.Continue {
		t.Fatalf("OnSend = %v, %v", v, err)
	}
	if string(r.Value) != "HELLO" || len(r.Headers) != 2 || r.Headers[1].Key != "seen" || string(r.Headers[1].Value) != "yes" {
		t.Errorf("modified record = %+v", r)
	}
	if v, err := p.OnSend(ctx, modeRecord(8)); err != nil || v != plugins.Drop {
		t.Errorf("OnSend(drop) = %v, %v", v, err)
	}
	_, err := p.OnSend(ctx, modeRecord(2))
	wantGuestError(t, err, "sdk", "kpipe_on_send", "refused")
	_, err = p.OnSend(ctx, modeRecord(7))
	wantGuestError(t, err, "sdk", "kpipe_on_send", `config is {"greeting": "hi"}`)

	if _, err := p.OnSend(ctx, modeRecord(6)); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`[INFO]  hello stdout: plugin=sdk stream=stdout`, `[INFO]  hello log: plugin=sdk`} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not contain %q:\n%s", want, out)
		}
	}

	ack := modeRecord(3)
	ack.Timestamp = time.UnixMilli(1234)
	err = p.OnAck(ctx, ack, plugins.Ack{Offset: -1, Err: errors.New("broker said no")})
	wantGuestError(t, err, "sdk", "kpipe_on_ack",
		`ack offset=-1 error="broker said no" topic=orders partition=3/true timestamp=1234/true key=key-1`)

	if b, err := p.Serialize(ctx, plugins.TargetKey, r); err != nil || string(b) != "KEY-1" {
		t.Errorf("Serialize(key) = %q, %v", b, err)
	}
	if n, err := p.Partition(ctx, r, 3); err != nil || n != int32(len("key-1")%3) {
		t.Errorf("Partition = %d, %v", n, err)
	}

	_, err = h.Load(ctx, "sdk-bad-config", goGuest(t, goSDKGuest), 0, wasmhost.WithConfig([]byte(`{"fail_init": true}`)))
	if err == nil || !strings.Contains(err.Error(), "fail_init is set") {
		t.Errorf("Load with a config that Init rejects: %v", err)
	}
}

func TestHostFunctions(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	var logs logBuffer
	// A call timeout (long enough never to fire) makes host functions find
	// their instance through the per-call context rather than the
	// instance's own.
	p := load(t, h, "hostcalls", wat(t, "hostcalls"), plugins.KindInterceptor, wasmhost.WithCallTimeout(time.Minute),
		wasmhost.WithConfig([]byte(`{"a":1}`)), wasmhost.WithLogger(newLogger(&logs)))
	_, err := p.OnSend(ctx, modeRecord(0))
	wantGuestError(t, err, "hostcalls", "kpipe_on_send", `{"a":1}`)
	if _, err := p.OnSend(ctx, modeRecord(1)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "[INFO]  hello from wasm") {
		t.Errorf("log = %q, want the guest's message", logs.String())
	}
	// enable_features(-1) returns 0, which kpipe_on_send returns: unchanged.
	if v, err := p.OnSend(ctx, modeRecord(5)); err != nil || v != plugins.Continue {
		t.Errorf("enable_features: OnSend = %v, %v", v, err)
	}

	// With the level above info, log_enabled(3) is 0 and nothing is logged.
	var quiet logBuffer
	lg := newLogger(&quiet)
	lg.SetLevel(hclog.Warn)
	q := load(t, h, "quiet", wat(t, "hostcalls"), plugins.KindInterceptor, wasmhost.WithLogger(lg))
	if _, err := q.OnSend(ctx, modeRecord(1)); err != nil {
		t.Fatal(err)
	}
	if quiet.String() != "" {
		t.Errorf("warn-level logger got %q", quiet.String())
	}
}

func TestWrongKindCall(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "interceptor-only", wat(t, "trap"), 0)
	if _, err := p.Serialize(ctx, plugins.TargetValue, modeRecord(0)); err == nil ||
		!strings.Contains(err.Error(), `plugin "interceptor-only": kpipe_serialize: the plugin is not a serializer (it declares interceptor)`) {
		t.Errorf("Serialize on an interceptor: %v", err)
	}
	if n, err := p.Partition(ctx, modeRecord(0), 3); err == nil || n != plugins.DefaultPartition {
		t.Errorf("Partition on an interceptor: %d, %v", n, err)
	}
}

// TestSandbox checks what a guest sees of the world: real clocks and
// random numbers, no environment, no arguments, no file system.
func TestSandbox(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	t.Setenv("KPIPE_SANDBOX_PROBE", "must not be visible")
	p := load(t, h, "sdk", goGuest(t, goSDKGuest), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
	var randoms []string
	for range 2 {
		_, err := p.OnSend(ctx, modeRecord(9))
		var ge *wasmhost.GuestError
		if !errors.As(err, &ge) {
			t.Fatalf("OnSend = %v, want the guest's report", err)
		}
		t.Logf("guest reports: %s", ge.Message)
		var year, env, args int
		var random, fsErr string
		if _, err := fmt.Sscanf(ge.Message, "year=%d random=%s env=%d args=%d fs=%s", &year, &random, &env, &args, &fsErr); err != nil {
			t.Fatalf("report %q: %v", ge.Message, err)
		}
		if year != time.Now().Year() || env != 0 || args != 0 || fsErr == "<nil>" {
			t.Errorf("sandbox report %q: want this year, no environment, no arguments, no file system", ge.Message)
		}
		randoms = append(randoms, random)
	}
	if randoms[0] == randoms[1] || randoms[0] == "0000000000000000" {
		t.Errorf("random bytes %q do not look random", randoms)
	}
}

// TestOptionalOnAck checks that kpipe_on_ack is optional for interceptors
// (ABI section 2): such a plugin loads, says it wants no acks, and OnAck
// never reaches the guest.
func TestOptionalOnAck(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		module    string
		kind      plugins.Kind
		wantsAcks bool
	}{
		{"interceptor without kpipe_on_ack", "sendonly", plugins.KindInterceptor, false},
		{"interceptor with kpipe_on_ack", "noop", plugins.KindInterceptor, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, h, tt.module, wat(t, tt.module), tt.kind)
			defer p.Close(ctx)
			if got := p.WantsAcks(); got != tt.wantsAcks {
				t.Fatalf("WantsAcks() = %v, want %v", got, tt.wantsAcks)
			}
			if err := p.OnAck(ctx, modeRecord(0), plugins.Ack{Offset: 1}); err != nil {
				t.Fatal(err)
			}
			want := uint64(0)
			if tt.wantsAcks {
				want = 1
			}
			if n := p.Stats().Calls.OnAck; n != want {
				t.Errorf("OnAck calls counted = %d, want %d", n, want)
			}
		})
	}
}
