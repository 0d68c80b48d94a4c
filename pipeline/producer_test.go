package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

func TestSendModes(t *testing.T) {
	e := setup(t, 3)
	p := e.producer(t)
	ctx := ctxT(t)
	c := newCollector()

	for _, v := range values(20, "async-") {
		p.Send(ctx, rec("k-"+v, v), c.cb(t, v))
	}
	for _, v := range values(20, "forget-") {
		p.Send(ctx, rec("k-"+v, v), nil)
	}
	for _, v := range values(5, "sync-") {
		res := p.SendSync(ctx, rec("k-"+v, v))
		if res.Outcome != pipeline.Delivered || res.Err != nil || res.Offset < 0 || res.Topic != e.topic {
			t.Errorf("SendSync(%s) = %+v", v, res)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Delivered != 45 || s.InFlight != 0 || s.Failed != 0 {
		t.Errorf("after Flush: stats %+v, want 45 delivered, none in flight", s)
	}
	for v, res := range c.wait(t) {
		if res.Outcome != pipeline.Delivered || res.Partition < 0 || res.Offset < 0 || res.Timestamp.IsZero() {
			t.Errorf("%s: %+v", v, res)
		}
	}
	got := map[string]bool{}
	for _, r := range e.read(t, 45) {
		if r.key != "k-"+r.value {
			t.Errorf("record %q has key %q", r.value, r.key)
		}
		got[r.value] = true
	}
	if len(got) != 45 {
		t.Errorf("read %d distinct records, want 45", len(got))
	}
}

// TestSendCallbackRecord checks that Send's callback gets the record it was
// given, delivered or failed, so that one callback can serve many records.
func TestSendCallbackRecord(t *testing.T) {
	e := setup(t, 3)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		p    *pipeline.Producer
		want pipeline.Outcome
	}{
		{"delivered", e.producer(t), pipeline.Delivered},
		{"failed", e.producer(t, pipeline.DefaultTopic("")), pipeline.Failed},
	} {
		var mu sync.Mutex
		wrong, calls := 0, 0
		for i := range 20 {
			r := rec("", fmt.Sprint(i))
			tc.p.Send(ctx, r, func(got *plugins.Record, res pipeline.Result) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if got != r || res.Outcome != tc.want {
					wrong++
				}
			})
		}
		if err := tc.p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if calls != 20 || wrong != 0 {
			t.Errorf("%s: %d callbacks, %d with another record or outcome; want 20 and 0", tc.name, calls, wrong)
		}
		mu.Unlock()
	}
}

