package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// batchIC is a native plugins.BatchInterceptor. By the record's value: a
// value starting with "change" gets "+b" appended, "drop" is dropped, "err"
// fails (left unchanged), and a batch holding a "callerr" record fails as a
// whole. The same rules apply to single-record OnSend calls, which are
// counted apart.
type batchIC struct {
	sends, batches, batched atomic.Int64 // OnSend calls, OnSendBatch calls, records in them
	acks                    atomic.Int64
	sizes                   chan int // the size of every batch, if not nil
	ctxs                    chan context.Context
}

func (b *batchIC) decide(r *plugins.Record) (plugins.Verdict, error) {
	v := string(r.Value)
	switch {
	case strings.HasPrefix(v, "change"):
		r.Value = append(r.Value, "+b"...)
	case strings.HasPrefix(v, "drop"):
		return plugins.Drop, nil
	case strings.HasPrefix(v, "err"):
		return plugins.Continue, errors.New("record error")
	}
	return plugins.Continue, nil
}

func (b *batchIC) OnSend(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
	b.sends.Add(1)
	return b.decide(r)
}

func (b *batchIC) OnSendBatch(ctx context.Context, rs []*plugins.Record, verdicts []plugins.Verdict, errs []error) error {
	b.batches.Add(1)
	b.batched.Add(int64(len(rs)))
	if b.sizes != nil {
		b.sizes <- len(rs)
	}
	if b.ctxs != nil {
		select {
		case b.ctxs <- ctx:
		default:
		}
	}
	for _, r := range rs {
		if strings.HasPrefix(string(r.Value), "callerr") {
			return errors.New("whole call failed")
		}
	}
	for i, r := range rs {
		verdicts[i], errs[i] = b.decide(r)
	}
	return nil
}

func (b *batchIC) OnAck(context.Context, *plugins.Record, plugins.Ack) error {
	b.acks.Add(1)
	return nil
}

// batchPart is a native plugins.BatchPartitioner. By the record's value: a
// value starting with "p<digit>" goes to that partition, "def" to the
// default partitioner, "err" fails, "oor" answers 99; a batch holding a
// "callerr" record fails as a whole.
type batchPart struct {
	single, batches, batched atomic.Int64 // Partition calls, PartitionBatch calls, records in them
}

func (b *batchPart) decide(r *plugins.Record, n int32) (int32, error) {
	v := string(r.Value)
	switch {
	case len(v) > 1 && v[0] == 'p' && v[1] >= '0' && v[1] <= '9':
		return int32(v[1] - '0'), nil
	case strings.HasPrefix(v, "def"):
		return plugins.DefaultPartition, nil
	case strings.HasPrefix(v, "err"):
		return 0, errors.New("record error")
	case strings.HasPrefix(v, "oor"):
		return 99, nil
	}
	return 0, nil
}

func (b *batchPart) Partition(_ context.Context, r *plugins.Record, n int32) (int32, error) {
	b.single.Add(1)
	return b.decide(r, n)
}

func (b *batchPart) PartitionBatch(_ context.Context, rs []*plugins.Record, ns []int32, parts []int32, errs []error) error {
	b.batches.Add(1)
	b.batched.Add(int64(len(rs)))
	for _, r := range rs {
		if strings.HasPrefix(string(r.Value), "callerr") {
			return errors.New("whole call failed")
		}
	}
	for i, r := range rs {
		parts[i], errs[i] = b.decide(r, ns[i])
	}
	return nil
}

// fixedBatch is a BatchPartitioner that always answers p.
type fixedBatch int32

func (f fixedBatch) Partition(context.Context, *plugins.Record, int32) (int32, error) {
	return int32(f), nil
}

func (f fixedBatch) PartitionBatch(_ context.Context, rs []*plugins.Record, _ []int32, parts []int32, _ []error) error {
	for i := range rs {
		parts[i] = int32(f)
	}
	return nil
}

// ackBatcher is a native plugins.AckBatcher: it counts the
// acknowledgements the pipeline gives it in batches.
type ackBatcher struct {
	onAck, queueCalls   atomic.Int64 // queueCalls: acknowledgements given to OnAckBatch
	delivered, flushes  atomic.Int64 // flushes: OnAckBatch calls
	badRecord, failures atomic.Int64
	// deliverErr, if set, is the error of every OnAckBatch call.
	deliverErr error
}

