package kpipe

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fakeHost records what the SDK passes to the host.
type fakeHost struct {
	cfg     []byte
	level   Level
	errMsg  string
	errSets int
	logs    []string
	// features are the features enabled so far (every known one asked for).
	features uint64
}

func (h *fakeHost) config(buf []byte) int {
	if len(buf) >= len(h.cfg) {
		copy(buf, h.cfg)
	}
	return len(h.cfg)
}
func (h *fakeHost) logEnabled(l Level) bool { return l >= h.level }
func (h *fakeHost) enableFeatures(mask uint64) uint64 {
	h.features |= mask & uint64(FeaturePartitionKey|FeatureAckNoRecord)
	return h.features
}
func (h *fakeHost) log(l Level, msg string) { h.logs = append(h.logs, l.String()+": "+msg) }
func (h *fakeHost) setError(msg string)     { h.errMsg = msg; h.errSets++ }

// useFakeHost replaces the host for the duration of the test.
func useFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{level: LevelInfo}
	old := host
	host = h
	t.Cleanup(func() { host = old })
	return h
}

// funcPlugin implements every kind with replaceable functions.
type funcPlugin struct {
	onSend    func(*Record) (Action, error)
	onAck     func(*Record, Ack) error
	serialize func(Target, *Record) ([]byte, error)
	partition func(*Record, int32) (int32, error)
	init      func() error
}

func (p *funcPlugin) OnSend(r *Record) (Action, error)              { return p.onSend(r) }
func (p *funcPlugin) OnAck(r *Record, a Ack) error                  { return p.onAck(r, a) }
func (p *funcPlugin) Serialize(t Target, r *Record) ([]byte, error) { return p.serialize(t, r) }
func (p *funcPlugin) Partition(r *Record, n int32) (int32, error)   { return p.partition(r, n) }
func (p *funcPlugin) Init() error                                   { return p.init() }

// newRuntime returns a runtime with p registered for every kind and the
// golden record in its input buffer.
func newRuntime(tb testing.TB, p *funcPlugin) (*runtime, int32) {
	r := &runtime{interceptor: p, observer: p, serializer: p, partitioner: p}
	copy(r.buffer(64*1024), goldenBytes)
	return r, int32(len(goldenBytes))
}

func TestOnSend(t *testing.T) {
	modified := goldenRecord
	modified.Headers = []Header{{Key: "h", Value: []byte("v")}, {Key: "n"}, {Key: "added", Value: []byte("1")}}
	modified.ClearPartition()
	wantChanged, _ := appendRecord(nil, &modified)
	tests := []struct {
		name     string
		fn       func(*Record) (Action, error)
		wantOut  []byte
		wantCode int64
		wantErr  string
	}{
		{"unchanged", func(r *Record) (Action, error) {
			r.Topic = "ignored" // changes without Changed are not sent back
			return Unchanged, nil
		}, nil, statusOK, ""},
		{"changed", func(r *Record) (Action, error) {
			r.AddHeader("added", []byte("1"))
			r.ClearPartition()
			return Changed, nil
		}, wantChanged, statusOK, ""},
		{"drop", func(*Record) (Action, error) { return Drop, nil }, nil, statusDrop, ""},
		{"error", func(*Record) (Action, error) { return Changed, errors.New("nope") }, nil, statusError, "nope"},
		{"panic", func(r *Record) (Action, error) {
			var m map[string]int
			m["x"] = 1
			return Changed, nil
		}, nil, statusError, "panic in OnSend: assignment to entry in nil map"},
		{"unknown action", func(*Record) (Action, error) { return Action(9), nil }, nil, statusError, "unknown action(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			rt, n := newRuntime(t, &funcPlugin{onSend: tt.fn})
			out, code := rt.onSend(n)
			if code != tt.wantCode || !bytes.Equal(out, tt.wantOut) {
				t.Fatalf("onSend = (% x, %d), want (% x, %d)", out, code, tt.wantOut, tt.wantCode)
			}
			if tt.wantErr != "" && !strings.Contains(h.errMsg, tt.wantErr) {
				t.Fatalf("set_error(%q), want it to contain %q", h.errMsg, tt.wantErr)
			}
			if tt.wantErr == "" && h.errSets != 0 {
				t.Fatalf("set_error(%q) called on success", h.errMsg)
			}
		})
	}
}

