package pipeline_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// inFlightHook counts the produce requests written and not yet answered,
// and keeps the largest count seen.
type inFlightHook struct {
	mu       sync.Mutex
	now, max int
}

func (h *inFlightHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != int16(kmsg.Produce) || err != nil {
		return
	}
	h.mu.Lock()
	h.now++
	h.max = max(h.max, h.now)
	h.mu.Unlock()
}

func (h *inFlightHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key != int16(kmsg.Produce) {
		return
	}
	h.mu.Lock()
	h.now--
	h.mu.Unlock()
}

// TestMaxInFlight: without idempotence, the producer keeps at most
// MaxInFlight produce requests waiting per broker, and by default (5, the
// Java client's; franz-go's own is 1) more than one. On kfake every produce
// request is held 20ms, so that requests overlap; a real broker is loaded
// with many small requests instead.
func TestMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []pipeline.Option
		want int // the most in flight allowed
		more bool
	}{
		{"1", []pipeline.Option{pipeline.MaxInFlight(1)}, 1, false},
		{"default", nil, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{log: new(logBuffer)}
			if testbroker.IsFake() {
				c, b := testbroker.Fake(t)
				c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
					c.KeepControl()
					c.SleepControl(func() { time.Sleep(20 * time.Millisecond) })
					return nil, nil, false
				})
				e.brokers = b
			} else {
				e.brokers = testbroker.Brokers(t)
			}
			e.topic = testbroker.CreateTopic(t, e.brokers, 8)
			h := new(inFlightHook)
			opts := append([]pipeline.Option{pipeline.Idempotence(false), pipeline.Linger(0), pipeline.StageBatch(1, 0), pipeline.BatchMaxBytes(16 << 10),
				pipeline.KgoOptions(kgo.WithHooks(h))}, tc.opts...)
			p := e.producer(t, opts...)
			ctx := ctxT(t)
			n := 20000
			if !testbroker.IsFake() {
				n = 200000
			}
			var failed atomic.Int64
			for i := range n {
				p.Send(ctx, rec("", strings.Repeat("x", 100+i%7)), func(_ *plugins.Record, res pipeline.Result) {
					if res.Outcome != pipeline.Delivered {
						failed.Add(1)
					}
				})
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if failed.Load() != 0 {
				t.Fatalf("%d records failed", failed.Load())
			}
			h.mu.Lock()
			got := h.max
			h.mu.Unlock()
			t.Logf("most produce requests in flight: %d", got)
			if got > tc.want {
				t.Errorf("%d produce requests in flight, MaxInFlight allows %d", got, tc.want)
			}
			if tc.more && got < 2 {
				t.Errorf("never more than %d produce request in flight: the default window of 5 is not used", got)
			}
		})
	}
}

func TestMaxInFlightIdempotent(t *testing.T) {
	_, err := pipeline.New(context.Background(), pipeline.Brokers("127.0.0.1:1"), pipeline.MaxInFlight(1))
	if err == nil || !strings.Contains(err.Error(), "max.in.flight.requests.per.connection") {
		t.Fatalf("MaxInFlight(1) with idempotence: got %v, want an error naming max.in.flight.requests.per.connection", err)
	}
}

// silencer dials real connections that it can make silent: once silenced,
// what is written to them is dropped, reads wait until the connection is
// closed, and new connections are not made. To the client, the brokers
// stopped answering.
type silencer struct {
	silent atomic.Bool
	d      net.Dialer
}

func (s *silencer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if s.silent.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c, err := s.d.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &silentConn{Conn: c, s: s, closed: make(chan struct{})}, nil
}

type silentConn struct {
	net.Conn
	s      *silencer
	once   sync.Once
	closed chan struct{}
}

func (c *silentConn) Write(b []byte) (int, error) {
	if c.s.silent.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *silentConn) Read(b []byte) (int, error) {
	if c.s.silent.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Read(b)
}

