package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// stamp is an interceptor that adds a header named after it to every
// record, notes the records it is acknowledged, and fails the test if it is
// used after it was closed.
type stamp struct {
	t      *testing.T
	name   string
	closed atomic.Bool
	mu     sync.Mutex
	acked  map[string]int // by record value
	// pending counts records it saw whose acknowledgement has not come.
	pending atomic.Int64
}

func newStamp(t *testing.T, name string) *stamp {
	return &stamp{t: t, name: name, acked: map[string]int{}}
}

func (s *stamp) OnSend(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
	if s.closed.Load() {
		s.t.Errorf("%s: OnSend after Close", s.name)
	}
	s.pending.Add(1)
	r.Headers = append(r.Headers, plugins.Header{Key: s.name})
	return plugins.Continue, nil
}

func (s *stamp) OnAck(_ context.Context, r *plugins.Record, _ plugins.Ack) error {
	if s.closed.Load() {
		s.t.Errorf("%s: OnAck after Close", s.name)
	}
	s.pending.Add(-1)
	s.mu.Lock()
	s.acked[string(r.Value)]++
	s.mu.Unlock()
	return nil
}

func (s *stamp) Close(context.Context) error {
	if s.pending.Load() != 0 {
		s.t.Errorf("%s: closed with %d records not settled", s.name, s.pending.Load())
	}
	if s.closed.Swap(true) {
		s.t.Errorf("%s: closed twice", s.name)
	}
	return nil
}

// batchStamp is a stamp that takes its acknowledgements in batches.
type batchStamp struct{ *stamp }

func (s batchStamp) OnAckBatch(ctx context.Context, rs []*plugins.Record, acks []plugins.Ack, errs []error) error {
	for i, r := range rs {
		errs[i] = s.OnAck(ctx, r, acks[i])
	}
	return nil
}

// Interceptors are added, removed, reordered and replaced while records
// flow: every record carries the stamps of exactly the chain version its
// Result names, in that chain's order; its acknowledgements reach exactly
// the interceptors that stamped it; and a plugin left out of a swap is
// closed only after its last record settled (stamp checks), and is closed
// in the end. Run it with -race.
func TestSwapChains(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("stage batching %v", batched), func(t *testing.T) {
			e := setup(t, 3)
			var opts []pipeline.Option
			if !batched {
				opts = append(opts, pipeline.StageBatch(1, 0))
			}
			var mu sync.Mutex
			chains := map[uint64][]string{} // version: the stamps in order
			var all []*stamp
			build := func(names ...string) []pipeline.Option {
				var o []pipeline.Option
				for i, n := range names {
					s := newStamp(t, fmt.Sprintf("%s#%d", n, len(all)))
					all = append(all, s)
					var ic plugins.Interceptor = s
					if batched && i%2 == 0 {
						ic = batchStamp{s}
					}
					o = append(o, pipeline.Interceptor(n, ic))
				}
				return o
			}
			stampNames := func(o []pipeline.Option) []string {
				var out []string
				for _, s := range all[len(all)-len(o):] {
					out = append(out, s.name)
				}
				return out
			}
			first := build("a")
			chains[1] = stampNames(first)
			p := e.producer(t, append(opts, first...)...)
			ctx := ctxT(t)
			configs := [][]string{{"a", "b"}, {"b", "a"}, {"b"}, {}, {"c", "a", "b"}, {"a"}}
			col := newCollector()
			const n = 3000
			var sent atomic.Int32
			// The sender waits (a bounded time) for one swap every
			// swapEvery records, so that swaps land among the records
			// however fast the machine sends them.
			const swapEvery = 100
			var swapped atomic.Int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i, v := range values(n, "r") {
					if i%swapEvery == 0 {
						deadline := time.Now().Add(time.Second)
						for swapped.Load() < int32(i/swapEvery) && time.Now().Before(deadline) {
							time.Sleep(50 * time.Microsecond)
						}
					}
					p.Send(ctx, rec(fmt.Sprintf("k%d", i), v), col.cb(t, v))
					sent.Add(1)
				}
			}()
			swaps := 0
			for k := 0; ; k++ {
				select {
				case <-done:
				default:
					mu.Lock()
					o := build(configs[k%len(configs)]...)
					v, err := p.Swap(ctx, o...)
					if err != nil {
						t.Fatal(err)
					}
					chains[v] = stampNames(o)
					mu.Unlock()
					swaps++
					swapped.Add(1)
					time.Sleep(200 * time.Microsecond)
					continue
				}
				break
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			results := col.wait(t)
			if len(results) != n {
				t.Fatalf("%d results, want %d", len(results), n)
			}
			// What each record carried, from the broker.
			got := map[string][]string{}
			for _, r := range testbroker.ReadAll(t, e.brokers, e.topic, n, false) {
				var hs []string
				for _, h := range r.Headers {
					hs = append(hs, h.Key)
				}
				got[string(r.Value)] = hs
			}
			versions := map[uint64]int{}
			for v, res := range results {
				if res.Outcome != pipeline.Delivered {
					t.Fatalf("%s: %+v", v, res)
				}
				want, ok := chains[res.ChainVersion]
				if !ok {
					t.Fatalf("%s: chain version %d unknown", v, res.ChainVersion)
				}
				versions[res.ChainVersion]++
				if !slices.Equal(got[v], want) {
					t.Fatalf("%s (version %d) carries stamps %v, want %v", v, res.ChainVersion, got[v], want)
				}
				for _, s := range all {
					s.mu.Lock()
					acks := s.acked[v]
					s.mu.Unlock()
					if w := map[bool]int{true: 1}[slices.Contains(want, s.name)]; acks != w {
						t.Fatalf("%s (version %d): %d acknowledgements to %s, want %d", v, res.ChainVersion, acks, s.name, w)
					}
				}
			}
			if len(versions) < 2 {
				t.Errorf("records ran on %d chain versions; the swaps did not take effect while records flowed", len(versions))
			}
			t.Logf("%d swaps, %d versions handled records", swaps, len(versions))
			// Retired plugins are closed once their records settled;
			// the current chain's at Close.
			cur := chains[p.ChainVersion()]
			waitFor(t, "retired plugins to be closed", func() bool {
				for _, s := range all {
					if !slices.Contains(cur, s.name) && !s.closed.Load() {
						return false
					}
				}
				return true
			})
			if _, err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for _, s := range all {
				if !s.closed.Load() {
					t.Errorf("%s not closed after Close", s.name)
				}
			}
		})
	}
}