func (a *ackBatcher) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}

func (a *ackBatcher) OnAck(context.Context, *plugins.Record, plugins.Ack) error {
	a.onAck.Add(1)
	return nil
}

func (a *ackBatcher) OnAckBatch(_ context.Context, rs []*plugins.Record, acks []plugins.Ack, errs []error) error {
	a.flushes.Add(1)
	for i, r := range rs {
		a.queueCalls.Add(1)
		if ack := acks[i]; ack.Err == nil && (!r.HasPartition || ack.Offset < 0) {
			a.badRecord.Add(1)
		} else if ack.Err != nil {
			a.failures.Add(1)
		}
		errs[i] = nil
	}
	a.delivered.Add(int64(len(rs)))
	return a.deliverErr
}

// waitFor polls cond until it holds, or fails the test after the broker
// timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testbroker.Timeout())
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// One sender's records keep their order through stage batches: the
// offsets in one partition follow the order of the Sends, and every record
// went through a batch call, most of them in full batches.
func TestStageBatchOrder(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(16, 5*time.Millisecond))
	ctx := ctxT(t)
	const n = 1000
	vals := values(n, "v")
	col := newCollector()
	for _, v := range vals {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res := col.wait(t)
	for i, v := range vals {
		if r := res[v]; r.Outcome != pipeline.Delivered || r.Offset != int64(i) {
			t.Errorf("%s: %+v, want offset %d", v, r, i)
		}
	}
	for i, r := range e.read(t, n) {
		if r.value != vals[i] {
			t.Fatalf("record %d read back is %q, want %q", i, r.value, vals[i])
		}
	}
	if got := ic.batched.Load(); got != n || ic.sends.Load() != 0 {
		t.Errorf("%d records in %d batch calls, %d single calls; want %d in batches", got, ic.batches.Load(), ic.sends.Load(), n)
	}
	// One sender fills batches faster than the linger: almost all are
	// full (a slow machine may let the timer take a few partial ones).
	if b := ic.batches.Load(); b < n/16 || b > n/8 {
		t.Errorf("%d batch calls for %d records in batches of 16", b, n)
	}
	if st := pluginStats(t, p, "batch", pipeline.HookOnSend); st.Calls != n || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
	if st := pluginStats(t, p, "batch", pipeline.HookOnAck); st.Calls != n || ic.acks.Load() != n {
		t.Errorf("on_ack stats %+v, %d OnAck calls", st, ic.acks.Load())
	}
}

// A batch interceptor changes, drops and fails records one by one, or fails
// a whole call: failed records go on unchanged, each failure is counted, and
// an interceptor that takes no batches after it is called once per record
// left.
func TestStageBatchInterceptor(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{sizes: make(chan int, 10)}
	var after atomic.Int64
	plain := interceptorFunc{send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
		after.Add(1)
		return plugins.Continue, nil
	}}
	const max = 8
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.Interceptor("plain", plain),
		pipeline.StageBatch(max, time.Hour), pipeline.CircuitBreaker(0, 0))
	ctx := ctxT(t)
	col := newCollector()
	// Two full batches: the Send that fills one runs it.
	first := []string{"keep-0", "change-1", "drop-2", "err-3", "keep-4", "drop-5", "change-6", "err-7"}
	second := []string{"keep-8", "change-9", "callerr-10", "drop-11", "err-12", "keep-13", "change-14", "keep-15"}
	for _, v := range append(first, second...) {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	res := col.wait(t) // no Flush: full batches need none
	for _, size := range []int{<-ic.sizes, <-ic.sizes} {
		if size != max {
			t.Errorf("batch of %d records, want %d", size, max)
		}
	}
	want := map[string]pipeline.Outcome{"drop-2": pipeline.Filtered, "drop-5": pipeline.Filtered}
	var delivered []string
	for _, v := range append(first, second...) {
		w := want[v] // Delivered by default
		if r := res[v]; r.Outcome != w {
			t.Errorf("%s: %+v, want %v", v, r, w)
		} else if w == pipeline.Filtered && !strings.Contains(r.Err.Error(), `"batch"`) {
			t.Errorf("%s: filtered with %v", v, r.Err)
		}
		if w == pipeline.Delivered {
			if strings.HasPrefix(v, "change") && !strings.Contains(v, "-9") && !strings.Contains(v, "-14") {
				v += "+b" // changed in the first batch only
			}
			delivered = append(delivered, v)
		}
	}
	for i, r := range e.read(t, len(delivered)) {
		if r.value != delivered[i] {
			t.Errorf("record %d read back is %q, want %q", i, r.value, delivered[i])
		}
	}
	// First batch: 2 record errors, 2 drops. Second: the whole call
	// failed, 8 failures.
	if st := pluginStats(t, p, "batch", pipeline.HookOnSend); st.Calls != 16 || st.Failures != 10 || st.Drops != 2 {
		t.Errorf("batch stats %+v, want 16 calls, 10 failures, 2 drops", st)
	}
	if got := after.Load(); got != 14 || ic.sends.Load() != 0 {
		t.Errorf("the next interceptor saw %d records, want 14; %d single OnSend calls", got, ic.sends.Load())
	}
	if got := pluginStats(t, p, "plain", pipeline.HookOnSend).Calls; got != 14 {
		t.Errorf("plain on_send calls %d, want 14", got)
	}
	if log := e.log.String(); !strings.Contains(log, "plugin=batch hook=on_send") {
		t.Errorf("failures not logged:\n%s", log)
	}
}

