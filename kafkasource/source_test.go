package kafkasource_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/internal/sourcetest"
	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/kafkasource"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// upper prefixes every value with "T:", drops values ending in "0" (every
// tenth record), and fails values that start with "bad".
type upper struct{}

var errBad = errors.New("bad record")

func (upper) OnSend(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
	if bytes.HasPrefix(r.Value, []byte("bad")) {
		return plugins.Continue, errBad
	}
	if bytes.HasSuffix(r.Value, []byte("0")) {
		return plugins.Drop, nil
	}
	r.Value = append([]byte("T:"), r.Value...)
	return plugins.Continue, nil
}

func (upper) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }

// produceInput writes n records to topic: key "kK" for K = i%keys, value
// "i", and "bad-i" for the indexes in bad.
func produceInput(t *testing.T, brokers []string, topic string, n, keys int, bad map[int]bool) {
	t.Helper()
	sourcetest.Produce(t, brokers, topic, n, keys, func(i int) string {
		if bad[i] {
			return "bad-" + strconv.Itoa(i)
		}
		return strconv.Itoa(i)
	})
}

func newSource(t *testing.T, ctx context.Context, brokers []string, in, out, group string, d kafkasource.Delivery, opts ...kafkasource.Option) *kafkasource.Source {
	t.Helper()
	all := []kafkasource.Option{
		kafkasource.Topics(in), kafkasource.Group(group), kafkasource.Guarantee(d),
		kafkasource.Logger(hclog.NewNullLogger()),
		kafkasource.MaxPollRecords(500),
		kafkasource.Sink(pipeline.Brokers(brokers...), pipeline.DefaultTopic(out),
			pipeline.Interceptor("upper", upper{}, pipeline.OnFailure(pipeline.FailRecord))),
	}
	if d == kafkasource.AtLeastOnce {
		all = append(all, kafkasource.Brokers(brokers...))
	}
	s, err := kafkasource.New(ctx, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runUntil runs s until cond holds (checked every 20ms) or the test's time
// is up, then stops and closes it.
func runUntil(t *testing.T, s *kafkasource.Source, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.After(testbroker.Timeout())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	ok := false
wait:
	for {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-deadline:
			break wait
		case <-tick.C:
			if cond() {
				ok = true
				break wait
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of its context ending")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer ccancel()
	if _, err := s.Close(cctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !ok {
		t.Fatalf("condition not met within %v; stats %+v", testbroker.Timeout(), s.Stats())
	}
}

func committed(st kafkasource.Stats) (n uint64) {
	for _, p := range st.Partitions {
		n += p.Delivered + p.Filtered + p.DeadLettered
	}
	return n
}

// checkOutput reads the output as a read_committed reader and checks that
// it holds every input record that is not filtered (every tenth), once with
// exact, transformed, in input order per key.
func checkOutput(t *testing.T, brokers []string, out string, n int, exact bool) {
	t.Helper()
	want := n - n/10
	recs := sourcetest.ReadCommitted(t, brokers, out, want, time.Second, testbroker.Timeout())
	dups, missing := sourcetest.CheckOutput(t, recs, n, "T:", true, func(i int) bool { return i%10 != 0 })
	if len(missing) > 0 {
		t.Fatalf("%d records missing, the first %d", len(missing), missing[0])
	}
	// Under exactly-once a read_committed reader finds no more records
	// than wanted: no duplicates.
	if exact && (dups > 0 || len(recs) != want) {
		t.Fatalf("read_committed reader finds %d records (%d duplicates), want %d", len(recs), dups, want)
	}
}

func TestExactlyOnce(t *testing.T) {
	brokers := testbroker.Brokers(t)
	in := testbroker.CreateTopic(t, brokers, 3)
	out := testbroker.CreateTopic(t, brokers, 3)
	const n, keys = 3000, 40
	produceInput(t, brokers, in, n, keys, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	s := newSource(t, ctx, brokers, in, out, "eos-"+in, kafkasource.ExactlyOnce)
	runUntil(t, s, func() bool { return committed(s.Stats()) == n })
	st := s.Stats()
	var filtered uint64
	for _, p := range st.Partitions {
		filtered += p.Filtered
		if p.Lag != 0 || p.Stopped {
			t.Errorf("partition %d: lag %d, stopped %v", p.Partition, p.Lag, p.Stopped)
		}
	}
	if filtered != n/10 || st.Commits == 0 {
		t.Errorf("filtered %d, want %d; commits %d", filtered, n/10, st.Commits)
	}
	// Filtered records advanced the committed offsets like the others:
	// the group committed every input partition to its end.
	checkCommittedToEnd(t, brokers, "eos-"+in, in)
	checkOutput(t, brokers, out, n, true)
}

// checkCommittedToEnd checks that group committed every partition of topic
// up to its end offset.
func checkCommittedToEnd(t *testing.T, brokers []string, group, topic string) {
	t.Helper()
	ends := testbroker.EndOffsets(t, brokers, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range ends {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != end {
			t.Errorf("partition %d: committed %d (found %v), end offset %d", p, o.At, ok, end)
		}
	}
}

func TestAtLeastOnce(t *testing.T) {
	brokers := testbroker.Brokers(t)
	in := testbroker.CreateTopic(t, brokers, 3)
	out := testbroker.CreateTopic(t, brokers, 3)
	const n, keys = 3000, 40
	produceInput(t, brokers, in, n, keys, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	s := newSource(t, ctx, brokers, in, out, "alo-"+in, kafkasource.AtLeastOnce)
	runUntil(t, s, func() bool { return committed(s.Stats()) == n })
	checkCommittedToEnd(t, brokers, "alo-"+in, in)
	checkOutput(t, brokers, out, n, false)
}

// TestRebalanceExactlyOnce runs two sources of one group; the second joins
// mid-stream and the first leaves mid-stream, so partitions move twice,
// aborting transactions in flight. The output still holds every record
// once.
func TestRebalanceExactlyOnce(t *testing.T) {
	brokers := testbroker.Brokers(t)
	in := testbroker.CreateTopic(t, brokers, 4)
	out := testbroker.CreateTopic(t, brokers, 4)
	const n, keys = 6000, 40
	produceInput(t, brokers, in, n, keys, nil)
	group := "eos-rebalance-" + in
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	a := newSource(t, ctx, brokers, in, out, group, kafkasource.ExactlyOnce, kafkasource.MaxPollRecords(100))
	b := newSource(t, ctx, brokers, in, out, group, kafkasource.ExactlyOnce, kafkasource.MaxPollRecords(100))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// a stops once it has committed a quarter.
		runUntil(t, a, func() bool { return committed(a.Stats()) >= n/4 })
	}()
	time.Sleep(50 * time.Millisecond)
	runUntil(t, b, func() bool {
		return committed(a.Stats())+committed(b.Stats()) == n
	})
	wg.Wait()
	if committed(b.Stats()) == 0 {
		t.Errorf("the second source committed nothing")
	}
	checkOutput(t, brokers, out, n, true)
}

// cancelAtWrite calls cancel once the client has written its nth request
// of kind key to a broker.
type cancelAtWrite struct {
	key    int16
	nth    int32
	n      atomic.Int32
	cancel context.CancelFunc
}

func (h *cancelAtWrite) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == h.key && err == nil && h.n.Add(1) == h.nth {
		h.cancel()
	}
}

// TestStopWhileCommitting stops a source (its Run context ends) while it
// ends a transaction: after the transaction's offsets were sent
// (TxnOffsetCommit) and before EndTxn. The source must still end the
// transaction: one left open holds the group's offsets of its partitions
// unstable, and the group's next owner of them cannot read them (a
// read_committed reader of the output cannot read past it either) until the
// transaction timeout. The hook cancels from the client's writer, before
// the commit's response can be read, and a request whose context has ended
// is never written: before the fix the EndTxn was never sent, every run.
func TestStopWhileCommitting(t *testing.T) {
	brokers := testbroker.Brokers(t)
	in := testbroker.CreateTopic(t, brokers, 2)
	out := testbroker.CreateTopic(t, brokers, 2)
	const n, keys = 1000, 20
	produceInput(t, brokers, in, n, keys, nil)
	group := "eos-stop-" + in
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	hook := &cancelAtWrite{key: kmsg.TxnOffsetCommit.Int16(), nth: 3, cancel: stop}
	a := newSource(t, ctx, brokers, in, out, group, kafkasource.ExactlyOnce, kafkasource.MaxPollRecords(100),
		kafkasource.Sink(pipeline.KgoOptions(kgo.WithHooks(hook))))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(testbroker.Timeout()):
		t.Fatalf("Run did not end within %v; stats %+v", testbroker.Timeout(), a.Stats())
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer ccancel()
	if _, err := a.Close(cctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := a.Stats(); st.Commits != 3 || st.Aborts != 0 {
		t.Errorf("commits %d, aborts %d; want the third transaction, whose end began before Run's context ended, committed", st.Commits, st.Aborts)
	}
	checkOffsetsStable(t, brokers, group, in, 2)

	// The group's next member reads on from the committed offsets.
	b := newSource(t, ctx, brokers, in, out, group, kafkasource.ExactlyOnce, kafkasource.MaxPollRecords(100))
	runUntil(t, b, func() bool { return committed(a.Stats())+committed(b.Stats()) == n })
	checkOutput(t, brokers, out, n, true)
}

// checkOffsetsStable fetches group's committed offsets of topic's
// partitions as a member about to read them does (require_stable), until
// the broker answers without UNSTABLE_OFFSET_COMMIT, for up to 10s. A
// transaction left open with offsets of them keeps that answer until the
// transaction timeout (40s) aborts it; a transaction that was ended keeps
// it only until the broker has written its commit marker to the offsets
// topic, which Apache Kafka does just after it answers EndTxn.
func checkOffsetsStable(t *testing.T, brokers []string, group, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = true
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = group
	gt := kmsg.NewOffsetFetchRequestGroupTopic()
	gt.Topic = topic
	for p := range partitions {
		gt.Partitions = append(gt.Partitions, p)
	}
	g.Topics = append(g.Topics, gt)
	req.Groups = append(req.Groups, g)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("fetching the committed offsets of group %s: %v", group, err)
		}
		var errs []error
		for _, g := range resp.Groups {
			if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("group %s: %w", g.Group, err))
			}
			for _, tp := range g.Topics {
				for _, p := range tp.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						errs = append(errs, fmt.Errorf("group %s, topic %s partition %d: %w", g.Group, tp.Topic, p.Partition, err))
					}
				}
			}
		}
		if len(errs) == 0 {
			return
		}
		if !errors.Is(errs[0], kerr.UnstableOffsetCommit) || time.Now().After(deadline) {
			t.Fatalf("committed offsets: %v (a transaction the source left open holds them)", errors.Join(errs...))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDeadLetter(t *testing.T) {
	for _, d := range []kafkasource.Delivery{kafkasource.ExactlyOnce, kafkasource.AtLeastOnce} {
		t.Run(d.String(), func(t *testing.T) {
			brokers := testbroker.Brokers(t)
			in := testbroker.CreateTopic(t, brokers, 2)
			out := testbroker.CreateTopic(t, brokers, 2)
			dlq := testbroker.CreateTopic(t, brokers, 1)
			const n = 500
			produceInput(t, brokers, in, n, 7, map[int]bool{13: true, 257: true})
			ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
			defer cancel()
			s := newSource(t, ctx, brokers, in, out, "dlq-"+in, d,
				kafkasource.DeadLetter(dlq, pipeline.Brokers(brokers...)))
			runUntil(t, s, func() bool { return committed(s.Stats()) == n })
			var dead uint64
			for _, p := range s.Stats().Partitions {
				dead += p.DeadLettered
			}
			if dead != 2 {
				t.Errorf("dead-lettered %d, want 2", dead)
			}
			recs := testbroker.ReadAll(t, brokers, dlq, 2, true)
			for _, r := range recs {
				// With exactly_once the dead-letter records are
				// written in the poll's transaction.
				if r.Attrs.IsTransactional() != (d == kafkasource.ExactlyOnce) {
					t.Errorf("dead-letter record %q: transactional %v under %v", r.Value, r.Attrs.IsTransactional(), d)
				}
				h := sourcetest.Headers(r)
				if !bytes.HasPrefix(r.Value, []byte("bad-")) || h[kafkasource.HeaderPlugin] != "upper" ||
					h[kafkasource.HeaderHook] != string(pipeline.HookOnSend) || h[kafkasource.HeaderTopic] != in ||
					h[kafkasource.HeaderOffset] == "" || !bytes.Contains([]byte(h[kafkasource.HeaderError]), []byte(errBad.Error())) {
					t.Errorf("dead-letter record %q, headers %v", r.Value, h)
				}
			}
		})
	}
}

// TestStopPartition: with no dead-letter topic a failed record stops its
// partition at that record; the other partition goes on, and the committed
// offset of the stopped one is the failed record's.
func TestStopPartition(t *testing.T) {
	for _, d := range []kafkasource.Delivery{kafkasource.ExactlyOnce, kafkasource.AtLeastOnce} {
		t.Run(d.String(), func(t *testing.T) {
			brokers := testbroker.Brokers(t)
			in := testbroker.CreateTopic(t, brokers, 1)
			in2 := testbroker.CreateTopic(t, brokers, 1)
			out := testbroker.CreateTopic(t, brokers, 1)
			const n = 300
			produceInput(t, brokers, in, n, 3, map[int]bool{120: true})
			produceInput(t, brokers, in2, n, 3, nil)
			group := "stop-" + in
			ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
			defer cancel()
			opts := []kafkasource.Option{kafkasource.Topics(in, in2), kafkasource.MaxPollRecords(50)}
			s := newSource(t, ctx, brokers, in, out, group, d, opts...)
			var stopped kafkasource.PartitionStats
			runUntil(t, s, func() bool {
				var other bool
				for _, p := range s.Stats().Partitions {
					if p.Topic == in && p.Stopped {
						stopped = p
					}
					if p.Topic == in2 && p.Delivered+p.Filtered == n {
						other = true
					}
				}
				return stopped.Stopped && other
			})
			if stopped.StoppedAt != 120 || !bytes.Contains([]byte(stopped.StopReason), []byte(errBad.Error())) {
				t.Errorf("stopped at %d (%s), want 120", stopped.StoppedAt, stopped.StopReason)
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			// With exactly_once the transaction holding the failed
			// record was aborted: the partition is committed up to
			// the start of that poll's records (at most 50 before
			// it here), and the records before the failed one are
			// produced, once, after a restart.
			o, ok := offs.Lookup(in, 0)
			lo := int64(120)
			if d == kafkasource.ExactlyOnce {
				lo = 120 - 50
			}
			if !ok || o.At < lo || o.At > 120 {
				t.Errorf("committed offset of the stopped partition: %d (found %v), want %d to 120", o.At, ok, lo)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []kafkasource.Option
	}{
		{"no group", []kafkasource.Option{kafkasource.Topics("a"), kafkasource.Brokers("127.0.0.1:1")}},
		{"no topics", []kafkasource.Option{kafkasource.Group("g"), kafkasource.Brokers("127.0.0.1:1")}},
		{"both topics", []kafkasource.Option{kafkasource.Group("g"), kafkasource.Topics("a"), kafkasource.TopicRegex("b"), kafkasource.Brokers("127.0.0.1:1")}},
		{"eos brokers", []kafkasource.Option{kafkasource.Group("g"), kafkasource.Topics("a"), kafkasource.Guarantee(kafkasource.ExactlyOnce), kafkasource.Brokers("127.0.0.1:1")}},
		{"alo no brokers", []kafkasource.Option{kafkasource.Group("g"), kafkasource.Topics("a")}},
	} {
		if _, err := kafkasource.New(ctx, tc.opts...); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// TestNewOwnOutput: New refuses a sink whose default topic the source
// reads, or that is its dead-letter topic, with the rule the configuration
// applies (kafkasource.CheckOutput), and a dead-letter topic the source
// reads; it takes a default topic the source does not read.
func TestNewOwnOutput(t *testing.T) {
	brokers := testbroker.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for _, tc := range []struct {
		name, out string
		opts      []kafkasource.Option
		wantErr   string
	}{
		{"topics", "b", []kafkasource.Option{kafkasource.Topics("a", "b")},
			`kafkasource: DefaultTopic: topics includes "b", the pipeline's topic: every record would be read again`},
		{"regex", "orders-clean", []kafkasource.Option{kafkasource.TopicRegex("^orders")},
			`kafkasource: DefaultTopic: topic_regex "^orders" matches "orders-clean", the pipeline's topic: every record would be read again`},
		{"dead letter", "dead", []kafkasource.Option{kafkasource.Topics("a"), kafkasource.DeadLetter("dead", pipeline.Brokers(brokers...))},
			`kafkasource: DefaultTopic: "dead" is the dead-letter topic: the pipeline's topic must be another`},
		{"dead letter read", "clean", []kafkasource.Option{kafkasource.TopicRegex("^a"), kafkasource.DeadLetter("ab", pipeline.Brokers(brokers...))},
			`kafkasource: the dead-letter topic "ab" is a topic the source reads`},
		{"another topic", "clean", []kafkasource.Option{kafkasource.TopicRegex("^orders")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newAndClose(t, ctx, brokers, tc.out, tc.opts...)
			if got := fmt.Sprint(err); (err == nil) != (tc.wantErr == "") || err != nil && got != tc.wantErr {
				t.Errorf("New: %v, want error %q", err, tc.wantErr)
			}
		})
	}
}

// newAndClose creates an at-least-once source of group "g" on brokers whose
// sink writes to out, with opts, and closes it again; it returns New's
// error. It checks that the sink's producer has out as its DefaultTopic.
func newAndClose(t *testing.T, ctx context.Context, brokers []string, out string, opts ...kafkasource.Option) error {
	t.Helper()
	s, err := kafkasource.New(ctx, append([]kafkasource.Option{kafkasource.Group("g"), kafkasource.Brokers(brokers...),
		kafkasource.Logger(hclog.NewNullLogger()), kafkasource.Sink(pipeline.Brokers(brokers...), pipeline.DefaultTopic(out))}, opts...)...)
	if err != nil {
		return err
	}
	if got := s.Producer().DefaultTopic(); got != out {
		t.Errorf("the producer's DefaultTopic is %q, want %q", got, out)
	}
	if _, err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	return nil
}

// TestGroupTimeouts starts sources with session and rebalance timeouts at
// and beyond their bounds: every one from MinGroupTimeout to
// MaxGroupTimeout is taken (a session timeout under 9s with a heartbeat of
// a third of it, not franz-go's 3s, which it refuses above a session
// timeout), and one outside them is refused.
func TestGroupTimeouts(t *testing.T) {
	brokers := testbroker.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
	defer cancel()
	for _, tc := range []struct {
		name    string
		opt     kafkasource.Option
		wantErr bool
	}{
		{"session min", kafkasource.SessionTimeout(kafkasource.MinGroupTimeout), false},
		{"session 2s", kafkasource.SessionTimeout(2 * time.Second), false},
		{"session 45s", kafkasource.SessionTimeout(45 * time.Second), false},
		{"session max", kafkasource.SessionTimeout(kafkasource.MaxGroupTimeout), false},
		{"session under min", kafkasource.SessionTimeout(kafkasource.MinGroupTimeout - time.Millisecond), true},
		{"session over max", kafkasource.SessionTimeout(kafkasource.MaxGroupTimeout + time.Millisecond), true},
		{"rebalance min", kafkasource.RebalanceTimeout(kafkasource.MinGroupTimeout), false},
		{"rebalance over max", kafkasource.RebalanceTimeout(kafkasource.MaxGroupTimeout + time.Millisecond), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := newAndClose(t, ctx, brokers, "out", kafkasource.Topics("a"), tc.opt); (err != nil) != tc.wantErr {
				t.Errorf("New: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// fixed is upper once its bug is fixed: a value "bad-N" is taken as "N".
type fixed struct{ upper }

func (f fixed) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	r.Value = bytes.TrimPrefix(r.Value, []byte("bad-"))
	return f.upper.OnSend(ctx, r)
}

// TestResumeStopped stops a partition at a failed record, swaps in a
// plugin that no longer fails it and resumes the partition while Run runs:
// every record of the partition is then committed, the stopped record and
// those after it included, and the output holds each (once, under
// exactly_once).
func TestResumeStopped(t *testing.T) {
	for _, d := range []kafkasource.Delivery{kafkasource.ExactlyOnce, kafkasource.AtLeastOnce} {
		t.Run(d.String(), func(t *testing.T) {
			brokers := testbroker.Brokers(t)
			in := testbroker.CreateTopic(t, brokers, 1)
			out := testbroker.CreateTopic(t, brokers, 1)
			const n = 300
			produceInput(t, brokers, in, n, 3, map[int]bool{120: true})
			ctx, cancel := context.WithTimeout(context.Background(), testbroker.Timeout())
			defer cancel()
			s := newSource(t, ctx, brokers, in, out, "resume-"+in, d, kafkasource.MaxPollRecords(50))
			if got := s.ResumeStopped(); got != 0 {
				t.Errorf("ResumeStopped with nothing stopped = %d, want 0", got)
			}
			// 0: wait for the stop; 1: wait for the resume, which the
			// poll loop carries out between polls; 2: wait for every
			// record.
			var step atomic.Int32
			runUntil(t, s, func() bool {
				st := s.Stats()
				switch step.Load() {
				case 0:
					for _, p := range st.Partitions {
						if p.Stopped && p.StoppedAt == 120 {
							if _, err := s.Producer().Swap(ctx, pipeline.Interceptor("upper", fixed{}, pipeline.OnFailure(pipeline.FailRecord))); err != nil {
								t.Errorf("Swap: %v", err)
							}
							if got := s.ResumeStopped(); got != 1 {
								t.Errorf("ResumeStopped = %d, want 1", got)
							}
							step.Store(1)
						}
					}
				case 1:
					for _, p := range st.Partitions {
						if p.Stopped {
							return false // not resumed yet
						}
					}
					step.Store(2)
					return committed(st) >= n
				case 2:
					for _, p := range st.Partitions {
						if p.Stopped {
							t.Errorf("partition stopped again at %d: %s", p.StoppedAt, p.StopReason)
							return true
						}
					}
					return committed(st) >= n
				}
				return false
			})
			if st := s.Stats(); committed(st) < n || (d == kafkasource.ExactlyOnce && committed(st) != n) {
				t.Errorf("%d records committed, want %d: %+v", committed(st), n, st)
			}
			checkOutput(t, brokers, out, n, d == kafkasource.ExactlyOnce)
		})
	}
}
