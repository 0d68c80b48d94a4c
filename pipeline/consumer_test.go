package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// goConsumeInterceptor is a native consume interceptor driven by the value:
// "drop..." is dropped, "err..." fails, "panic..." panics, "half..." is
// changed and then fails (the consumer must restore it); others are
// upper-cased (a null value stays null).
type goConsumeInterceptor struct{ calls int }

func (g *goConsumeInterceptor) OnConsume(_ context.Context, r *kgo.Record) (plugins.Verdict, error) {
	g.calls++
	v := string(r.Value)
	switch {
	case strings.HasPrefix(v, "drop"):
		return plugins.Drop, nil
	case strings.HasPrefix(v, "err"):
		return plugins.Continue, errors.New("bad record")
	case strings.HasPrefix(v, "panic"):
		panic("boom")
	case strings.HasPrefix(v, "half"):
		r.Value = []byte("HALF-CHANGED")
		return plugins.Continue, errors.New("half way")
	}
	if r.Value != nil {
		r.Value = bytes.ToUpper(r.Value)
	}
	return plugins.Continue, nil
}

// prefixDeserializer strips "x:" and fails on data without it.
type prefixDeserializer struct{}

func (prefixDeserializer) Deserialize(_ context.Context, _ plugins.Target, r *kgo.Record) ([]byte, error) {
	b, ok := bytes.CutPrefix(r.Value, []byte("x:"))
	if !ok {
		return nil, fmt.Errorf("no x: prefix in %q", r.Value)
	}
	return b, nil
}

func fetched(values ...string) []*kgo.Record {
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = &kgo.Record{Topic: "t", Offset: int64(i), Value: []byte(v)}
	}
	return rs
}

// outcomes names the fate of each record by its offset: "d:VALUE",
// "filtered", "failed".
func outcomes(t *testing.T, c pipeline.Consumed, n int) []string {
	t.Helper()
	out := make([]string, n)
	for _, r := range c.Delivered {
		out[r.Offset] = "d:" + string(r.Value)
	}
	for _, rj := range c.Filtered {
		out[rj.Record.Offset] = "filtered"
	}
	for _, rj := range c.Failed {
		if rj.Err == nil || !strings.Contains(rj.Err.Error(), rj.Plugin) {
			t.Errorf("failed record %d: error %v does not name plugin %q", rj.Record.Offset, rj.Err, rj.Plugin)
		}
		out[rj.Record.Offset] = "failed"
	}
	if c.Len() != n {
		t.Errorf("%d outcomes for %d records", c.Len(), n)
	}
	return out
}

func TestConsumerPolicies(t *testing.T) {
	values := []string{"a", "drop", "err", "panic", "half", "b"}
	tests := []struct {
		policy pipeline.FailurePolicy
		want   []string
	}{
		{pipeline.SkipPlugin, []string{"d:A", "filtered", "d:err", "d:panic", "d:half", "d:B"}},
		{pipeline.FailRecord, []string{"d:A", "filtered", "failed", "failed", "failed", "d:B"}},
		{pipeline.DropRecord, []string{"d:A", "filtered", "filtered", "filtered", "filtered", "d:B"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			c, err := pipeline.NewConsumer(nil,
				pipeline.ConsumeInterceptor("upper", &goConsumeInterceptor{}, pipeline.OnFailure(tt.policy)),
				pipeline.ConsumerLogger(hclog.NewNullLogger()))
			if err != nil {
				t.Fatal(err)
			}
			res := c.Process(context.Background(), fetched(values...))
			got := outcomes(t, res, len(values))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("outcomes %v, want %v", got, tt.want)
			}
			st := c.Stats()
			if st.Delivered+st.Filtered+st.Failed != uint64(len(values)) || len(st.Plugins) != 1 ||
				st.Plugins[0].Hook != pipeline.HookOnConsume || st.Plugins[0].Failures != 3 || st.Plugins[0].Calls != 6 {
				t.Errorf("stats %+v", st)
			}
			for _, rj := range res.Failed {
				if !errors.Is(rj.Err, pipeline.ErrPluginFailed) || rj.Hook != pipeline.HookOnConsume {
					t.Errorf("failed record: %+v", rj)
				}
			}
		})
	}
}