// Batch calls get a context of the producer that outlives the Sends: a
// record whose own context was cancelled after Send still has a batch call
// with a live context (the record itself fails in the client; the other,
// in another partition so that the client does not fail it with the first,
// is delivered).
func TestStageBatchContext(t *testing.T) {
	e := setup(t, 2)
	ic := &batchIC{ctxs: make(chan context.Context, 1)}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(2, time.Hour))
	ctx := ctxT(t)
	// Load the topic's metadata: the client fails every record waiting
	// for it when the first one's context ends.
	if res := p.SendSync(ctx, rec("", "first")); res.Outcome != pipeline.Delivered {
		t.Fatalf("first record: %+v", res)
	}
	short, cancel := context.WithCancel(ctx)
	col := newCollector()
	a, b := rec("", "a"), rec("", "b")
	a.SetPartition(0)
	b.SetPartition(1)
	p.Send(short, a, col.cb(t, "a"))
	cancel()
	p.Send(ctx, b, col.cb(t, "b"))
	res := col.wait(t)
	if err := (<-ic.ctxs).Err(); err != nil {
		t.Errorf("the batch call's context is done: %v", err)
	}
	if res["b"].Outcome != pipeline.Delivered {
		t.Errorf("b: %+v", res["b"])
	}
	if r := res["a"]; r.Outcome != pipeline.Failed || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("a, sent with a cancelled context: %+v", r)
	}
}

// A batch partitioner is called once per batch; its answers are used, and
// errors, partitions out of range and whole-call failures send the records
// to the default partitioner, counted once each.
func TestStageBatchPartitioner(t *testing.T) {
	e := setup(t, 3)
	part := &batchPart{}
	const max = 8
	p := e.producer(t, pipeline.Partitioner("bp", part), pipeline.StageBatch(max, time.Hour), pipeline.CircuitBreaker(0, 0))
	ctx := ctxT(t)
	// Load the topic's partition count.
	if res := p.SendSync(ctx, rec("k", "p1-first")); res.Partition != 1 {
		t.Fatalf("first record: %+v", res)
	}
	if part.single.Load() != 1 {
		t.Fatalf("%d single calls for the first record", part.single.Load())
	}
	batches := [][]string{
		{"p0-a", "p2-b", "def-c", "err-d", "oor-e", "p1-f", "p2-g", "def-h"},
		{"p0-i", "callerr-j", "p2-k", "p1-l", "p0-m", "p0-n", "p1-o", "p2-p"},
	}
	col := newCollector()
	for bi, batch := range batches {
		for _, v := range batch {
			p.Send(ctx, rec("key-"+v, v), col.cb(t, v))
		}
		res := col.wait(t)
		for _, v := range batch {
			want := plugins.KeyPartition([]byte("key-"+v), 3) // the default partitioner
			if v[0] == 'p' && bi == 0 {
				want = int32(v[1] - '0')
			}
			if r := res[v]; r.Outcome != pipeline.Delivered || r.Partition != want {
				t.Errorf("%s: %+v, want partition %d", v, r, want)
			}
		}
		if got := part.batches.Load(); got != int64(bi+1) {
			t.Errorf("after batch %d: %d PartitionBatch calls", bi, got)
		}
	}
	if part.single.Load() != 1 || part.batched.Load() != 2*max {
		t.Errorf("%d single calls, %d records in batch calls; want 1 and %d", part.single.Load(), part.batched.Load(), 2*max)
	}
	// err-d and oor-e, then the whole second batch.
	if st := pluginStats(t, p, "bp", pipeline.HookPartition); st.Calls != 1+2*max || st.Failures != 2+max {
		t.Errorf("stats %+v, want %d calls, %d failures", st, 1+2*max, 2+max)
	}
	if log := e.log.String(); !strings.Contains(log, "plugin=bp hook=partition") {
		t.Errorf("failures not logged:\n%s", log)
	}
}