// Swap takes chain options only, and changes nothing when it fails.
func TestSwapErrors(t *testing.T) {
	e := setup(t, 1)
	p := e.producer(t)
	ctx := ctxT(t)
	if v := p.ChainVersion(); v != 1 {
		t.Fatalf("ChainVersion = %d, want 1", v)
	}
	for _, tc := range []struct {
		opts []pipeline.Option
		want string
	}{
		{[]pipeline.Option{pipeline.Acks(pipeline.AcksLeader)}, "is not a chain option"},
		{[]pipeline.Option{pipeline.Interceptor("x", nil)}, `interceptor "x" is nil`},
		{[]pipeline.Option{pipeline.Partitioner("p", fixed(0), pipeline.OnFailure(pipeline.DropRecord))}, `partitioner "p": on_failure "drop" is not a policy of a partitioner`},
		{[]pipeline.Option{pipeline.ValueSerializer("s", &failingSer{}, pipeline.OnFailure(pipeline.SkipPlugin))}, "is not a policy of a serializer"},
	} {
		if _, err := p.Swap(ctx, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Swap: %v, want an error containing %q", err, tc.want)
		}
	}
	if v := p.ChainVersion(); v != 1 {
		t.Errorf("ChainVersion after failed swaps = %d, want 1", v)
	}
	if res := p.SendSync(ctx, rec("k", "v")); res.Outcome != pipeline.Delivered || res.ChainVersion != 1 {
		t.Errorf("%+v", res)
	}
	if v, err := p.Swap(ctx); err != nil || v != 2 {
		t.Errorf("Swap() = %d, %v; want 2", v, err)
	}
	if res := p.SendSync(ctx, rec("k", "v")); res.ChainVersion != 2 {
		t.Errorf("%+v, want chain version 2", res)
	}
}

type failingSer struct{}

func (*failingSer) Serialize(context.Context, plugins.Target, *plugins.Record) ([]byte, error) {
	return nil, errors.New("no")
}