func TestConsumerDeserializers(t *testing.T) {
	for _, policy := range []pipeline.FailurePolicy{pipeline.FailRecord, pipeline.DropRecord} {
		t.Run(policy.String(), func(t *testing.T) {
			ic := &goConsumeInterceptor{}
			c, err := pipeline.NewConsumer(nil,
				pipeline.ValueDeserializer("prefix", prefixDeserializer{}, pipeline.OnFailure(policy)),
				pipeline.ConsumeInterceptor("upper", ic),
				pipeline.ConsumerLogger(hclog.NewNullLogger()))
			if err != nil {
				t.Fatal(err)
			}
			rs := fetched("x:a", "plain", "x:b")
			rs = append(rs, &kgo.Record{Offset: 3}) // a tombstone: never deserialized
			res := c.Process(context.Background(), rs)
			wantBad := "failed"
			if policy == pipeline.DropRecord {
				wantBad = "filtered"
			}
			want := []string{"d:A", wantBad, "d:B", "d:"}
			if got := outcomes(t, res, 4); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("outcomes %v, want %v", got, want)
			}
			if res.Delivered[2].Value != nil {
				t.Errorf("tombstone value %q, want null", res.Delivered[2].Value)
			}
			if ic.calls != 3 {
				t.Errorf("interceptor saw %d records, want 3 (not the one the deserializer rejected)", ic.calls)
			}
		})
	}
	_, err := pipeline.NewConsumer(nil, pipeline.ValueDeserializer("p", prefixDeserializer{}, pipeline.OnFailure(pipeline.SkipPlugin)))
	if err == nil || !strings.Contains(err.Error(), `on_failure "skip" is not a policy of a deserializer (want fail or drop)`) {
		t.Errorf("NewConsumer with a skipping deserializer: %v", err)
	}
}