// The partitioner is swapped while batches are in flight, between
// partitioners that take batches and one that does not: every record is
// delivered once, to a partition one of them chose, in the order sent.
func TestStageBatchHotSwap(t *testing.T) {
	e := setup(t, 3)
	p := e.producer(t, pipeline.Partitioner("zero", fixedBatch(0)), pipeline.StageBatch(16, time.Millisecond))
	ctx := ctxT(t)
	if res := p.SendSync(ctx, rec("", "first")); res.Partition != 0 {
		t.Fatalf("first record: %+v", res)
	}
	const n = 3000
	vals := values(n, "v")
	col, swaps := sendWhileSwapping(t, ctx, p, vals, namedPartitioner{"one", fixedBatch(1)},
		namedPartitioner{"two", fixed(2)}, namedPartitioner{"zero", fixedBatch(0)})
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	results := col.wait(t)
	perPart := map[int32]int{}
	last := map[int32]int64{0: -1, 1: -1, 2: -1}
	for _, v := range vals {
		res := results[v]
		if res.Outcome != pipeline.Delivered {
			t.Fatalf("%s: %+v", v, res)
		}
		perPart[res.Partition]++
		// In each partition, offsets follow the order of the Sends.
		if res.Offset <= last[res.Partition] {
			t.Errorf("%s: offset %d in partition %d after %d", v, res.Offset, res.Partition, last[res.Partition])
		}
		last[res.Partition] = res.Offset
	}
	t.Logf("%d swaps, records per partition %v", swaps, perPart)
	if len(perPart) < 2 {
		t.Errorf("records per partition %v: the swaps did not take effect while records flowed", perPart)
	}
	if len(results) != n {
		t.Errorf("%d results, want %d", len(results), n)
	}
	e.readDistinct(t, n+1)
}

// A few records, never a full batch and no Flush: the timer runs them.
func TestStageBatchTrickle(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(64, 5*time.Millisecond))
	ctx := ctxT(t)
	col := newCollector()
	for _, v := range values(3, "t") {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Delivered {
			t.Errorf("%s: %+v", v, res)
		}
	}
	if ic.batched.Load() != 3 || ic.sends.Load() != 0 {
		t.Errorf("%d records in %d batch calls, %d single calls", ic.batched.Load(), ic.batches.Load(), ic.sends.Load())
	}
}