func TestHooksRejectBadInput(t *testing.T) {
	p := &funcPlugin{
		onSend:    func(*Record) (Action, error) { t.Fatal("OnSend called"); return 0, nil },
		onAck:     func(*Record, Ack) error { t.Fatal("OnAck called"); return nil },
		serialize: func(Target, *Record) ([]byte, error) { t.Fatal("Serialize called"); return nil, nil },
		partition: func(*Record, int32) (int32, error) { t.Fatal("Partition called"); return 0, nil },
	}
	tests := []struct {
		name string
		call func(rt *runtime) int64
		want string
	}{
		{"on_send too long", func(rt *runtime) int64 { _, c := rt.onSend(1 << 20); return c }, "does not fit"},
		{"on_send negative", func(rt *runtime) int64 { _, c := rt.onSend(-1); return c }, "does not fit"},
		{"on_send truncated", func(rt *runtime) int64 { _, c := rt.onSend(10); return c }, "malformed"},
		{"on_ack truncated", func(rt *runtime) int64 { return rt.onAck(3) }, "malformed"},
		{"serialize bad target", func(rt *runtime) int64 { _, c := rt.serialize(2, int32(len(goldenBytes))); return c }, "unknown serializer target 2"},
		{"partition zero count", func(rt *runtime) int64 { return rt.partition(0, int32(len(goldenBytes))) }, "partition count 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			rt, _ := newRuntime(t, p)
			if code := tt.call(rt); code != statusError || !strings.Contains(h.errMsg, tt.want) {
				t.Fatalf("code %d, set_error(%q); want %d and a message containing %q", code, h.errMsg, statusError, tt.want)
			}
		})
	}
}

func TestUnregisteredKind(t *testing.T) {
	h := useFakeHost(t)
	rt := &runtime{}
	rt.buffer(16)
	if _, code := rt.onSend(0); code != statusError || !strings.Contains(h.errMsg, "no interceptor") {
		t.Fatalf("onSend without interceptor: code %d, error %q", code, h.errMsg)
	}
	if code := rt.partition(3, 0); code != statusError || !strings.Contains(h.errMsg, "no partitioner") {
		t.Fatalf("partition without partitioner: code %d, error %q", code, h.errMsg)
	}
	if got := rt.kinds(); got != 0 {
		t.Fatalf("kinds() = %d, want 0", got)
	}
}

func TestOnAck(t *testing.T) {
	h := useFakeHost(t)
	var gotAck Ack
	var gotTopic string
	p := &funcPlugin{onAck: func(r *Record, a Ack) error {
		gotAck, gotTopic = a, r.Topic
		if a.Offset < 0 {
			return errors.New("saw a failure")
		}
		return nil
	}}
	rt, _ := newRuntime(t, p)
	in := append([]byte{5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, goldenBytes...)
	copy(rt.in, in)
	if code := rt.onAck(int32(len(in))); code != statusOK {
		t.Fatalf("onAck = %d (%s), want 0", code, h.errMsg)
	}
	if gotAck != (Ack{Offset: 5}) || gotTopic != "t1" {
		t.Fatalf("OnAck saw %+v topic %q", gotAck, gotTopic)
	}
	in = append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 'x'}, goldenBytes...)
	copy(rt.in, in)
	if code := rt.onAck(int32(len(in))); code != statusError || h.errMsg != "saw a failure" {
		t.Fatalf("onAck = %d (%q), want error", code, h.errMsg)
	}
	if gotAck != (Ack{Offset: -1, Error: "x"}) {
		t.Fatalf("OnAck saw %+v", gotAck)
	}
}

func TestSerialize(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(Target, *Record) ([]byte, error)
		target   int32
		wantOut  []byte
		wantCode int64
	}{
		{"bytes", func(tg Target, r *Record) ([]byte, error) { return append([]byte(tg.String()+":"), r.Key...), nil }, 0, []byte("key:k"), statusOK},
		{"alias input", func(_ Target, r *Record) ([]byte, error) { return r.Key, nil }, 1, []byte("k"), statusOK},
		{"null", func(Target, *Record) ([]byte, error) { return nil, nil }, 1, nil, statusNull},
		{"empty", func(Target, *Record) ([]byte, error) { return []byte{}, nil }, 1, nil, statusOK},
		{"error", func(Target, *Record) ([]byte, error) { return []byte("x"), errors.New("bad") }, 1, nil, statusError},
		{"panic", func(Target, *Record) ([]byte, error) { panic("boom") }, 1, nil, statusError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			useFakeHost(t)
			rt, n := newRuntime(t, &funcPlugin{serialize: tt.fn})
			out, code := rt.serialize(tt.target, n)
			if code != tt.wantCode || !bytes.Equal(out, tt.wantOut) {
				t.Fatalf("serialize = (%q, %d), want (%q, %d)", out, code, tt.wantOut, tt.wantCode)
			}
			if len(out) > 0 && !bytes.Equal(rt.keep, out) {
				t.Fatal("result not kept reachable")
			}
		})
	}
}

func TestPartition(t *testing.T) {
	tests := []struct {
		name string
		p    int32
		err  error
		want int64
	}{
		{"first", 0, nil, 0},
		{"last", 9, nil, 9},
		{"default", DefaultPartition, nil, statusDefaultPartition},
		{"too large", 10, nil, statusError},
		{"negative", -7, nil, statusError},
		{"error", 3, errors.New("x"), statusError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			useFakeHost(t)
			var gotN int32
			rt, n := newRuntime(t, &funcPlugin{partition: func(_ *Record, n int32) (int32, error) { gotN = n; return tt.p, tt.err }})
			if got := rt.partition(10, n); got != tt.want {
				t.Fatalf("partition = %d, want %d", got, tt.want)
			}
			if gotN != 10 {
				t.Fatalf("Partition saw %d partitions, want 10", gotN)
			}
		})
	}
}