// The failure policies: an interceptor under skip lets the record go on as
// it was, under fail fails it naming the plugin and hook, under drop
// filters it; a partitioner under fail fails the record; the counters count
// each record once.
func TestFailurePolicies(t *testing.T) {
	e := setup(t, 2)
	broken := interceptorFunc{send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
		if strings.HasPrefix(string(r.Value), "bad") {
			r.Value = []byte("garbled")
			return plugins.Continue, errors.New("no")
		}
		return plugins.Continue, nil
	}}
	badPart := partitionerFunc(func(_ context.Context, r *plugins.Record, _ int32) (int32, error) {
		if string(r.Value) == "xpart" {
			return 0, errors.New("cannot place it")
		}
		return 1, nil
	})
	for _, tc := range []struct {
		policy  pipeline.FailurePolicy
		outcome pipeline.Outcome
		errText string
	}{
		{pipeline.SkipPlugin, pipeline.Delivered, ""},
		{pipeline.FailRecord, pipeline.Failed, `interceptor "redact": on_send: no`},
		{pipeline.DropRecord, pipeline.Filtered, `interceptor "redact" failed at on_send and its on_failure is drop`},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			p := e.producer(t, pipeline.Interceptor("redact", broken, pipeline.OnFailure(tc.policy)),
				pipeline.Partitioner("part", badPart, pipeline.OnFailure(pipeline.FailRecord)), pipeline.StageBatch(1, 0))
			ctx := ctxT(t)
			res := p.SendSync(ctx, rec("k", "bad"))
			if res.Outcome != tc.outcome || tc.errText != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.errText)) {
				t.Errorf("bad record: %+v, want %v with %q", res, tc.outcome, tc.errText)
			}
			if tc.policy == pipeline.FailRecord && !errors.Is(res.Err, pipeline.ErrPluginFailed) {
				t.Errorf("error %v does not wrap ErrPluginFailed", res.Err)
			}
			if tc.policy == pipeline.DropRecord && !errors.Is(res.Err, pipeline.ErrFiltered) {
				t.Errorf("error %v does not wrap ErrFiltered", res.Err)
			}
			res = p.SendSync(ctx, rec("k", "xpart"))
			if res.Outcome != pipeline.Failed || !strings.Contains(fmt.Sprint(res.Err), `partitioner "part": partition: cannot place it`) {
				t.Errorf("xpart: %+v, want the partitioner to fail it", res)
			}
			if res := p.SendSync(ctx, rec("k", "good")); res.Outcome != pipeline.Delivered || res.Partition != 1 {
				t.Errorf("good record: %+v", res)
			}
			st := pluginStats(t, p, "redact", pipeline.HookOnSend)
			if st.Calls != 3 || st.Failures != 1 {
				t.Errorf("on_send stats %+v, want 3 calls, 1 failure", st)
			}
			wantCalls := uint64(2) // xpart and good
			if tc.policy == pipeline.SkipPlugin {
				wantCalls = 3 // and bad, which went on
			}
			if ps := pluginStats(t, p, "part", pipeline.HookPartition); ps.Calls != wantCalls || ps.Failures != 1 {
				t.Errorf("partition stats %+v, want %d calls, 1 failure", ps, wantCalls)
			}
		})
	}
}

// The default partitioner counts each record once, also the records
// franz-go partitions a second time when it starts a new batch (KIP-480).
func TestDefaultPartitionerCountsRecords(t *testing.T) {
	e := setup(t, 3)
	p := e.producer(t, pipeline.Linger(0))
	ctx := ctxT(t)
	const n = 200
	col := newCollector()
	for i, v := range values(n, "u") {
		r := rec("", v) // unkeyed: sticky batches, re-partitioned on each new batch
		if i%3 == 0 {
			r = rec("k"+v, v)
		}
		p.Send(ctx, r, col.cb(t, v))
	}
	col.wait(t)
	if st := pluginStats(t, p, plugins.PartitionerDefault, pipeline.HookPartition); st.Calls != n {
		t.Errorf("default partitioner: %d calls for %d records", st.Calls, n)
	}
}

// BenchmarkSwap produces through the WAT no-op interceptor and key-hash
// partitioner at full speed, from one goroutine, first without swaps, then
// while another goroutine swaps the whole chain for freshly loaded plugins
// every 10ms. It reports the 99th percentile of Send's latency with swaps
// minus without (p99-stall-ns) and the records that got no outcome (lost,
// both phases).
func BenchmarkSwap(b *testing.B) {
	_, brokers := testbroker.Fake(b, kfake.BlackholeProduce())
	topic := testbroker.CreateTopic(b, brokers, 6)
	ctx := context.Background()
	chainOpts := func() []pipeline.Option {
		return []pipeline.Option{
			pipeline.Interceptor("noop", wasmPlugin(b, "noop.wasm", plugins.KindInterceptor)),
			pipeline.Partitioner("keyhash", wasmPlugin(b, "keyhash.wasm", plugins.KindPartitioner)),
		}
	}
	p, err := pipeline.New(ctx, append([]pipeline.Option{pipeline.Brokers(brokers...), pipeline.DefaultTopic(topic),
		pipeline.Logger(hclog.NewNullLogger())}, chainOpts()...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	var outcomes atomic.Int64
	cb := func(*plugins.Record, pipeline.Result) { outcomes.Add(1) }
	value := make([]byte, 100)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%06d", i)
	}
	p.SendSync(ctx, &plugins.Record{Key: keys[0], Value: value})
	var lost int64
	phase := func(swapping bool) time.Duration {
		lat := make([]time.Duration, b.N)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if swapping {
			// Load the plugins of the next chains beforehand: the
			// figure is the cost of the swap itself.
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				next := chainOpts()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := p.Swap(ctx, next...); err != nil {
							b.Error(err)
							return
						}
						next = chainOpts()
					}
				}
			}()
		}
		outcomes.Store(0)
		for i := range b.N {
			t0 := time.Now()
			p.Send(ctx, &plugins.Record{Key: keys[i&1023], Value: value}, cb)
			lat[i] = time.Since(t0)
		}
		close(stop)
		wg.Wait()
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		lost += int64(b.N) - outcomes.Load()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)*99/100]
	}
	b.ResetTimer()
	base := phase(false)
	v0 := p.ChainVersion()
	swapped := phase(true)
	b.StopTimer()
	b.ReportMetric(float64(swapped-base), "p99-stall-ns")
	b.ReportMetric(float64(p.ChainVersion()-v0), "swaps")
	if s := p.Stats(); s.Failed != 0 || s.InFlight != 0 {
		b.Fatalf("%d failed, %d in flight", s.Failed, s.InFlight)
	}
	b.ReportMetric(float64(lost), "lost")
}