// Acknowledgements queued in an AckBatcher are delivered by Flush, by
// Close, and, without either, by the ack timer; OnAck is never called.
func TestStageBatchAcks(t *testing.T) {
	t.Run("flush", func(t *testing.T) {
		e := setup(t, 1)
		ab := &ackBatcher{}
		p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, time.Hour))
		ctx := ctxT(t)
		for _, v := range values(10, "f") {
			p.Send(ctx, rec("", v), nil)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if d, q := ab.delivered.Load(), ab.queueCalls.Load(); d != 10 || q != 10 {
			t.Errorf("after Flush: %d acknowledgements delivered, %d queued; want 10", d, q)
		}
		if ab.onAck.Load() != 0 || ab.badRecord.Load() != 0 {
			t.Errorf("%d OnAck calls, %d acknowledgements with a wrong record", ab.onAck.Load(), ab.badRecord.Load())
		}
		if st := pluginStats(t, p, "acks", pipeline.HookOnAck); st.Calls != 10 || st.Failures != 0 {
			t.Errorf("on_ack stats %+v", st)
		}
	})
	t.Run("close", func(t *testing.T) {
		e := setup(t, 1)
		ab := &ackBatcher{}
		p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, time.Hour))
		ctx := ctxT(t)
		for _, v := range values(10, "c") {
			p.Send(ctx, rec("", v), nil)
		}
		rep, err := p.Close(ctx)
		if err != nil || rep.Delivered != 10 {
			t.Fatalf("Close: %+v, %v", rep, err)
		}
		if d := ab.delivered.Load(); d != 10 || ab.onAck.Load() != 0 {
			t.Errorf("after Close: %d acknowledgements delivered, %d OnAck calls", d, ab.onAck.Load())
		}
		late := newCollector()
		p.Send(ctx, rec("", "late"), late.cb(t, "late"))
		if res := late.wait(t)["late"]; res.Outcome != pipeline.Failed || !errors.Is(res.Err, pipeline.ErrClosed) {
			t.Errorf("send after Close: %+v", res)
		}
		if got := e.read(t, 10); len(got) != 10 {
			t.Errorf("read %d records", len(got))
		}
	})
	// A failed delivery counts a failure per acknowledgement, and the
	// circuit breaker counts failed records: with a threshold of 3, the
	// first failed delivery (of 16) opens it, and the next records are
	// bypassed.
	t.Run("failed deliveries", func(t *testing.T) {
		e := setup(t, 1)
		ab := &ackBatcher{deliverErr: errors.New("sink down")}
		p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, time.Hour),
			pipeline.CircuitBreaker(3, time.Hour))
		ctx := ctxT(t)
		sendN := func(n int, prefix string) {
			t.Helper()
			for _, v := range values(n, prefix) {
				p.Send(ctx, rec("", v), nil)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		sendN(16, "a")
		if st := pluginStats(t, p, "acks", pipeline.HookOnAck); st.Failures != 16 || st.Bypasses != 0 {
			t.Fatalf("after a failed delivery of 16: on_ack stats %+v, want 16 failures and no bypass", st)
		}
		sendN(8, "b")
		sendN(8, "c")
		if st := pluginStats(t, p, "acks", pipeline.HookOnAck); st.Failures != 16 || st.Bypasses != 16 {
			t.Errorf("after the breaker opened: on_ack stats %+v, want 16 failures and the next 16 bypassed", st)
		}
		if ab.delivered.Load() != 16 {
			t.Errorf("%d acknowledgements given to the plugin, want 16", ab.delivered.Load())
		}
	})
	t.Run("timer", func(t *testing.T) {
		e := setup(t, 1)
		ab := &ackBatcher{}
		p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, 5*time.Millisecond))
		ctx := ctxT(t)
		for _, v := range values(5, "s") {
			if res := p.SendSync(ctx, rec("", v)); res.Outcome != pipeline.Delivered {
				t.Fatalf("%s: %+v", v, res)
			}
		}
		waitFor(t, "the ack timer to deliver 5 acknowledgements", func() bool { return ab.delivered.Load() == 5 })
	})
	// Once the queue holds every record in flight it is delivered without
	// waiting for the linger (an hour here), in one call: a caller that
	// waits for its outcomes before it sends more (a gateway client) is
	// not held back by the acknowledgements' batching.
	t.Run("every record in flight", func(t *testing.T) {
		e := setup(t, 1)
		ab := &ackBatcher{}
		p := e.producer(t, pipeline.Interceptor("acks", ab), pipeline.StageBatch(64, time.Hour))
		ctx := ctxT(t)
		for round, n := range []int{1, 5, 1, 20} {
			rs := make([]*plugins.Record, n)
			for i, v := range values(n, fmt.Sprintf("r%d-", round)) {
				rs[i] = rec("", v)
			}
			before := ab.flushes.Load()
			var done, delivered atomic.Int64
			p.SendBatch(ctx, rs, func(_ *plugins.Record, res pipeline.Result) {
				if res.Outcome == pipeline.Delivered {
					delivered.Add(1)
				}
				done.Add(1)
			})
			waitFor(t, fmt.Sprintf("round %d: the callbacks of %d records", round, n), func() bool { return done.Load() == int64(n) })
			if delivered.Load() != int64(n) {
				t.Errorf("round %d: %d of %d records delivered", round, delivered.Load(), n)
			}
			if d := ab.flushes.Load() - before; d != 1 {
				t.Errorf("round %d: %d OnAckBatch calls for a batch of %d records, want 1", round, d, n)
			}
		}
		if d := ab.delivered.Load(); d != 27 {
			t.Errorf("%d acknowledgements delivered, want 27", d)
		}
	})
}

