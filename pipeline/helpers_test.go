package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// logBuffer collects a producer's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	brokers []string
	topic   string
	log     *logBuffer
}

// setup returns brokers, a new topic with the given partitions and a log.
func setup(t *testing.T, partitions int32) *env {
	t.Helper()
	b := testbroker.Brokers(t)
	return &env{brokers: b, topic: testbroker.CreateTopic(t, b, partitions), log: new(logBuffer)}
}

// producer creates a Producer that is closed when the test ends. Its log goes
// to e.log.
func (e *env) producer(t *testing.T, opts ...pipeline.Option) *pipeline.Producer {
	t.Helper()
	base := []pipeline.Option{
		pipeline.Brokers(e.brokers...),
		pipeline.DefaultTopic(e.topic),
		pipeline.Linger(5 * time.Millisecond),
		pipeline.Logger(hclog.New(&hclog.LoggerOptions{Output: e.log, Level: hclog.Debug})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	p, err := pipeline.New(ctx, append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = p.Close(ctx)
	})
	return p
}

func (e *env) read(t *testing.T, n int) []recordView {
	t.Helper()
	var out []recordView
	for _, r := range testbroker.ReadAll(t, e.brokers, e.topic, n, false) {
		out = append(out, recordView{string(r.Key), string(r.Value), r.Key == nil, r.Value == nil, r.Partition})
	}
	return out
}

type recordView struct {
	key, value         string
	nullKey, nullValue bool
	partition          int32
}

// collector gathers the results of asynchronous sends.
type collector struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	results map[string]pipeline.Result // by the record's value when sent
}

func newCollector() *collector { return &collector{results: map[string]pipeline.Result{}} }

// cb returns the callback for a record identified by id; each must be called
// exactly once.
func (c *collector) cb(t *testing.T, id string) func(*plugins.Record, pipeline.Result) {
	c.wg.Add(1)
	var once sync.Once
	return func(_ *plugins.Record, res pipeline.Result) {
		called := false
		once.Do(func() { called = true })
		if !called {
			t.Errorf("callback of %s called twice", id)
			return
		}
		c.mu.Lock()
		c.results[id] = res
		c.mu.Unlock()
		c.wg.Done()
	}
}

func (c *collector) wait(t *testing.T) map[string]pipeline.Result {
	t.Helper()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testbroker.Timeout()):
		t.Fatal("callbacks did not all run")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	t.Cleanup(cancel)
	return ctx
}

func rec(key, value string) *plugins.Record {
	r := &plugins.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// Native test plugins.

type interceptorFunc struct {
	send func(context.Context, *plugins.Record) (plugins.Verdict, error)
	ack  func(context.Context, *plugins.Record, plugins.Ack) error
}

func (f interceptorFunc) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	if f.send == nil {
		return plugins.Continue, nil
	}
	return f.send(ctx, r)
}

func (f interceptorFunc) OnAck(ctx context.Context, r *plugins.Record, a plugins.Ack) error {
	if f.ack == nil {
		return nil
	}
	return f.ack(ctx, r, a)
}

type partitionerFunc func(context.Context, *plugins.Record, int32) (int32, error)

func (f partitionerFunc) Partition(ctx context.Context, r *plugins.Record, n int32) (int32, error) {
	return f(ctx, r, n)
}

type serializerFunc func(context.Context, plugins.Target, *plugins.Record) ([]byte, error)

func (f serializerFunc) Serialize(ctx context.Context, t plugins.Target, r *plugins.Record) ([]byte, error) {
	return f(ctx, t, r)
}

// fixed is a partitioner that always answers p.
func fixed(p int32) plugins.Partitioner {
	return partitionerFunc(func(context.Context, *plugins.Record, int32) (int32, error) { return p, nil })
}

func pluginStats(t *testing.T, p *pipeline.Producer, name string, hook pipeline.Hook) pipeline.PluginStats {
	t.Helper()
	var found *pipeline.PluginStats
	for _, s := range p.Stats().Plugins {
		if s.Name == name && s.Hook == hook {
			s := s
			found = &s
		}
	}
	if found == nil {
		t.Fatalf("no stats for %s %s in %+v", name, hook, p.Stats().Plugins)
	}
	return *found
}

func values(n int, prefix string) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return v
}

// commitAndRead sends n records in a new transaction of p, commits it,
// checks that each was delivered, and that a read_committed consumer of
// e's topic sees exactly them (after whatever aborted records precede
// them), in order.
func commitAndRead(t *testing.T, ctx context.Context, e *env, p *pipeline.Producer, n int) {
	t.Helper()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	committed := values(n, "committed-")
	for _, v := range committed {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Delivered {
			t.Errorf("%s: %+v", v, res)
		}
	}
	recs := testbroker.ReadAll(t, e.brokers, e.topic, len(committed), true)
	for i, r := range recs {
		if string(r.Value) != committed[i] {
			t.Errorf("read_committed record %d = %q, want %q", i, r.Value, committed[i])
		}
	}
}

// namedPartitioner is a partitioner and the name SetPartitioner gives it.
type namedPartitioner struct {
	name string
	p    plugins.Partitioner
}

// sendWhileSwapping sends vals with p from another goroutine, pausing a
// millisecond every 100 records, while it swaps p's partitioner through
// swaps, in order, 100µs apart, over and over until every record is sent. It
// returns the collector of the records' results and how many rounds of
// swaps it made.
func sendWhileSwapping(t *testing.T, ctx context.Context, p *pipeline.Producer, vals []string, swaps ...namedPartitioner) (*collector, int) {
	t.Helper()
	col := newCollector()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, v := range vals {
			p.Send(ctx, rec("", v), col.cb(t, v))
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	rounds := 0
	for running := true; running; rounds++ {
		select {
		case <-done:
			running = false
		default:
			for _, s := range swaps {
				p.SetPartitioner(s.name, s.p)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	return col, rounds
}

// readDistinct reads want records from e's topic and fails the test if one
// is there twice.
func (e *env) readDistinct(t *testing.T, want int) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range e.read(t, want) {
		if seen[r.value] {
			t.Errorf("%s read twice", r.value)
		}
		seen[r.value] = true
	}
	if len(seen) != want {
		t.Errorf("read %d distinct records, want %d", len(seen), want)
	}
}
