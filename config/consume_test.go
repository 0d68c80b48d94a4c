package config

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

func TestParseConsumer(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "mask.wasm")
	writeModule(t, dir, "unwrap.wasm")
	src := `
kafka { brokers = ["127.0.0.1:9092"] }

consumer "payments" {
  topics    = ["payments", "refunds"]
  group     = "readers"
  start     = "earliest"
  isolation = "read_committed"

  value_deserializer {
    module     = "unwrap.wasm"
    on_failure = "drop"
  }
  interceptor "mask" {
    module     = "mask.wasm"
    on_failure = "fail"
    circuit_breaker {
      threshold = 3
      cooldown  = "1s"
    }
  }
  circuit_breaker {
    threshold = 5
    cooldown  = "2s"
  }
}
`
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "k.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Pipelines) != 0 || len(cfg.Consumers) != 1 {
		t.Fatalf("%d pipelines, %d consumers", len(cfg.Pipelines), len(cfg.Consumers))
	}
	c, err := cfg.Consumer("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "payments" || fmt.Sprint(c.Topics) != "[payments refunds]" || c.Group != "readers" ||
		c.Start != "earliest" || c.Isolation != "read_committed" || c.KeyDeserializer != nil {
		t.Errorf("consumer %+v", c)
	}
	vd := c.ValueDeserializer
	if vd == nil || vd.Kind != plugins.KindDeserializer || vd.Name != "unwrap" || vd.OnFailure != pipeline.DropRecord {
		t.Errorf("value deserializer %+v", vd)
	}
	if len(c.Interceptors) != 1 || c.Interceptors[0].Kind != plugins.KindConsumeInterceptor ||
		c.Interceptors[0].OnFailure != pipeline.FailRecord || c.Interceptors[0].CircuitBreaker.Threshold != 3 {
		t.Errorf("interceptors %+v", c.Interceptors)
	}
	if c.CircuitBreaker == nil || c.CircuitBreaker.Threshold != 5 {
		t.Errorf("circuit breaker %+v", c.CircuitBreaker)
	}
	if _, err := cfg.Consumer("other"); err == nil || !strings.Contains(err.Error(), `no consumer named "other"`) {
		t.Errorf("Consumer(other): %v", err)
	}
}

func TestParseConsumerErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "attributes",
			src: `consumer "c" {
  topics    = ["a", ""]
  group     = ""
  start     = "beginning"
  isolation = "serializable"
  offset    = 5
}
`,
			want: []string{
				"2:15: error: Invalid topics",
				"3:15: error: Invalid group",
				"4:15: error: Invalid start",
				`5:15: error: Invalid isolation: isolation must be "read_committed" or "read_uncommitted", not "serializable".`,
				"6:3: error: Unsupported argument",
			},
		},
		{
			name: "plugins",
			src: `consumer "c" {
  interceptor "m" { builtin = "json" }
  interceptor "m" { module = "m.wasm" }
  value_deserializer {
    module     = "m.wasm"
    on_failure = "skip"
    circuit_breaker {
      threshold = 1
      cooldown  = "1s"
    }
  }
  value_deserializer { module = "m.wasm" }
  key_deserializer { builtin = "string" }
  interceptor "p" {
    module     = "m.wasm"
    on_failure = "default"
  }
}
`,
			want: []string{
				"2:31: error: Invalid builtin",
				"3:15: error: Duplicate interceptor name",
				"6:18: error: Invalid on_failure",
				"7:5: error: Not allowed in a deserializer",
				"12:3: error: Duplicate value_deserializer block",
				"13:32: error: Invalid builtin",
				"16:18: error: Invalid on_failure",
			},
		},
		{
			name: "duplicate consumer",
			src:  "consumer \"c\" {}\nconsumer \"c\" {}\n",
			want: []string{"2:10: error: Duplicate consumer name"},
		},
		{
			name: "empty names",
			src:  "consumer \"\" {\n  interceptor \"\" { module = \"m.wasm\" }\n}\n",
			want: []string{"1:10: error: Invalid consumer name", "2:15: error: Invalid interceptor name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeModule(t, dir, "m.wasm")
			file := filepath.Join(dir, "kpipe.hcl")
			wantDiagnostics(t, file, tt.src, tt.want)
		})
	}
}