func TestRecordFields(t *testing.T) {
	e := setup(t, 3)
	p := e.producer(t, pipeline.ValueSerializer("json", mustSerializer(t, "json")), pipeline.KeySerializer("string", mustSerializer(t, "string")))
	ctx := ctxT(t)
	ts := time.UnixMilli(1_700_000_000_123)
	hdrs := []plugins.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "empty"}}

	send := func(r *plugins.Record) pipeline.Result {
		t.Helper()
		res := p.SendSync(ctx, r)
		if res.Outcome != pipeline.Delivered {
			t.Fatalf("send: %+v", res)
		}
		return res
	}
	tomb := send(&plugins.Record{Key: []byte("gone"), Partition: 0, HasPartition: true})
	withHdrs := send(&plugins.Record{Value: []byte(` {"h" : 1} `), Headers: hdrs, Partition: 0, HasPartition: true})
	stamped := send(&plugins.Record{Value: []byte(`2`), Timestamp: ts, Partition: 0, HasPartition: true})
	before := time.Now().Add(-time.Second)
	unstamped := send(&plugins.Record{Value: []byte(`3`), Partition: 0, HasPartition: true})

	if stamped.Timestamp.UnixMilli() != ts.UnixMilli() {
		t.Errorf("explicit timestamp came back as %v", stamped.Timestamp)
	}
	if unstamped.Timestamp.Before(before) || unstamped.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("client timestamp %v is not now", unstamped.Timestamp)
	}
	for _, r := range []pipeline.Result{tomb, withHdrs, stamped, unstamped} {
		if r.Partition != 0 {
			t.Errorf("record with partition 0 went to %d", r.Partition)
		}
	}

	recs := testbroker.ReadAll(t, e.brokers, e.topic, 4, false)
	if recs[0].Value != nil || string(recs[0].Key) != "gone" {
		t.Errorf("tombstone read back as key %q value %q (nil: %v)", recs[0].Key, recs[0].Value, recs[0].Value == nil)
	}
	if recs[1].Key != nil || string(recs[1].Value) != `{"h":1}` {
		t.Errorf("null key / json value read back as %q %q", recs[1].Key, recs[1].Value)
	}
	if len(recs[1].Headers) != len(hdrs) {
		t.Fatalf("headers read back: %+v", recs[1].Headers)
	}
	for i, h := range recs[1].Headers {
		if h.Key != hdrs[i].Key || !bytes.Equal(h.Value, hdrs[i].Value) {
			t.Errorf("header %d: %q=%q, want %q=%q", i, h.Key, h.Value, hdrs[i].Key, hdrs[i].Value)
		}
	}
	if got := recs[2].Timestamp.UnixMilli(); got != ts.UnixMilli() {
		t.Errorf("timestamp read back %d, want %d", got, ts.UnixMilli())
	}
	if got := recs[3].Timestamp; !got.Equal(unstamped.Timestamp) {
		t.Errorf("client timestamp read back %v, result said %v", got, unstamped.Timestamp)
	}
}

