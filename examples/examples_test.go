// Package examples_test loads the example plugins of examples/plugins through
// wasmhost, as a pipeline does, and checks what they do to real records.
package examples_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// cacheDir is a compilation cache shared by the tests of this process, so
// that each Go plugin is compiled by wazero once.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kpipe-examples-cache-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects what plugins log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loadFile loads the module at path as kind with the JSON config, on a host
// that is closed when the test ends, and returns the plugin and its log.
func loadFile(t testing.TB, path string, kind plugins.Kind, config string, extra ...wasmhost.PluginOption) (*wasmhost.Plugin, *logBuffer) {
	t.Helper()
	p, logs, err := tryLoad(t, path, kind, config, extra...)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	return p, logs
}

func tryLoad(t testing.TB, path string, kind plugins.Kind, config string, extra ...wasmhost.PluginOption) (*wasmhost.Plugin, *logBuffer, error) {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	h, err := wasmhost.New(ctx, wasmhost.WithCompilationCacheDir(cacheDir), wasmhost.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(ctx); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
	})
	opts := extra
	if config != "" {
		opts = append(opts, wasmhost.WithConfig([]byte(config)))
	}
	p, err := h.LoadFile(ctx, path[strings.LastIndex(path, "/")+1:], path, kind, opts...)
	return p, logs, err
}

// goPlugin builds the Go example plugin name and loads it.
func goPlugin(t testing.TB, name string, kind plugins.Kind, config string, extra ...wasmhost.PluginOption) (*wasmhost.Plugin, *logBuffer) {
	t.Helper()
	return loadFile(t, plugintest.GoPlugin(t, "examples/plugins/"+name), kind, config, extra...)
}

// watPlugin loads the committed WAT example plugin name.
func watPlugin(t testing.TB, name string, kind plugins.Kind) *wasmhost.Plugin {
	t.Helper()
	p, _ := loadFile(t, plugintest.WAT(t, "examples/plugins/wat/"+name+".wat"), kind, "")
	return p
}

// headerList renders headers as name=value (name=<null> for a null value).
func headerList(hs []plugins.Header) []string {
	var out []string
	for _, h := range hs {
		v := string(h.Value)
		if h.Value == nil {
			v = "<null>"
		}
		out = append(out, h.Key+"="+v)
	}
	return out
}

func TestHeaderstamp(t *testing.T) {
	// One instance, so that its sequence numbers and counters see every
	// record.
	p, logs := goPlugin(t, "headerstamp", plugins.KindInterceptor,
		`{"headers": {"source": "kpipe", "env": "test"}, "sequence_header": "seq", "log_every": 2}`,
		wasmhost.WithPoolSize(1))
	ctx := context.Background()
	r := &plugins.Record{
		Topic:   "orders",
		Key:     []byte("k"),
		Value:   []byte("v"),
		Headers: []plugins.Header{{Key: "trace", Value: []byte("abc")}, {Key: "source", Value: []byte("old")}, {Key: "n"}},
	}
	for seq := 1; seq <= 2; seq++ {
		v, err := p.OnSend(ctx, r)
		if err != nil || v != plugins.Continue {
			t.Fatalf("OnSend = %v, %v", v, err)
		}
		want := fmt.Sprint([]string{"trace=abc", "source=kpipe", "n=<null>", "env=test", "seq=" + fmt.Sprint(seq)})
		if got := fmt.Sprint(headerList(r.Headers)); got != want {
			t.Fatalf("headers after call %d = %s, want %s", seq, got, want)
		}
		if r.Topic != "orders" || string(r.Key) != "k" || string(r.Value) != "v" {
			t.Fatalf("OnSend changed more than headers: %+v", r)
		}
	}
	if err := p.OnAck(ctx, r, plugins.Ack{Offset: 10}); err != nil {
		t.Fatal(err)
	}
	if err := p.OnAck(ctx, r, plugins.Ack{Offset: -1, Err: errors.New("broker down")}); err != nil {
		t.Fatal(err)
	}
	if want := "acks in this instance: 1 delivered, 1 failed"; !strings.Contains(logs.String(), want) {
		t.Fatalf("log does not contain %q:\n%s", want, logs)
	}
	if want := "failed: broker down"; !strings.Contains(logs.String(), want) {
		t.Fatalf("log does not contain %q:\n%s", want, logs)
	}
}