// TestLoadConsumer loads a consumer block's modules and runs them through
// a pipeline.Consumer; a module of the wrong kind is reported at its block
// by LoadConsumer and at its module attribute by CheckModules.
func TestLoadConsumer(t *testing.T) {
	mask := plugintest.WAT(t, "examples/plugins/wat/mask.wasm")
	filter := plugintest.WAT(t, "examples/plugins/wat/filter.wasm")
	noop := plugintest.WAT(t, "examples/plugins/wat/noop.wasm")
	dir := t.TempDir()
	src := fmt.Sprintf(`consumer "c" {
  interceptor "filter" {
    module     = %q
    on_failure = "drop"
  }
  interceptor "mask" { module = %q }
}
consumer "wrong" {
  interceptor "noop" { module = %q }
}
`, filter, mask, noop)
	file := filepath.Join(dir, "k.hcl")
	cfg, diags := Parse([]byte(src), file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	host := newHost(t)
	ctx := context.Background()
	ch, err := cfg.LoadConsumer(ctx, cfg.Consumers[0], host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pipeline.NewConsumer(nil, ch.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rs := []*kgo.Record{{Value: []byte("pin 1234")}, {Value: []byte("!x"), Offset: 1}, {Value: []byte("#y"), Offset: 2}}
	res := c.Process(ctx, rs)
	if len(res.Delivered) != 1 || string(res.Delivered[0].Value) != "pin ****" || len(res.Filtered) != 2 {
		t.Errorf("delivered %d, filtered %d: want \"pin ****\" and 2 filtered", len(res.Delivered), len(res.Filtered))
	}
	_, err = cfg.LoadConsumer(ctx, cfg.Consumers[1], host)
	if err == nil || !strings.Contains(err.Error(), "k.hcl:9:3: ") || !strings.Contains(err.Error(), "wrong kind: loaded as consume interceptor") {
		t.Errorf("LoadConsumer(wrong): %v", err)
	}
	diags = cfg.CheckModules(ctx, host)
	if len(diags) != 1 || diags[0].Subject.Start.Line != 9 || !strings.Contains(diags[0].Detail, "wrong kind") {
		t.Errorf("CheckModules: %v", diags)
	}
}

// TestPickBlock picks the only pipeline or consumer block of a file, and
// says what the file holds when it has none of the kind asked for.
func TestPickBlock(t *testing.T) {
	const (
		pipe = "pipeline \"p\" { topic = \"t\" }\n"
		cons = "consumer \"c\" { topics = [\"t\"] }\n"
	)
	tests := []struct {
		name, src string
		consumer  bool
		want      string // the block's name, or with wantErr a part of the error
		wantErr   bool
	}{
		{"pipeline of a pipeline file", pipe, false, "p", false},
		{"consumer of a consumer file", cons, true, "c", false},
		{"pipeline of a consumer file", cons, false, `defines no pipeline "NAME" block, only consumer blocks (kpipe consume --config runs those)`, true},
		{"consumer of a pipeline file", pipe, true, `defines no consumer "NAME" block, only pipeline blocks (kpipe run --config runs those)`, true},
		{"pipeline of two", pipe + "pipeline \"q\" { topic = \"t\" }\n" + cons, false, `defines 2 pipelines ["p" "q"]: choose one`, true},
		{"pipeline of both", pipe + cons, false, "p", false},
		{"consumer of both", pipe + cons, true, "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse([]byte(tt.src), "kpipe.hcl")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var got string
			var err error
			if tt.consumer {
				var c *Consumer
				if c, err = cfg.Consumer(""); err == nil {
					got = c.Name
				}
			} else {
				var p *Pipeline
				if p, err = cfg.Pipeline(""); err == nil {
					got = p.Name
				}
			}
			if err != nil {
				got = err.Error()
			}
			if (err != nil) != tt.wantErr || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