// TestConsumerBreaker checks that an open breaker applies the policy to
// the records it bypasses.
func TestConsumerBreaker(t *testing.T) {
	ic := &goConsumeInterceptor{}
	c, err := pipeline.NewConsumer(nil,
		pipeline.ConsumeInterceptor("upper", ic, pipeline.OnFailure(pipeline.FailRecord), pipeline.PluginCircuitBreaker(2, time.Hour)),
		pipeline.ConsumerLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	res := c.Process(context.Background(), fetched("err", "err", "a", "b"))
	if len(res.Failed) != 4 || ic.calls != 2 || !errors.Is(res.Failed[3].Err, pipeline.ErrBypassed) {
		t.Errorf("failed %d, calls %d, last error %v: want 4 failed, 2 calls, then bypassed", len(res.Failed), ic.calls, res.Failed[3].Err)
	}
	if st := c.Stats().Plugins[0]; st.Bypasses != 2 {
		t.Errorf("bypasses %d, want 2", st.Bypasses)
	}
}

// closeCounter counts Close calls.
type closeCounter struct {
	goConsumeInterceptor
	closed int
}

func (c *closeCounter) Close(context.Context) error { c.closed++; return nil }

func TestConsumerSwap(t *testing.T) {
	a, b := &closeCounter{}, &closeCounter{}
	c, err := pipeline.NewConsumer(nil, pipeline.ConsumeInterceptor("a", a))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Process(context.Background(), fetched("x")); r.ChainVersion != 1 || string(r.Delivered[0].Value) != "X" {
		t.Fatalf("%+v", r)
	}
	v, err := c.Swap(context.Background(), pipeline.ConsumeInterceptor("b", b))
	if err != nil || v != 2 || a.closed != 1 || b.closed != 0 {
		t.Fatalf("Swap = %d, %v; closed a %d b %d", v, err, a.closed, b.closed)
	}
	if r := c.Process(context.Background(), fetched("y")); r.ChainVersion != 2 || b.calls != 1 || a.calls != 1 {
		t.Errorf("after swap: version %d, calls a %d b %d", r.ChainVersion, a.calls, b.calls)
	}
	if _, err := c.Swap(context.Background(), pipeline.ConsumerLogger(hclog.NewNullLogger())); err == nil {
		t.Error("Swap accepted ConsumerLogger")
	}
	if err := c.Close(context.Background()); err != nil || b.closed != 1 {
		t.Errorf("Close: %v, b closed %d times", err, b.closed)
	}
	if _, err := c.Swap(context.Background()); !errors.Is(err, pipeline.ErrClosed) {
		t.Errorf("Swap after Close: %v", err)
	}
}

// TestConsumerWASM runs the masking and the filtering example plugins on
// records fetched from the embedded broker, in batches, with a trap that
// costs exactly its record.
func TestConsumerWASM(t *testing.T) {
	e := setup(t, 1)
	p := e.producer(t)
	values := []string{"card 4111-1111", "#hidden", "!trap", "?refuse", "plain"}
	for _, v := range values {
		if res := p.SendSync(ctxT(t), rec("", v)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(e.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mask := wasmPlugin(t, "mask.wasm", plugins.KindConsumeInterceptor).ConsumeInterceptor()
	filter := wasmPlugin(t, "filter.wasm", plugins.KindConsumeInterceptor).ConsumeInterceptor()
	c, err := pipeline.NewConsumer(cl,
		pipeline.ConsumeInterceptor("filter", filter, pipeline.OnFailure(pipeline.FailRecord)),
		pipeline.ConsumeInterceptor("mask", mask),
		pipeline.ConsumerLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var all pipeline.Consumed
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for all.Len() < len(values) {
		got, _, err := c.Poll(ctx, 0)
		if err != nil || ctx.Err() != nil {
			t.Fatalf("Poll: %v (%d of %d records)", err, all.Len(), len(values))
		}
		all.Delivered = append(all.Delivered, got.Delivered...)
		all.Filtered = append(all.Filtered, got.Filtered...)
		all.Failed = append(all.Failed, got.Failed...)
	}
	got := outcomes(t, all, len(values))
	want := []string{"d:card ****-****", "filtered", "failed", "failed", "d:plain"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	for _, rj := range all.Failed {
		if rj.Plugin != "filter" || !strings.Contains(rj.Err.Error(), "kpipe_on_consume") {
			t.Errorf("failure %v does not name the plugin and the hook", rj.Err)
		}
	}
	if st := mask.Plugin().Stats(); st.Calls.OnConsume != 2 {
		t.Errorf("mask saw %d records, want the 2 the filter passed", st.Calls.OnConsume)
	}
}

// stopper is a consume interceptor and deserializer that ends the caller's
// context on the value "stop", as Ctrl-C would in the middle of its call,
// and returns the context's error; it passes other records unchanged.
type stopper struct{ cancel context.CancelFunc }

func (s stopper) OnConsume(ctx context.Context, r *kgo.Record) (plugins.Verdict, error) {
	if string(r.Value) == "stop" {
		s.cancel()
		return plugins.Continue, ctx.Err()
	}
	return plugins.Continue, nil
}

func (s stopper) Deserialize(ctx context.Context, _ plugins.Target, r *kgo.Record) ([]byte, error) {
	if string(r.Value) == "stop" {
		s.cancel()
		return nil, ctx.Err()
	}
	return r.Value, nil
}

// TestConsumerInterrupted ends Process's context during a plugin call:
// the record of that call and those after it fail as interrupted, whatever
// the plugin's policy (skip must not deliver records the plugin never saw),
// and none counts as the plugin's failure.
func TestConsumerInterrupted(t *testing.T) {
	values := []string{"a", "stop", "b", "c"}
	want := []string{"d:a", "failed", "failed", "failed"}
	for _, kind := range []string{"interceptor", "deserializer"} {
		for _, policy := range []pipeline.FailurePolicy{pipeline.SkipPlugin, pipeline.FailRecord, pipeline.DropRecord} {
			if kind == "deserializer" && policy == pipeline.SkipPlugin {
				continue // not a policy of deserializers
			}
			t.Run(kind+"/"+policy.String(), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				opt := pipeline.ConsumeInterceptor("stopper", stopper{cancel}, pipeline.OnFailure(policy))
				if kind == "deserializer" {
					opt = pipeline.ValueDeserializer("stopper", stopper{cancel}, pipeline.OnFailure(policy))
				}
				c, err := pipeline.NewConsumer(nil, opt, pipeline.ConsumerLogger(hclog.NewNullLogger()))
				if err != nil {
					t.Fatal(err)
				}
				res := c.Process(ctx, fetched(values...))
				if got := outcomes(t, res, len(values)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("outcomes %v, want %v", got, want)
				}
				for _, rj := range res.Failed {
					if !pipeline.IsInterrupted(rj.Err) || !errors.Is(rj.Err, context.Canceled) {
						t.Errorf("record %d: %v, want an interrupted record's error", rj.Record.Offset, rj.Err)
					}
				}
				if st := c.Stats(); len(st.Plugins) != 1 || st.Plugins[0].Failures != 0 {
					t.Errorf("stats %+v, want no plugin failure", st)
				}
			})
		}
	}
}