// SendSync lets the records queued before it go first.
func TestStageBatchSendSync(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(64, time.Hour))
	ctx := ctxT(t)
	col := newCollector()
	vals := values(10, "q")
	for _, v := range vals {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if res := p.SendSync(ctx, rec("", "sync")); res.Outcome != pipeline.Delivered || res.Offset != int64(len(vals)) {
		t.Errorf("SendSync: %+v, want offset %d", res, len(vals))
	}
	res := col.wait(t)
	for i, v := range vals {
		if res[v].Offset != int64(i) {
			t.Errorf("%s: %+v, want offset %d", v, res[v], i)
		}
	}
	if ic.batched.Load() != 10 || ic.sends.Load() != 1 {
		t.Errorf("%d records in batch calls, %d single calls; want 10 and 1", ic.batched.Load(), ic.sends.Load())
	}
}

// A callback of a record filtered in a batch runs on the goroutine that ran
// the batch, which must not hold the batch lock then: a callback that sends
// a full batch of its own does not deadlock.
func TestStageBatchCallbackSends(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(2, time.Hour))
	ctx := ctxT(t)
	col := newCollector()
	resent := col.cb(t, "resent-1")
	resent2 := col.cb(t, "resent-2")
	dropped := col.cb(t, "drop-a")
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		p.Send(ctx, rec("", "drop-a"), func(r *plugins.Record, res pipeline.Result) {
			dropped(r, res)
			p.Send(ctx, rec("", "resent-1"), resent)
			p.Send(ctx, rec("", "resent-2"), resent2) // fills a batch: runs it
		})
		p.Send(ctx, rec("", "keep-b"), col.cb(t, "keep-b"))
	}()
	select {
	case <-sent:
	case <-time.After(testbroker.Timeout()):
		t.Fatal("Send did not return: deadlock")
	}
	res := col.wait(t)
	if res["drop-a"].Outcome != pipeline.Filtered {
		t.Errorf("drop-a: %+v", res["drop-a"])
	}
	for _, v := range []string{"keep-b", "resent-1", "resent-2"} {
		if res[v].Outcome != pipeline.Delivered {
			t.Errorf("%s: %+v", v, res[v])
		}
	}
}