// flakyAcks is an AckBatcher that fails the acknowledgements of the records
// whose value starts with "x".
type flakyAcks struct{ ackBatcher }

func (f *flakyAcks) OnAckBatch(ctx context.Context, rs []*plugins.Record, acks []plugins.Ack, errs []error) error {
	_ = f.ackBatcher.OnAckBatch(ctx, rs, acks, errs)
	for i, r := range rs {
		if strings.HasPrefix(string(r.Value), "x") {
			errs[i] = errors.New("cannot record it")
		}
	}
	return nil
}

// on_ack failures are counted per acknowledgement: 2 failed
// acknowledgements of 20 delivered in one batch are 2 failures.
func TestAckFailuresCountedPerRecord(t *testing.T) {
	e := setup(t, 1)
	ab := &flakyAcks{}
	p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, time.Hour))
	ctx := ctxT(t)
	for i, v := range values(20, "v") {
		if i == 3 || i == 11 {
			v = "x" + v
		}
		p.Send(ctx, rec("", v), nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pluginStats(t, p, "acks", pipeline.HookOnAck); st.Calls != 20 || st.Failures != 2 {
		t.Errorf("on_ack stats %+v, want 20 calls and 2 failures", st)
	}
	if ab.flushes.Load() != 1 {
		t.Errorf("%d OnAckBatch calls, want 1", ab.flushes.Load())
	}
}

// pickyBatchPart is a batch partitioner that fails records whose value is
// "xpart" and sends the others to partition 1.
type pickyBatchPart struct{}

func (pickyBatchPart) Partition(_ context.Context, r *plugins.Record, _ int32) (int32, error) {
	if string(r.Value) == "xpart" {
		return 0, errors.New("cannot place it")
	}
	return 1, nil
}

func (p pickyBatchPart) PartitionBatch(ctx context.Context, rs []*plugins.Record, nums, parts []int32, errs []error) error {
	for i, r := range rs {
		parts[i], errs[i] = p.Partition(ctx, r, nums[i])
	}
	return nil
}

// A batch partitioner under on_failure fail fails exactly the records it
// failed on, also when it was asked for a whole stage batch beforehand.
func TestBatchPartitionerFailRecord(t *testing.T) {
	e := setup(t, 2)
	p := e.producer(t, pipeline.Partitioner("part", pickyBatchPart{}, pipeline.OnFailure(pipeline.FailRecord)),
		pipeline.StageBatch(8, time.Hour))
	ctx := ctxT(t)
	if res := p.SendSync(ctx, rec("k", "first")); res.Partition != 1 { // loads the topic's metadata
		t.Fatalf("first: %+v", res)
	}
	col := newCollector()
	for i, v := range values(16, "v") {
		if i%5 == 2 {
			v = "x" + v
		}
		p.Send(ctx, rec("k", v), col.cb(t, v))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Values "xv..." are not "xpart": every record goes to partition 1.
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Delivered || res.Partition != 1 {
			t.Errorf("%s: %+v", v, res)
		}
	}
	col = newCollector()
	for _, v := range []string{"a", "xpart", "b"} {
		p.Send(ctx, rec("k", v), col.cb(t, v))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for v, res := range col.wait(t) {
		switch {
		case v == "xpart" && (res.Outcome != pipeline.Failed || !strings.Contains(fmt.Sprint(res.Err), `partitioner "part": partition: cannot place it`)):
			t.Errorf("xpart: %+v, want it failed by the partitioner", res)
		case v != "xpart" && (res.Outcome != pipeline.Delivered || res.Partition != 1):
			t.Errorf("%s: %+v", v, res)
		}
	}
	if st := pluginStats(t, p, "part", pipeline.HookPartition); st.Calls != 20 || st.Failures != 1 {
		t.Errorf("partition stats %+v, want 20 calls and 1 failure", st)
	}
}