func TestConfigErrorsFailLoad(t *testing.T) {
	tests := []struct {
		plugin string
		kind   plugins.Kind
		config string
		want   string
	}{
		{"headerstamp", plugins.KindInterceptor, `{"header": {"a": "b"}}`, `unknown field "header"`},
		{"headerstamp", plugins.KindInterceptor, ``, "nothing to do"},
		{"redact", plugins.KindInterceptor, `{"fields": ["a..b"]}`, "empty step"},
		{"route", plugins.KindPartitioner, `{"routes": {"eu": 1}}`, `"routes" needs "field"`},
		{"schemaprefix", plugins.KindSerializer, `{"schema_id": -1}`, "schema_id -1 is not in"},
	}
	for _, tt := range tests {
		t.Run(tt.plugin, func(t *testing.T) {
			_, _, err := tryLoad(t, plugintest.GoPlugin(t, "examples/plugins/"+tt.plugin), tt.kind, tt.config)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	p, _ := goPlugin(t, "redact", plugins.KindInterceptor,
		`{"fields": ["ssn", "card.number"], "replacement": "[hidden]", "drop_if_missing": "user_id"}`)
	tests := []struct {
		name    string
		value   []byte
		verdict plugins.Verdict
		want    []byte
	}{
		{"nested", []byte(`{"user_id": 7, "ssn": "123-45-6789", "card": {"number": "4111 1111", "exp": "12/30"}}`),
			plugins.Continue, []byte(`{"user_id": 7, "ssn": "[hidden]", "card": {"number": "[hidden]", "exp": "12/30"}}`)},
		{"nothing to redact", []byte(`{"user_id": 7, "name": "x"}`), plugins.Continue, []byte(`{"user_id": 7, "name": "x"}`)},
		{"missing user_id", []byte(`{"ssn": "1"}`), plugins.Drop, nil},
		{"not JSON", []byte("ssn=123"), plugins.Continue, []byte("ssn=123")},
		{"tombstone", nil, plugins.Continue, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &plugins.Record{Topic: "people", Key: []byte("k"), Value: tt.value}
			v, err := p.OnSend(context.Background(), r)
			if err != nil || v != tt.verdict {
				t.Fatalf("OnSend = %v, %v; want %v", v, err, tt.verdict)
			}
			if v == plugins.Drop {
				return
			}
			if !bytes.Equal(r.Value, tt.want) || (r.Value == nil) != (tt.want == nil) {
				t.Fatalf("value = %q, want %q", r.Value, tt.want)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	p, _ := goPlugin(t, "route", plugins.KindPartitioner,
		`{"field": "region", "routes": {"eu": 0, "us": 1, "apac": 7}, "key_prefix_routes": {"vip-": 2}}`)
	tests := []struct {
		name    string
		key     []byte
		value   string
		want    int32
		wantErr string
	}{
		{"field eu", []byte("a"), `{"region": "eu"}`, 0, ""},
		{"field us", nil, `{"region": "us", "x": 1}`, 1, ""},
		{"key prefix", []byte("vip-42"), `{"region": "mars"}`, 2, ""},
		{"unknown: default", []byte("c"), `{"region": "mars"}`, plugins.DefaultPartition, ""},
		{"not JSON, null key: default", nil, `plain`, plugins.DefaultPartition, ""},
		{"route beyond the topic", nil, `{"region": "apac"}`, plugins.DefaultPartition, "maps to partition 7, but the topic has 3 partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &plugins.Record{Topic: "t", Key: tt.key, Value: []byte(tt.value)}
			got, err := p.Partition(context.Background(), r, 3)
			if tt.wantErr != "" {
				var ge *wasmhost.GuestError
				if !errors.As(err, &ge) || !strings.Contains(ge.Message, tt.wantErr) {
					t.Fatalf("Partition error = %v, want a GuestError containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Partition = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestRouteAfterSchemaprefix chains the two plugins as a pipeline does: the
// partitioner sees the value the serializer framed.
func TestRouteAfterSchemaprefix(t *testing.T) {
	ctx := context.Background()
	ser, _ := goPlugin(t, "schemaprefix", plugins.KindSerializer, `{"schema_id": 7}`)
	part, _ := goPlugin(t, "route", plugins.KindPartitioner, `{"field": "region", "routes": {"eu": 0, "us": 1}}`)
	r := &plugins.Record{Topic: "t", Value: []byte(`{"region": "us", "n": 1}`)}
	framed, err := ser.Serialize(ctx, plugins.TargetValue, r)
	if err != nil {
		t.Fatal(err)
	}
	r.Value = framed
	if got, err := part.Partition(ctx, r, 2); err != nil || got != 1 {
		t.Fatalf("Partition(framed value) = %d, %v; want 1", got, err)
	}
}

func TestSchemaprefix(t *testing.T) {
	p, _ := goPlugin(t, "schemaprefix", plugins.KindSerializer, `{"schema_id": 258}`)
	ctx := context.Background()
	r := &plugins.Record{Topic: "t", Key: []byte("plain key"), Value: []byte("{ \"id\" : 1,\n \"tags\": [\"a\", \"b\"] }\n")}
	got, err := p.Serialize(ctx, plugins.TargetValue, r)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0, 0, 0, 1, 2}, `{"id":1,"tags":["a","b"]}`...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Serialize(value) = %q, want %q", got, want)
	}
	// Without key_schema_id keys pass through unchanged.
	if got, err := p.Serialize(ctx, plugins.TargetKey, r); err != nil || string(got) != "plain key" {
		t.Fatalf("Serialize(key) = %q, %v; want the key unchanged", got, err)
	}
	r.Value = []byte(`{"id": `)
	_, err = p.Serialize(ctx, plugins.TargetValue, r)
	var ge *wasmhost.GuestError
	if !errors.As(err, &ge) || !strings.Contains(ge.Message, "value is not valid JSON") {
		t.Fatalf("Serialize(invalid) error = %v, want a GuestError about invalid JSON", err)
	}
}

func TestNoop(t *testing.T) {
	p := watPlugin(t, "noop", plugins.KindInterceptor)
	r := &plugins.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"), Headers: []plugins.Header{{Key: "h", Value: []byte("1")}}}
	before := fmt.Sprintf("%+v", *r)
	if v, err := p.OnSend(context.Background(), r); err != nil || v != plugins.Continue {
		t.Fatalf("OnSend = %v, %v", v, err)
	}
	if after := fmt.Sprintf("%+v", *r); after != before {
		t.Fatalf("noop changed the record:\n%s\n%s", before, after)
	}
	if err := p.OnAck(context.Background(), r, plugins.Ack{Offset: 1}); err != nil {
		t.Fatal(err)
	}
	// A record larger than the first input buffer makes the module grow its
	// memory.
	r.Value = bytes.Repeat([]byte("x"), 300_000)
	if _, err := p.OnSend(context.Background(), r); err != nil {
		t.Fatalf("OnSend(300 kB): %v", err)
	}
}

func TestTrapIsContained(t *testing.T) {
	p := watPlugin(t, "trap", plugins.KindInterceptor)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r := &plugins.Record{Topic: "t", Value: []byte("v")}
		v, err := p.OnSend(ctx, r)
		var f *wasmhost.Fault
		if !errors.As(err, &f) {
			t.Fatalf("OnSend error = %v, want a *wasmhost.Fault", err)
		}
		if v != plugins.Continue || r.Topic != "t" || string(r.Value) != "v" {
			t.Fatalf("after a fault: verdict %v, record %+v; want the record unchanged", v, r)
		}
	}
	if err := p.OnAck(ctx, &plugins.Record{}, plugins.Ack{Offset: 1}); err != nil {
		t.Fatalf("OnAck after faults: %v", err)
	}
	if s := p.Stats(); s.InstancesReplaced != 3 {
		t.Fatalf("InstancesReplaced = %d, want 3", s.InstancesReplaced)
	}
}

// TestKeyhashMatchesKafka checks that keyhash.wat chooses the partitions
// franz-go's Kafka-compatible partitioner (murmur2, as Java's
// DefaultPartitioner) chooses, for keys of every length up to 64 bytes and
// every tail length, with all byte values, one key of 200 kB, and several
// partition counts.
func TestKeyhashMatchesKafka(t *testing.T) {
	p := watPlugin(t, "keyhash", plugins.KindPartitioner)
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	ctx := context.Background()
	var keys [][]byte
	keys = append(keys, []byte{}, []byte("a"), []byte("ab"), []byte("abc"), []byte("abcd"), []byte("21"), []byte("foobar"))
	state := uint32(1)
	for i := 0; i < 2000; i++ {
		k := make([]byte, i%65)
		for j := range k {
			state = state*1664525 + 1013904223 // LCG: deterministic, covers all byte values
			k[j] = byte(state >> 24)
		}
		keys = append(keys, k)
	}
	// A key larger than the first input buffer makes the module grow its
	// memory.
	big := make([]byte, 200_003)
	for i := range big {
		big[i] = byte(i * 7)
	}
	keys = append(keys, big)
	for _, n := range []int32{1, 3, 12, 64, 1000} {
		for _, k := range keys {
			want := int32(ref.Partition(&kgo.Record{Key: k}, int(n)))
			got, err := p.Partition(ctx, &plugins.Record{Topic: "some-topic", Key: k, Value: []byte("v")}, n)
			if err != nil {
				t.Fatalf("Partition(%.40x, %d): %v", k, n, err)
			}
			if got != want {
				t.Fatalf("Partition(key %.40x (%d bytes), %d partitions) = %d, franz-go chooses %d", k, len(k), n, got, want)
			}
		}
	}
}

// TestKeyhashKnownValues pins murmur2 itself with values from Kafka's own
// tests (UtilsTest.testMurmur2), through a partition count that exposes
// the masked hash: 2^31 - 1.
func TestKeyhashKnownValues(t *testing.T) {
	p := watPlugin(t, "keyhash", plugins.KindPartitioner)
	tests := []struct {
		key  string
		hash int32 // Kafka's Utils.murmur2 result, a signed int
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tt := range tests {
		want := int32(uint32(tt.hash)&0x7fffffff) % (1<<31 - 1)
		got, err := p.Partition(context.Background(), &plugins.Record{Key: []byte(tt.key)}, 1<<31-1)
		if err != nil || got != want {
			t.Errorf("Partition(%q) = %d, %v; want %d", tt.key, got, err, want)
		}
	}
}

func TestKeyhashNullKey(t *testing.T) {
	p := watPlugin(t, "keyhash", plugins.KindPartitioner)
	got, err := p.Partition(context.Background(), &plugins.Record{Topic: "t", Value: []byte("v")}, 10)
	if err != nil || got != plugins.DefaultPartition {
		t.Fatalf("Partition(null key) = %d, %v; want DefaultPartition", got, err)
	}
}

// benchRecord is a typical small record: a 16-byte key, a 200-byte JSON value
// and two headers.
func benchRecord() *plugins.Record {
	return &plugins.Record{
		Topic:   "orders",
		Key:     []byte("customer-0000042"),
		Value:   []byte(`{"user_id":42,"region":"eu","ssn":"123-45-6789","card":{"number":"4111 1111 1111 1111","exp":"12/30"},"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"leave at the door"}`),
		Headers: []plugins.Header{{Key: "trace-id", Value: []byte("4bf92f3577b34da6")}, {Key: "origin", Value: []byte("web")}},
	}
}

// BenchmarkExamples measures one hook call per iteration through wasmhost,
// including copying the record in and out of the module, with the default
// call timeout (timeout=1s) and without one (timeout=0), which lets wazero
// compile the module without termination checks.
func BenchmarkExamples(b *testing.B) {
	for _, timeout := range []time.Duration{wasmhost.DefaultCallTimeout, 0} {
		b.Run(fmt.Sprintf("timeout=%v", timeout), func(b *testing.B) {
			benchExamples(b, wasmhost.WithCallTimeout(timeout))
		})
	}
}

func benchExamples(b *testing.B, opt wasmhost.PluginOption) {
	ctx := context.Background()
	interceptor := func(b *testing.B, p *wasmhost.Plugin, value []byte) {
		r := benchRecord()
		if value != nil {
			r.Value = value
		}
		orig := *r
		b.ReportAllocs()
		for b.Loop() {
			*r = orig
			if _, err := p.OnSend(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	partition := func(b *testing.B, p *wasmhost.Plugin) {
		r := benchRecord()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Partition(ctx, r, 12); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("noop.wat/OnSend", func(b *testing.B) {
		p, _ := loadFile(b, plugintest.WAT(b, "examples/plugins/wat/noop.wat"), plugins.KindInterceptor, "", opt)
		interceptor(b, p, nil)
	})
	b.Run("keyhash.wat/Partition", func(b *testing.B) {
		p, _ := loadFile(b, plugintest.WAT(b, "examples/plugins/wat/keyhash.wat"), plugins.KindPartitioner, "", opt)
		partition(b, p)
	})
	b.Run("headerstamp/OnSend", func(b *testing.B) {
		p, _ := goPlugin(b, "headerstamp", plugins.KindInterceptor, `{"headers":{"source":"kpipe"},"sequence_header":"seq"}`, opt)
		interceptor(b, p, nil)
	})
	b.Run("redact/OnSend-not-JSON", func(b *testing.B) {
		p, _ := goPlugin(b, "redact", plugins.KindInterceptor, `{"fields":["ssn"]}`, opt)
		interceptor(b, p, []byte("plain text, not JSON"))
	})
	b.Run("redact/OnSend-redacted", func(b *testing.B) {
		p, _ := goPlugin(b, "redact", plugins.KindInterceptor, `{"fields":["ssn","card.number"]}`, opt)
		interceptor(b, p, nil)
	})
	b.Run("route/Partition", func(b *testing.B) {
		p, _ := goPlugin(b, "route", plugins.KindPartitioner, `{"field":"region","routes":{"eu":0,"us":1}}`, opt)
		partition(b, p)
	})
	b.Run("schemaprefix/Serialize", func(b *testing.B) {
		p, _ := goPlugin(b, "schemaprefix", plugins.KindSerializer, `{"schema_id":42}`, opt)
		r := benchRecord()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Serialize(ctx, plugins.TargetValue, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAckExports checks that only the Go example with OnAck (headerstamp,
// which imports the SDK's package ack) exports kpipe_on_ack: redact, which
// has no OnAck, gets no acknowledgements, so the pipeline keeps nothing for
// it until the broker answers.
func TestAckExports(t *testing.T) {
	stamp, _ := goPlugin(t, "headerstamp", plugins.KindInterceptor, `{"headers": {"source": "kpipe"}}`, wasmhost.WithPoolSize(1))
	if !stamp.WantsAcks() {
		t.Error("headerstamp does not export kpipe_on_ack")
	}
	redact, _ := goPlugin(t, "redact", plugins.KindInterceptor, `{"fields": ["card"]}`, wasmhost.WithPoolSize(1))
	if redact.WantsAcks() {
		t.Error("redact exports kpipe_on_ack, but has no OnAck")
	}
}