// Turned off, or with nothing that takes batches, every record goes
// through the stages alone: a batch interceptor sees single OnSend calls.
func TestStageBatchOff(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []pipeline.Option
	}{
		{"StageBatch(1, 0)", []pipeline.Option{pipeline.StageBatch(1, 0)}},
		{"StageBatch(64, 0)", []pipeline.Option{pipeline.StageBatch(64, 0)}},
		{"StageBatch(1, 1s)", []pipeline.Option{pipeline.StageBatch(1, time.Second)}},
		{"Linger(0)", []pipeline.Option{pipeline.Linger(0)}},
		{"StageBatch(64, -1), Linger(0)", []pipeline.Option{pipeline.StageBatch(64, -1), pipeline.Linger(0)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, 1)
			ic := &batchIC{}
			ab := &ackBatcher{}
			p := e.producer(t, append([]pipeline.Option{pipeline.Interceptor("batch", ic), pipeline.Interceptor("acks", ab)}, c.opts...)...)
			ctx := ctxT(t)
			col := newCollector()
			for _, v := range values(100, "o") {
				p.Send(ctx, rec("", v), col.cb(t, v))
			}
			for v, res := range col.wait(t) {
				if res.Outcome != pipeline.Delivered {
					t.Errorf("%s: %+v", v, res)
				}
			}
			if ic.sends.Load() != 100 || ic.batches.Load() != 0 {
				t.Errorf("%d single calls, %d batch calls; want 100 and none", ic.sends.Load(), ic.batches.Load())
			}
			if ab.onAck.Load() != 100 || ab.queueCalls.Load() != 0 {
				t.Errorf("%d OnAck, %d QueueAck calls; want 100 and none", ab.onAck.Load(), ab.queueCalls.Load())
			}
		})
	}
	// Native plugins that take no batches: the default settings change
	// nothing.
	t.Run("native", func(t *testing.T) {
		e := setup(t, 1)
		var sends atomic.Int64
		p := e.producer(t, pipeline.Interceptor("plain", interceptorFunc{send: func(context.Context, *plugins.Record) (plugins.Verdict, error) {
			sends.Add(1)
			return plugins.Continue, nil
		}}))
		ctx := ctxT(t)
		// Without batching, Send runs the interceptor before it returns.
		p.Send(ctx, rec("", "x"), nil)
		if sends.Load() != 1 {
			t.Errorf("after Send: %d OnSend calls, want 1", sends.Load())
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// Transactions: records queued for a batch belong to the transaction that
// is committed or aborted after them.
func TestStageBatchTransactions(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(64, time.Hour),
		pipeline.TransactionalID("kpipe-test-stage-"+e.topic), pipeline.Linger(time.Second))
	ctx := ctxT(t)

	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	for _, v := range values(5, "aborted-") {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Failed {
			t.Errorf("%s: %+v, want failed by the abort", v, res)
		}
	}

	commitAndRead(t, ctx, e, p, 5)
	if ic.batched.Load() != 10 {
		t.Errorf("%d records in batch calls, want 10", ic.batched.Load())
	}
}

// Many senders, topics whose metadata is not loaded yet, explicit
// partitions and cancelled contexts, through batches: every record has one
// outcome, and the counts agree.
func TestStageBatchConcurrent(t *testing.T) {
	e := setup(t, 4)
	topics := []string{e.topic, testbroker.CreateTopic(t, e.brokers, 4)}
	ic := &batchIC{}
	ab := &ackBatcher{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.Interceptor("acks", ab),
		pipeline.Partitioner("bp", &batchPart{}), pipeline.StageBatch(16, time.Millisecond))
	ctx := ctxT(t)
	const senders, perSender = 4, 1000
	var wg sync.WaitGroup
	var outcomes [3]atomic.Int64
	var drops atomic.Int64
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				v := fmt.Sprintf("p%d-%d-%d", i%4, g, i)
				if i%10 == 9 {
					v = fmt.Sprintf("drop-%d-%d", g, i)
					drops.Add(1)
				}
				r := &plugins.Record{Topic: topics[(g+i)%2], Value: []byte(v)}
				if i%7 == 0 {
					r.SetPartition(int32(i % 4))
				}
				c := ctx
				var cancel context.CancelFunc = func() {}
				if i%13 == 0 {
					c, cancel = context.WithCancel(ctx)
				}
				p.Send(c, r, func(got *plugins.Record, res pipeline.Result) {
					if got != r {
						t.Errorf("%s: callback got another record", v)
					}
					outcomes[res.Outcome].Add(1)
				})
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := int64(senders * perSender)
	got := outcomes[0].Load() + outcomes[1].Load() + outcomes[2].Load()
	s := p.Stats()
	if got != total || s.InFlight != 0 || uint64(outcomes[pipeline.Filtered].Load()) != s.Filtered || s.Filtered != uint64(drops.Load()) {
		t.Errorf("%d outcomes for %d records, stats %+v, %d dropped", got, total, s, drops.Load())
	}
	if ab.delivered.Load() != ab.queueCalls.Load() || ab.queueCalls.Load() != total-drops.Load() || ab.badRecord.Load() != 0 {
		t.Errorf("acks: %d queued, %d delivered (%d wrong), want %d", ab.queueCalls.Load(), ab.delivered.Load(), ab.badRecord.Load(), total-drops.Load())
	}
	t.Logf("%d delivered, %d filtered, %d failed; %d batch calls", s.Delivered, s.Filtered, s.Failed, ic.batches.Load())
}

// panicky is an interceptor and partitioner whose batch calls all panic,
// including OnAckBatch on the ack timer's goroutine.
type panicky struct{}

func (panicky) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}
func (panicky) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }
func (panicky) OnSendBatch(context.Context, []*plugins.Record, []plugins.Verdict, []error) error {
	panic("on_send batch")
}
func (panicky) OnAckBatch(context.Context, []*plugins.Record, []plugins.Ack, []error) error {
	panic("on_ack batch")
}
func (panicky) Partition(context.Context, *plugins.Record, int32) (int32, error) { return 0, nil }
func (panicky) PartitionBatch(context.Context, []*plugins.Record, []int32, []int32, []error) error {
	panic("partition batch")
}