func (c *silentConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestMaxBlock: once the brokers stop answering and the buffer is full, a
// Send waits MaxBlock and its record fails with ErrBufferFull, naming the
// settings; without the bound it would wait for ever. The buffer is full by
// records (MaxBufferedRecords) or, by default, by bytes (MaxBufferedBytes,
// 32 MiB like buffer.memory).
func TestMaxBlock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []pipeline.Option
		value int
		fill  int // records that fit in the buffer
	}{
		{"records", []pipeline.Option{pipeline.MaxBufferedRecords(10)}, 10, 10},
		{"default bytes", []pipeline.Option{pipeline.MaxBufferedRecords(1 << 20), pipeline.BatchMaxBytes(1 << 20)}, 1 << 20, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, 1)
			s := new(silencer)
			const block = 500 * time.Millisecond
			opts := append([]pipeline.Option{pipeline.MaxBlock(block), pipeline.KgoOptions(kgo.Dialer(s.dial))}, tc.opts...)
			p := e.producer(t, opts...)
			ctx := ctxT(t)
			if res := p.SendSync(ctx, rec("", "before")); res.Err != nil {
				t.Fatalf("before the brokers went silent: %v", res.Err)
			}
			s.silent.Store(true)
			value := strings.Repeat("v", max(1, tc.value-100))
			results := make(chan error, 2*tc.fill+64)
			send := func() time.Duration {
				start := time.Now()
				done := make(chan struct{})
				go func() {
					p.Send(ctx, rec("", value), func(_ *plugins.Record, res pipeline.Result) { results <- res.Err })
					close(done)
				}()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Send still blocked after 10s")
				}
				return time.Since(start)
			}
			for range tc.fill - 1 {
				if d := send(); d > block/2 {
					t.Fatalf("Send blocked %v with room in the buffer", d)
				}
			}
			// The buffer may hold one record fewer than the limit
			// (the record delivered before may still count).
			var d time.Duration
			for range 2 {
				if d = send(); d >= block {
					break
				}
			}
			if d < block {
				t.Fatalf("Send returned after %v with the buffer full, want MaxBlock %v", d, block)
			}
			select {
			case err := <-results:
				if !errors.Is(err, pipeline.ErrBufferFull) || !strings.Contains(err.Error(), "max.block.ms") || !strings.Contains(err.Error(), "buffer full for 500ms") {
					t.Fatalf("record failed with %v, want ErrBufferFull naming max.block.ms", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the record that found the buffer full got no outcome")
			}

			// A SendBatch is bounded as a whole: once one of its
			// records waited MaxBlock in vain, the others fail at
			// once instead of waiting MaxBlock each.
			batch := make([]*plugins.Record, 20)
			for i := range batch {
				batch[i] = rec("", value)
			}
			start := time.Now()
			p.SendBatch(ctx, batch, func(_ *plugins.Record, res pipeline.Result) { results <- res.Err })
			if d := time.Since(start); d < block || d > 3*block {
				t.Fatalf("SendBatch of %d records with the buffer full returned after %v, want about one MaxBlock (%v)", len(batch), d, block)
			}
			for i := range batch {
				select {
				case err := <-results:
					if !errors.Is(err, pipeline.ErrBufferFull) {
						t.Fatalf("record %d of the batch failed with %v, want ErrBufferFull", i, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("record %d of the batch got no outcome", i)
				}
			}

			// Cancelling the record's context ends the wait too (a
			// record as large as the others, which does not fit).
			cctx, cancel := context.WithCancel(ctx)
			go func() { time.Sleep(100 * time.Millisecond); cancel() }()
			start = time.Now()
			res := p.SendSync(cctx, rec("", value))
			if time.Since(start) >= block || !errors.Is(res.Err, context.Canceled) {
				t.Fatalf("SendSync with a cancelled context: %v after %v, want context.Canceled before MaxBlock", res.Err, time.Since(start))
			}

			// Close gives up on the buffered records when its
			// context ends, and fails them.
			cctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			start = time.Now()
			rep, err := p.Close(cctx)
			if err == nil || rep.Undelivered == 0 || time.Since(start) > 5*time.Second {
				t.Fatalf("Close with the brokers silent: %+v, %v after %v; want an error, undelivered records, and no wait past its context", rep, err, time.Since(start))
			}
		})
	}
}