func TestInit(t *testing.T) {
	h := useFakeHost(t)
	calls := 0
	p := &funcPlugin{init: func() error { calls++; return nil }}
	rt := &runtime{interceptor: p, serializer: p, partitioner: p}
	if code := rt.init(); code != statusOK || calls != 1 {
		t.Fatalf("init = %d with %d Init calls, want 0 and 1", code, calls)
	}
	p.init = func() error { return errors.New("bad config") }
	if code := rt.init(); code != statusError || h.errMsg != "init: bad config" {
		t.Fatalf("init = %d (%q), want error", code, h.errMsg)
	}
	// A plugin without Init is fine.
	rt = &runtime{interceptor: noInit{}}
	if code := rt.init(); code != statusOK {
		t.Fatalf("init without Initializer = %d", code)
	}
}

type noInit struct{ s []int } // incomparable, to exercise containsSame

func (noInit) OnSend(*Record) (Action, error) { return Unchanged, nil }
func (noInit) OnAck(*Record, Ack) error       { return nil }

func TestBuffer(t *testing.T) {
	rt := &runtime{}
	tests := []struct {
		size    int32
		wantLen int // 0 = nil
	}{
		{-1, 0},
		{maxInputBuffer + 1, 0},
		{0, 1},
		{100, 100},
		{50, 100}, // reused
		{200, 200},
	}
	for _, tt := range tests {
		b := rt.buffer(tt.size)
		if len(b) != tt.wantLen {
			t.Fatalf("buffer(%d) has %d bytes, want %d", tt.size, len(b), tt.wantLen)
		}
	}
}

func TestKinds(t *testing.T) {
	p := &funcPlugin{}
	for _, tt := range []struct {
		rt   runtime
		want int32
	}{
		{runtime{interceptor: p}, 1},
		{runtime{serializer: p}, 2},
		{runtime{partitioner: p}, 4},
		{runtime{interceptor: p, partitioner: p}, 5},
	} {
		if got := tt.rt.kinds(); got != tt.want {
			t.Errorf("kinds() = %d, want %d", got, tt.want)
		}
	}
}

// TestSteadyStateAllocs checks that the hot path reuses its buffers: after a
// first call, neither an unchanged nor a changed record allocates.
func TestSteadyStateAllocs(t *testing.T) {
	useFakeHost(t)
	extra := []byte("1")
	tests := []struct {
		name string
		fn   func(*Record) (Action, error)
	}{
		{"unchanged", func(*Record) (Action, error) { return Unchanged, nil }},
		{"changed", func(r *Record) (Action, error) { r.SetHeader("extra", extra); return Changed, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, n := newRuntime(t, &funcPlugin{onSend: tt.fn})
			allocs := testing.AllocsPerRun(100, func() {
				copy(rt.in, goldenBytes)
				if _, code := rt.onSend(n); code != statusOK {
					t.Fatalf("onSend = %d", code)
				}
			})
			if allocs != 0 {
				t.Fatalf("onSend allocates %v times per call, want 0", allocs)
			}
		})
	}
}

func TestDecodeConfig(t *testing.T) {
	type cfg struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name    string
		raw     string
		want    cfg
		wantErr string
	}{
		{"empty", "", cfg{Name: "default"}, ""},
		{"blank", "  \n", cfg{Name: "default"}, ""},
		{"values", `{"name":"x","count":2}`, cfg{Name: "x", Count: 2}, ""},
		{"unknown field", `{"nmae":"x"}`, cfg{}, `unknown field "nmae"`},
		{"trailing", `{} {}`, cfg{}, "data after the JSON value"},
		{"trailing bracket", `{}]`, cfg{}, "data after the JSON value at offset 2"},
		{"bad type", `{"count":"x"}`, cfg{}, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := useFakeHost(t)
			h.cfg = []byte(tt.raw)
			got := cfg{Name: "default"}
			err := DecodeConfig(&got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeConfig error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecodeConfig = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestLogf(t *testing.T) {
	h := useFakeHost(t)
	h.level = LevelWarn
	Logf(LevelInfo, "hidden %d", 1)
	Logf(LevelError, "shown %d", 2)
	Log(LevelDebug, "always passed")
	want := []string{"error: shown 2", "debug: always passed"}
	if strings.Join(h.logs, "|") != strings.Join(want, "|") {
		t.Fatalf("logs = %q, want %q", h.logs, want)
	}
	if LogEnabled(LevelInfo) || !LogEnabled(LevelWarn) {
		t.Fatal("LogEnabled does not follow the host")
	}
}