func mustSerializer(t *testing.T, name string) plugins.Serializer {
	s, err := plugins.NewSerializer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDefaultTopic(t *testing.T) {
	e := setup(t, 1)
	other := testbroker.CreateTopic(t, e.brokers, 1)
	p := e.producer(t)
	ctx := ctxT(t)
	if res := p.SendSync(ctx, rec("", "to-default")); res.Outcome != pipeline.Delivered || res.Topic != e.topic {
		t.Errorf("default topic: %+v", res)
	}
	r := rec("", "to-other")
	r.Topic = other
	if res := p.SendSync(ctx, r); res.Outcome != pipeline.Delivered || res.Topic != other {
		t.Errorf("explicit topic: %+v", res)
	}
	if got := e.read(t, 1); got[0].value != "to-default" {
		t.Errorf("default topic holds %+v", got)
	}

	noDefault := e.producer(t, pipeline.DefaultTopic(""))
	res := noDefault.SendSync(ctx, rec("", "nowhere"))
	if res.Outcome != pipeline.Failed || !errors.Is(res.Err, pipeline.ErrNoTopic) {
		t.Errorf("no topic: %+v", res)
	}
}

func TestAcks(t *testing.T) {
	for _, c := range []struct {
		acks pipeline.AckLevel
		idem bool
	}{{pipeline.AcksNone, false}, {pipeline.AcksLeader, false}, {pipeline.AcksAll, false}, {pipeline.AcksAll, true}} {
		t.Run(c.acks.String()+map[bool]string{true: "-idempotent", false: ""}[c.idem], func(t *testing.T) {
			e := setup(t, 2)
			p := e.producer(t, pipeline.Acks(c.acks), pipeline.Idempotence(c.idem))
			ctx := ctxT(t)
			col := newCollector()
			for _, v := range values(50, "v") {
				p.Send(ctx, rec(v, v), col.cb(t, v))
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for v, res := range col.wait(t) {
				wantOffset := res.Offset >= 0
				if c.acks == pipeline.AcksNone {
					wantOffset = res.Offset == -1
				}
				if res.Outcome != pipeline.Delivered || !wantOffset {
					t.Errorf("%s: %+v", v, res)
				}
			}
			if got := e.read(t, 50); len(got) != 50 {
				t.Errorf("read %d records", len(got))
			}
		})
	}
}

func TestOptionRules(t *testing.T) {
	ctx := ctxT(t)
	for _, c := range []struct {
		name string
		opts []pipeline.Option
		want string
	}{
		{"idempotence needs acks all", []pipeline.Option{pipeline.Acks(pipeline.AcksLeader), pipeline.Idempotence(true)}, "requires acks=all"},
		{"transactions need idempotence", []pipeline.Option{pipeline.TransactionalID("x"), pipeline.Idempotence(false)}, "requires idempotence"},
		{"transactions need acks all", []pipeline.Option{pipeline.TransactionalID("x"), pipeline.Acks(pipeline.AcksNone)}, "requires idempotence"},
		{"no brokers", []pipeline.Option{pipeline.Brokers()}, "no brokers"},
		{"batch larger than request", []pipeline.Option{pipeline.BatchMaxBytes(2 << 20), pipeline.MaxRequestSize(1 << 20)}, "larger than MaxRequestSize"},
	} {
		opts := append([]pipeline.Option{pipeline.Brokers("127.0.0.1:1")}, c.opts...)
		_, err := pipeline.New(ctx, opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := pipeline.ParseAcks("2"); err == nil {
		t.Error("ParseAcks(2) succeeded")
	}
	if a, err := pipeline.ParseAcks("-1"); err != nil || a != pipeline.AcksAll {
		t.Errorf("ParseAcks(-1) = %v, %v", a, err)
	}
	for _, n := range pipeline.AckNames() {
		if a, err := pipeline.ParseAcks(n); err != nil || a.String() != n {
			t.Errorf("ParseAcks(%q) = %v, %v; want the level whose String is %[1]q", n, a, err)
		}
	}
	if c, err := pipeline.ParseCodec("ZSTD"); err != nil || c != pipeline.Zstd {
		t.Errorf("ParseCodec(ZSTD) = %v, %v", c, err)
	}
}

func TestTransactions(t *testing.T) {
	e := setup(t, 1)
	p := e.producer(t, pipeline.TransactionalID("kpipe-test-"+e.topic))
	ctx := ctxT(t)

	// Outside a transaction records fail.
	if res := p.SendSync(ctx, rec("", "no-txn")); res.Outcome != pipeline.Failed {
		t.Errorf("record outside a transaction: %+v", res)
	}

	// Aborted: some records written before the abort, some still buffered.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	for _, v := range values(10, "aborted-") {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	col.wait(t)

	// The partition holds the aborted records first: a read_committed
	// consumer must skip them and see exactly the committed ones.
	commitAndRead(t, ctx, e, p, 10)
	// A read_uncommitted consumer sees the aborted ones too.
	if all := testbroker.ReadAll(t, e.brokers, e.topic, 20, false); !strings.HasPrefix(string(all[0].Value), "aborted-") {
		t.Errorf("read_uncommitted first record %q", all[0].Value)
	}
}

func TestClose(t *testing.T) {
	e := setup(t, 2)
	p := e.producer(t, pipeline.Linger(30*time.Second))
	col := newCollector()
	ctx := ctxT(t)
	for _, v := range values(30, "v") {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	rep, err := p.Close(ctx)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if rep.Delivered != 30 || rep.Undelivered != 0 {
		t.Errorf("close report %+v, want 30 delivered", rep)
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Delivered {
			t.Errorf("%s: %+v", v, res)
		}
	}
	after := newCollector()
	p.Send(ctx, rec("", "late"), after.cb(t, "late"))
	if res := after.wait(t)["late"]; res.Outcome != pipeline.Failed || !errors.Is(res.Err, pipeline.ErrClosed) {
		t.Errorf("send after close: %+v", res)
	}
	if res := p.SendSync(ctx, rec("", "late")); !errors.Is(res.Err, pipeline.ErrClosed) {
		t.Errorf("SendSync after close: %+v", res)
	}
	if _, err := p.Close(ctx); !errors.Is(err, pipeline.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if got := e.read(t, 30); len(got) != 30 {
		t.Errorf("read %d", len(got))
	}
}

// The stages run in order, each seeing the previous output, and every
// interceptor that saw a record gets its OnAck.
func TestStageOrder(t *testing.T) {
	e := setup(t, 3)
	var trace []string
	appendIC := func(name string) plugins.Interceptor {
		return interceptorFunc{
			send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
				trace = append(trace, name+":"+string(r.Value))
				r.Value = append(r.Value, name...)
				return plugins.Continue, nil
			},
			ack: func(_ context.Context, r *plugins.Record, a plugins.Ack) error {
				trace = append(trace, "ack-"+name+":"+string(r.Value)+"@"+map[bool]string{true: "ok", false: "err"}[a.Err == nil])
				return nil
			},
		}
	}
	ser := serializerFunc(func(_ context.Context, tg plugins.Target, r *plugins.Record) ([]byte, error) {
		trace = append(trace, "ser-"+tg.String()+":"+string(r.Value))
		return append([]byte("S"), map[plugins.Target][]byte{plugins.TargetKey: r.Key, plugins.TargetValue: r.Value}[tg]...), nil
	})
	part := partitionerFunc(func(_ context.Context, r *plugins.Record, n int32) (int32, error) {
		trace = append(trace, "part:"+string(r.Key)+"/"+string(r.Value))
		return 2, nil
	})
	p := e.producer(t,
		pipeline.Interceptor("a", appendIC("a")), pipeline.Interceptor("b", appendIC("b")),
		pipeline.KeySerializer("s", ser), pipeline.ValueSerializer("s", ser),
		pipeline.Partitioner("p", part))
	res := p.SendSync(ctxT(t), rec("k", "v"))
	if res.Outcome != pipeline.Delivered || res.Partition != 2 {
		t.Fatalf("%+v", res)
	}
	want := []string{"a:v", "b:va", "ser-key:vab", "ser-value:vab", "part:Sk/Svab", "ack-a:Svab@ok", "ack-b:Svab@ok"}
	if strings.Join(trace, " ") != strings.Join(want, " ") {
		t.Errorf("trace\n got %q\nwant %q", trace, want)
	}
	if got := e.read(t, 1)[0]; got.key != "Sk" || got.value != "Svab" || got.partition != 2 {
		t.Errorf("read back %+v", got)
	}
}

func TestFiltered(t *testing.T) {
	e := setup(t, 1)
	var acksA, acksB atomic.Int32
	var filteredAcks atomic.Int32
	a := interceptorFunc{ack: func(_ context.Context, _ *plugins.Record, ack plugins.Ack) error {
		acksA.Add(1)
		if errors.Is(ack.Err, pipeline.ErrFiltered) {
			filteredAcks.Add(1)
		}
		return nil
	}}
	dropper := interceptorFunc{
		send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
			if strings.HasPrefix(string(r.Value), "drop") {
				return plugins.Drop, nil
			}
			return plugins.Continue, nil
		},
		ack: func(context.Context, *plugins.Record, plugins.Ack) error { acksB.Add(1); return nil },
	}
	p := e.producer(t, pipeline.Interceptor("a", a), pipeline.Interceptor("dropper", dropper))
	ctx := ctxT(t)
	col := newCollector()
	for _, v := range append(values(5, "keep-"), values(5, "drop-")...) {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for v, res := range col.wait(t) {
		want := pipeline.Delivered
		if strings.HasPrefix(v, "drop") {
			want = pipeline.Filtered
			if !errors.Is(res.Err, pipeline.ErrFiltered) || !strings.Contains(res.Err.Error(), `"dropper"`) {
				t.Errorf("%s: filtered with err %v", v, res.Err)
			}
		}
		if res.Outcome != want {
			t.Errorf("%s: %+v, want %v", v, res, want)
		}
	}
	if a, b, f := acksA.Load(), acksB.Load(), filteredAcks.Load(); a != 10 || b != 5 || f != 5 {
		t.Errorf("OnAck calls: a %d (%d filtered), dropper %d; want 10 (5), 5", a, f, b)
	}
	if s := p.Stats(); s.Filtered != 5 || s.Delivered != 5 {
		t.Errorf("stats %+v", s)
	}
	if st := pluginStats(t, p, "dropper", pipeline.HookOnSend); st.Drops != 5 || st.Calls != 10 {
		t.Errorf("dropper stats %+v", st)
	}
	got := e.read(t, 5)
	for _, r := range got {
		if !strings.HasPrefix(r.value, "keep-") {
			t.Errorf("read back %q", r.value)
		}
	}
}

// Every kind of plugin failure, each record checked.
func TestPluginFailures(t *testing.T) {
	e := setup(t, 3)
	var acked atomic.Int32
	failing := interceptorFunc{
		send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
			switch string(r.Value) {
			case "ic-error":
				r.Value = []byte("garbled") // must be undone
				r.Topic = "garbled"
				return plugins.Continue, errors.New("boom")
			case "ic-panic":
				r.Value = []byte("garbled")
				panic("kaboom")
			case "ic-verdict":
				return plugins.Verdict(7), nil
			}
			return plugins.Continue, nil
		},
		ack: func(_ context.Context, r *plugins.Record, _ plugins.Ack) error {
			acked.Add(1)
			if string(r.Value) == "ack-error" {
				return errors.New("ack failed")
			}
			if string(r.Value) == "ack-panic" {
				panic("ack kaboom")
			}
			return nil
		},
	}
	ser := serializerFunc(func(_ context.Context, _ plugins.Target, r *plugins.Record) ([]byte, error) {
		switch string(r.Value) {
		case "ser-error":
			return nil, errors.New("cannot encode")
		case "ser-panic":
			panic("encoder crashed")
		}
		return r.Value, nil
	})
	part := partitionerFunc(func(_ context.Context, r *plugins.Record, n int32) (int32, error) {
		switch string(r.Value) {
		case "part-range":
			return n, nil
		case "part-negative":
			return -7, nil
		case "part-error":
			return 0, errors.New("no idea")
		case "part-panic":
			panic("partitioner crashed")
		case "part-default":
			return plugins.DefaultPartition, nil
		}
		return 1, nil
	})
	p := e.producer(t,
		pipeline.Interceptor("failing", failing),
		pipeline.ValueSerializer("ser", ser),
		pipeline.Partitioner("part", part),
		pipeline.BatchMaxBytes(10_000),
		pipeline.CircuitBreaker(0, 0))
	ctx := ctxT(t)

	cases := []struct {
		value   string
		outcome pipeline.Outcome
		errIs   error
		errText string
	}{
		{"ic-error", pipeline.Delivered, nil, ""},
		{"ic-panic", pipeline.Delivered, nil, ""},
		{"ic-verdict", pipeline.Delivered, nil, ""},
		{"ack-error", pipeline.Delivered, nil, ""},
		{"ack-panic", pipeline.Delivered, nil, ""},
		{"ser-error", pipeline.Failed, pipeline.ErrSerialize, `value serializer "ser": cannot encode`},
		{"ser-panic", pipeline.Failed, pipeline.ErrSerialize, "encoder crashed"},
		{"part-range", pipeline.Delivered, nil, ""},
		{"part-negative", pipeline.Delivered, nil, ""},
		{"part-error", pipeline.Delivered, nil, ""},
		{"part-panic", pipeline.Delivered, nil, ""},
		{"part-default", pipeline.Delivered, nil, ""},
		{strings.Repeat("x", 20_000), pipeline.Failed, pipeline.ErrRecordTooLarge, "20003 bytes"},
		{"fine", pipeline.Delivered, nil, ""},
	}
	col := newCollector()
	for _, c := range cases {
		p.Send(ctx, rec("key", c.value), col.cb(t, c.value))
	}
	bad := rec("", "bad-partition")
	bad.SetPartition(3)
	p.Send(ctx, bad, col.cb(t, "bad-partition"))
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	results := col.wait(t)
	delivered := 0
	for _, c := range cases {
		res := results[c.value]
		name := c.value[:min(len(c.value), 20)]
		if res.Outcome != c.outcome {
			t.Errorf("%s: outcome %v (%v), want %v", name, res.Outcome, res.Err, c.outcome)
			continue
		}
		if c.outcome == pipeline.Delivered {
			delivered++
			if res.Err != nil || res.Topic != e.topic {
				t.Errorf("%s: %+v", name, res)
			}
			continue
		}
		if !errors.Is(res.Err, c.errIs) || !strings.Contains(res.Err.Error(), c.errText) {
			t.Errorf("%s: err %v, want %v containing %q", name, res.Err, c.errIs, c.errText)
		}
	}
	if res := results["bad-partition"]; res.Outcome != pipeline.Failed || !errors.Is(res.Err, pipeline.ErrUnknownPartition) || !strings.Contains(fmtErr(res.Err), "names partition 3") {
		t.Errorf("explicit partition 3 of 3: %+v", res)
	}

	// The partitioner's failures fell back to the default partitioner,
	// which hashes "key"; its successes went to partition 1.
	wantFallback := plugins.KeyPartition([]byte("key"), 3)
	var got []string
	for _, r := range e.read(t, delivered) {
		got = append(got, r.value)
		want := int32(1)
		if strings.HasPrefix(r.value, "part-") {
			want = wantFallback
		}
		if r.partition != want {
			t.Errorf("%s went to partition %d, want %d", r.value, r.partition, want)
		}
	}
	sort.Strings(got)
	want := []string{"ack-error", "ack-panic", "fine", "ic-error", "ic-panic", "ic-verdict", "part-default", "part-error", "part-negative", "part-panic", "part-range"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("read back %v, want %v (nothing garbled, nothing unserialized)", got, want)
	}

	for _, c := range []struct {
		name     string
		hook     pipeline.Hook
		failures uint64
	}{
		{"failing", pipeline.HookOnSend, 3},
		{"failing", pipeline.HookOnAck, 2},
		{"ser", pipeline.HookSerializeValue, 2},
		{"part", pipeline.HookPartition, 4},
	} {
		if st := pluginStats(t, p, c.name, c.hook); st.Failures != c.failures {
			t.Errorf("%s %s: %d failures, want %d (%+v)", c.name, c.hook, st.Failures, c.failures, st)
		}
	}
	if n := acked.Load(); n != int32(len(cases)+1) {
		t.Errorf("OnAck ran %d times, want %d (every record the interceptor saw)", n, len(cases)+1)
	}
	if s := p.Stats(); s.Delivered != uint64(delivered) || s.Failed != 4 {
		t.Errorf("stats %+v, want %d delivered, 4 failed", s, delivered)
	}
	log := e.log.String()
	for _, want := range []string{`plugin=failing hook=on_send error=boom`, "plugin=part hook=partition", "plugin=failing hook=on_ack"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestManualPartitioner(t *testing.T) {
	e := setup(t, 3)
	manual, _ := plugins.NewPartitioner("manual", nil)
	p := e.producer(t, pipeline.Partitioner("manual", manual))
	ctx := ctxT(t)
	for _, part := range []int32{0, 2, 0, 1} {
		r := rec("k", "v")
		r.SetPartition(part)
		if res := p.SendSync(ctx, r); res.Outcome != pipeline.Delivered || res.Partition != part {
			t.Errorf("partition %d: %+v", part, res)
		}
	}
	res := p.SendSync(ctx, rec("k", "none"))
	if res.Outcome != pipeline.Failed || !errors.Is(res.Err, plugins.ErrNoPartition) {
		t.Errorf("record without partition: %+v", res)
	}
	var parts []int32
	for _, r := range e.read(t, 4) {
		parts = append(parts, r.partition)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	if len(parts) != 4 || parts[0] != 0 || parts[1] != 0 || parts[2] != 1 || parts[3] != 2 {
		t.Errorf("partitions %v", parts)
	}
}

// Explicit partitions, including 0, bypass the partitioner.
func TestExplicitPartitions(t *testing.T) {
	e := setup(t, 3)
	var calls atomic.Int32
	part := partitionerFunc(func(context.Context, *plugins.Record, int32) (int32, error) {
		calls.Add(1)
		return 1, nil
	})
	p := e.producer(t, pipeline.Partitioner("p", part))
	ctx := ctxT(t)
	for i, want := range []int32{0, 2, -1, 0, -1} {
		r := rec("k", "v")
		if want >= 0 {
			r.SetPartition(want)
		} else {
			want = 1
		}
		if res := p.SendSync(ctx, r); res.Outcome != pipeline.Delivered || res.Partition != want {
			t.Errorf("record %d: %+v, want partition %d", i, res, want)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("partitioner called %d times, want 2", n)
	}
}

// Keyed records land where the Java client puts them: Kafka's murmur2
// vectors, expected partitions of 7 computed independently.
func TestDefaultPartitionerKafkaVectors(t *testing.T) {
	e := setup(t, 7)
	want := map[string]int32{
		"21": 3, "foobar": 0, "a-little-bit-long-string": 1, "a-little-bit-longer-string": 0,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 3, "abc": 4,
	}
	for _, opts := range [][]pipeline.Option{nil, {pipeline.Partitioner("murmur2", mustPartitioner(t, "murmur2"))}} {
		p := e.producer(t, opts...)
		ctx := ctxT(t)
		for k, w := range want {
			if res := p.SendSync(ctx, rec(k, "v")); res.Partition != w {
				t.Errorf("key %q to partition %d, want %d (%+v)", k, res.Partition, w, res)
			}
		}
	}
	for _, r := range e.read(t, 2*len(want)) {
		if r.partition != want[r.key] {
			t.Errorf("read back key %q from partition %d, want %d", r.key, r.partition, want[r.key])
		}
	}
}

func mustPartitioner(t *testing.T, name string) plugins.Partitioner {
	p, err := plugins.NewPartitioner(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCircuitBreaker(t *testing.T) {
	e := setup(t, 2)
	var calls atomic.Int32
	broken := interceptorFunc{send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
		calls.Add(1)
		r.Value = []byte("garbled")
		return plugins.Continue, errors.New("always fails")
	}}
	// Long enough that seven SendSync calls fit in one cool-down, and one
	// SendSync in the rest of the doubled one after a sleep of a cool-down,
	// against a real broker on a 2-core machine whose load average is 25:
	// each SendSync may take several hundred milliseconds there.
	const cooldown = 3 * time.Second
	p := e.producer(t, pipeline.Interceptor("broken", broken), pipeline.CircuitBreaker(3, cooldown),
		pipeline.Partitioner("badpart", fixed(99)))
	ctx := ctxT(t)
	send := func(n int) {
		for i := 0; i < n; i++ {
			if res := p.SendSync(ctx, rec("k", "ok")); res.Outcome != pipeline.Delivered {
				t.Fatalf("%+v", res)
			}
		}
	}
	send(10)
	st := pluginStats(t, p, "broken", pipeline.HookOnSend)
	if st.Calls != 3 || st.Failures != 3 || st.Bypasses != 7 || calls.Load() != 3 {
		t.Errorf("after 10 records: %+v, %d calls", st, calls.Load())
	}
	pst := pluginStats(t, p, "badpart", pipeline.HookPartition)
	if pst.Calls != 3 || pst.Failures != 3 || pst.Bypasses != 7 {
		t.Errorf("partitioner after 10 records: %+v", pst)
	}
	time.Sleep(cooldown + 100*time.Millisecond)
	// Half-open: one trial call, which fails and re-opens at once, for
	// twice the cool-down.
	send(2)
	if st := pluginStats(t, p, "broken", pipeline.HookOnSend); st.Calls != 4 || st.Bypasses != 8 {
		t.Errorf("after the cool-down: %+v", st)
	}
	time.Sleep(cooldown + 100*time.Millisecond)
	send(1)
	if st := pluginStats(t, p, "broken", pipeline.HookOnSend); st.Calls != 4 || st.Bypasses != 9 {
		t.Errorf("within the doubled cool-down: %+v", st)
	}
	if !strings.Contains(e.log.String(), "bypassing it: plugin=broken") {
		t.Errorf("breaker trip not logged:\n%s", e.log.String())
	}
	for _, r := range e.read(t, 13) {
		if r.value != "ok" {
			t.Errorf("read back %q", r.value)
		}
	}
}

// The partitioner is swapped many times while records flow: every record is
// delivered exactly once, to a partition one of the partitioners chose.
func TestHotSwapPartitioner(t *testing.T) {
	e := setup(t, 3)
	p := e.producer(t, pipeline.Partitioner("zero", fixed(0)))
	ctx := ctxT(t)
	// Load the topic's metadata first, so that records are partitioned
	// as they are sent, not all at once when the metadata arrives.
	if res := p.SendSync(ctx, rec("", "first")); res.Partition != 0 {
		t.Fatalf("first record: %+v", res)
	}
	const n = 3000
	col, swaps := sendWhileSwapping(t, ctx, p, values(n, "v"),
		namedPartitioner{"one", fixed(1)}, namedPartitioner{"zero", fixed(0)})
	p.SetPartitioner("two", fixed(2))
	if res := p.SendSync(ctx, rec("", "after")); res.Partition != 2 {
		t.Errorf("after the last swap: %+v", res)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	results := col.wait(t)
	perPart := map[int32]int{}
	for v, res := range results {
		if res.Outcome != pipeline.Delivered || res.Partition > 1 {
			t.Errorf("%s: %+v", v, res)
		}
		perPart[res.Partition]++
	}
	t.Logf("%d swaps, records per partition %v", swaps, perPart)
	var calls uint64
	for _, name := range []string{"zero", "one"} {
		calls += pluginStats(t, p, name, pipeline.HookPartition).Calls
	}
	if calls < n {
		t.Errorf("the partitioners were called %d times for %d records", calls, n)
	}
	if perPart[0] == 0 || perPart[1] == 0 {
		t.Errorf("records per partition %v: the swaps did not take effect while records flowed", perPart)
	}
	if len(results) != n {
		t.Errorf("%d results, want %d", len(results), n)
	}
	e.readDistinct(t, n+2)
}

// TestBatchStats checks Stats().Batches against what was sent: every
// delivered record is in exactly one counted batch, a batch holds at least
// one record, and compressed batches count fewer bytes after compression
// than before.
func TestBatchStats(t *testing.T) {
	e := setup(t, 3)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name       string
		opts       []pipeline.Option
		compresses bool
	}{
		{"none", nil, false},
		{"lz4", []pipeline.Option{pipeline.Compression(pipeline.LZ4)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.producer(t, tc.opts...)
			value := strings.Repeat("compressible ", 20)
			for i := range 300 {
				p.Send(ctx, rec(fmt.Sprintf("k-%d", i), value), nil)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// franz-go counts a batch after its records have their
			// outcomes: the last batches may be counted just after
			// Flush returns.
			s := p.Stats()
			for deadline := time.Now().Add(10 * time.Second); s.Batches.Records < s.Delivered && time.Now().Before(deadline); s = p.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			b := s.Batches
			if s.Delivered != 300 || b.Records != s.Delivered {
				t.Fatalf("delivered %d, records in batches %d; want 300 and 300", s.Delivered, b.Records)
			}
			if b.Batches == 0 || b.Batches > b.Records {
				t.Errorf("%d batches for %d records", b.Batches, b.Records)
			}
			if b.UncompressedBytes < 300*uint64(len(value)) {
				t.Errorf("uncompressed bytes %d, less than the values' %d", b.UncompressedBytes, 300*len(value))
			}
			if compressed := b.CompressedBytes < b.UncompressedBytes; compressed != tc.compresses {
				t.Errorf("compressed bytes %d, uncompressed %d: compressed = %v, want %v", b.CompressedBytes, b.UncompressedBytes, compressed, tc.compresses)
			}
		})
	}
}