// Batch calls that panic fail their records' calls, which go on as if the
// plugin had failed: nothing crashes, not even on a timer's goroutine, and
// every record is delivered.
func TestStageBatchPanics(t *testing.T) {
	e := setup(t, 2)
	p := e.producer(t, pipeline.Interceptor("panicky", panicky{}), pipeline.Partitioner("panicky", panicky{}),
		pipeline.StageBatch(4, 2*time.Millisecond), pipeline.CircuitBreaker(0, 0))
	ctx := ctxT(t)
	if res := p.SendSync(ctx, rec("k", "first")); res.Outcome != pipeline.Delivered {
		t.Fatalf("first record: %+v", res)
	}
	col := newCollector()
	for _, v := range values(8, "v") {
		p.Send(ctx, rec("k-"+v, v), col.cb(t, v))
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Delivered || res.Partition != plugins.KeyPartition([]byte("k-"+v), 2) {
			t.Errorf("%s: %+v, want the default partitioner's partition", v, res)
		}
	}
	// The ack timer's OnAckBatch panics: its failures are counted.
	waitFor(t, "the ack timer's failed delivery", func() bool {
		return pluginStats(t, p, "panicky", pipeline.HookOnAck).Failures > 0
	})
	if st := pluginStats(t, p, "panicky", pipeline.HookOnSend); st.Calls != 9 || st.Failures != 8 {
		t.Errorf("on_send stats %+v, want 9 calls, 8 failed", st)
	}
	if st := pluginStats(t, p, "panicky", pipeline.HookPartition); st.Calls != 9 || st.Failures != 8 {
		t.Errorf("partition stats %+v, want 9 calls, 8 failed", st)
	}
	if log := e.log.String(); !strings.Contains(log, "panic: on_send batch") || !strings.Contains(log, "panic: partition batch") {
		t.Errorf("panics not logged:\n%s", log)
	}
}

// The circuit breaker counts consecutive failed records, also in batch
// calls: records that fail in one batch call, or in several in a row, add
// up, and any record that goes through starts the count again. The records
// of the call that reaches the threshold were served by it and count as
// failures; the records after it are bypassed.
func TestStageBatchBreakerCountsRecords(t *testing.T) {
	e := setup(t, 1)
	ic := &batchIC{}
	p := e.producer(t, pipeline.Interceptor("batch", ic), pipeline.StageBatch(8, time.Hour),
		pipeline.CircuitBreaker(10, time.Hour))
	ctx := ctxT(t)
	batch := func(prefixes ...string) {
		t.Helper()
		for i := range 8 {
			p.Send(ctx, rec("", fmt.Sprintf("%s-%d", prefixes[i%len(prefixes)], i)), nil)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, failures, bypasses uint64) {
		t.Helper()
		if st := pluginStats(t, p, "batch", pipeline.HookOnSend); st.Failures != failures || st.Bypasses != bypasses {
			t.Fatalf("%s: on_send stats %+v, want %d failures and %d bypasses", step, st, failures, bypasses)
		}
	}
	batch("err", "ok")
	check("every other record failing", 4, 0)
	batch("callerr")
	check("a failed batch call: 8 failed records in a row", 12, 0)
	batch("err")
	check("8 more: the threshold of 10 is reached in this call", 20, 0)
	batch("ok")
	check("after the breaker opened", 20, 8)
	if got := e.read(t, 32); len(got) != 32 {
		t.Errorf("read %d records, want all 32: failures and bypasses never stop a record", len(got))
	}
}