// TestMaxBlockStageBatches: a SendBatch whose records go through the
// stages in several stage batches shares one MaxBlock bound across them,
// as a SendBatch without stage batching does (TestMaxBlock).
func TestMaxBlockStageBatches(t *testing.T) {
	e := setup(t, 1)
	s := new(silencer)
	const block = 500 * time.Millisecond
	p := e.producer(t, pipeline.MaxBlock(block), pipeline.KgoOptions(kgo.Dialer(s.dial)), pipeline.MaxBufferedRecords(10),
		pipeline.Interceptor("ic", &batchIC{}), pipeline.StageBatch(4, time.Millisecond))
	ctx := ctxT(t)
	if res := p.SendSync(ctx, rec("", "before")); res.Err != nil {
		t.Fatalf("before the brokers went silent: %v", res.Err)
	}
	s.silent.Store(true)
	results := make(chan error, 64)
	send := func(n int) time.Duration {
		batch := make([]*plugins.Record, n)
		for i := range batch {
			batch[i] = rec("", "v")
		}
		start := time.Now()
		p.SendBatch(ctx, batch, func(_ *plugins.Record, res pipeline.Result) { results <- res.Err })
		return time.Since(start)
	}
	send(9) // fills the buffer (the record delivered before may still count)
	// 20 records in stage batches of 4: one MaxBlock in all, not one per
	// stage batch.
	if d := send(20); d < block || d > 3*block {
		t.Fatalf("SendBatch of 20 records in stage batches of 4 with the buffer full returned after %v, want about one MaxBlock (%v)", d, block)
	}
	// The buffer may have had room for one of them (the record
	// delivered before may no longer count).
	full := 0
	for full < 19 {
		select {
		case err := <-results:
			if errors.Is(err, pipeline.ErrBufferFull) {
				full++
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of the 20 records failed with ErrBufferFull, want at least 19", full)
		}
	}
}

// TestMetadataMaxAge: partitions added to a topic are used once the
// metadata is MetadataMaxAge old; with a long age (the default is 5m) the
// producer keeps sending to the one partition it knew.
func TestMetadataMaxAge(t *testing.T) {
	for _, tc := range []struct {
		age  time.Duration
		seen bool // new partitions are used within wait
		wait time.Duration
	}{
		{500 * time.Millisecond, true, 10 * time.Second},
		{time.Hour, false, 3 * time.Second},
	} {
		t.Run(tc.age.String(), func(t *testing.T) {
			e := setup(t, 1)
			p := e.producer(t, pipeline.MetadataMaxAge(tc.age))
			ctx := ctxT(t)
			// Records before and after a pause, so that a refresh
			// the new topic's first metadata may have asked for is
			// over before partitions are added.
			for _, v := range []string{"first", "second"} {
				if res := p.SendSync(ctx, rec("k", v)); res.Err != nil || res.Partition != 0 {
					t.Fatalf("record before partitions were added: %+v", res)
				}
				time.Sleep(time.Second)
			}
			adm := kadm.NewClient(newClient(t, e.brokers))
			resp, err := adm.CreatePartitions(ctx, 3, e.topic)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				t.Fatalf("add partitions: %v", err)
			}
			added := time.Now()
			for time.Since(added) < tc.wait {
				for j := range 20 {
					res := p.SendSync(ctx, rec(string(rune('a'+j)), "after"))
					if res.Err != nil {
						t.Fatal(res.Err)
					}
					if res.Partition > 0 {
						if !tc.seen {
							t.Fatalf("a new partition was used %v after it was added, with MetadataMaxAge %v", time.Since(added), tc.age)
						}
						t.Logf("a new partition was used %v after it was added", time.Since(added).Round(time.Millisecond))
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.seen {
				t.Fatalf("new partitions not used within %v with MetadataMaxAge %v", tc.wait, tc.age)
			}
		})
	}
}

func newClient(t *testing.T, brokers []string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestPartitionerIgnoreKeys: records of one key all go to its partition,
// unless the default partitioner ignores keys, when they are spread in
// sticky batches (each SendSync is a batch of its own).
func TestPartitionerIgnoreKeys(t *testing.T) {
	e := setup(t, 4)
	for _, ignore := range []bool{false, true} {
		p := e.producer(t, pipeline.PartitionerIgnoreKeys(ignore))
		ctx := ctxT(t)
		parts := map[int32]bool{}
		for range 40 {
			res := p.SendSync(ctx, rec("same-key", "v"))
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			parts[res.Partition] = true
		}
		if !ignore && (len(parts) != 1 || !parts[plugins.KeyPartition([]byte("same-key"), 4)]) {
			t.Errorf("keys hashed: one key went to partitions %v, want only %d", parts, plugins.KeyPartition([]byte("same-key"), 4))
		}
		if ignore && len(parts) < 2 {
			t.Errorf("PartitionerIgnoreKeys(true): 40 batches of one key all went to partitions %v", parts)
		}
	}
}
