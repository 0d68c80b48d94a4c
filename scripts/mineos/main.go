// Command mineos is the smallest useful franz-go consume-transform-produce
// program: it reads a topic in a consumer group, upper-cases the ASCII
// letters of every value (what examples/plugins/wat/upper.wasm does), and
// writes the records to another topic, under exactly-once (franz-go's
// GroupTransactSession: read_committed, one transaction per poll with the
// offsets in it) or at-least-once (commit after the poll's records were
// delivered). It exits once it has committed --records records, and prints
// records/s. scripts/source_bench.py runs it as the baseline of a kpipe
// pipeline with a kafka source.
//
//	mineos --brokers 127.0.0.1:9092 --in in --out out --group g --records 200000 --eos
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	in := flag.String("in", "in", "topic to read")
	out := flag.String("out", "out", "topic to write")
	group := flag.String("group", "mineos", "consumer group")
	records := flag.Int("records", 100_000, "exit after committing this many records")
	eos := flag.Bool("eos", false, "exactly-once (GroupTransactSession); at-least-once otherwise")
	maxPoll := flag.Int("max-poll", 10_000, "records per poll (and per transaction)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	create := flag.Int("create", 0, "only create --in with this many partitions, and exit")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *create > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...))
		if err == nil {
			_, err = kadm.NewClient(cl).CreateTopic(ctx, int32(*create), 1, nil, *in)
			cl.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "mineos: create:", err)
			os.Exit(1)
		}
		return
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.DefaultProduceTopic(*out), kgo.ProducerLinger(10 * time.Millisecond),
		kgo.AllowAutoTopicCreation(),
		kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	start := time.Now()
	var n int
	var err error
	var first firstCommit
	if *eos {
		n, err = runEOS(ctx, append(opts, kgo.TransactionalID(fmt.Sprintf("mineos-%s-%d", *group, os.Getpid())), kgo.RequireStableFetchOffsets()), *records, *maxPoll, &first)
	} else {
		n, err = runALO(ctx, append(opts, kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll()), *records, *maxPoll, &first)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mineos:", err)
		os.Exit(1)
	}
	end := time.Now()
	d := end.Sub(start)
	fmt.Printf("mineos: %d records in %v: %.0f records/s\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	steady := end.Sub(first.at)
	fmt.Printf("steady: %d records in %v after the first commit: %.0f records/s\n", n-first.n, steady.Round(time.Millisecond), float64(n-first.n)/steady.Seconds())
}

// firstCommit is when the first poll was committed, and its records: the
// steady rate is measured from there, leaving out the start (connecting,
// joining the group).
type firstCommit struct {
	at time.Time
	n  int
}

func (f *firstCommit) note(n int) {
	if f.n == 0 {
		f.at, f.n = time.Now(), n
	}
}

func upper(v []byte) []byte {
	out := make([]byte, len(v))
	for i, c := range v {
		if c-'a' < 26 {
			c -= 32
		}
		out[i] = c
	}
	return out
}

// produceAll produces the transformed records and waits for them.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, r := range recs {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: upper(r.Value), Headers: r.Headers, Timestamp: r.Timestamp}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	wg.Wait()
	return first
}

func runEOS(ctx context.Context, opts []kgo.Opt, want, maxPoll int, first *firstCommit) (int, error) {
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n := 0
	for n < want {
		fs := s.PollRecords(ctx, maxPoll)
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			return n, err
		}
		perr := produceAll(ctx, s.Client(), recs)
		committed, err := s.End(ctx, kgo.TransactionEndTry(perr == nil))
		if err != nil {
			return n, err
		}
		if committed {
			n += len(recs)
			first.note(n)
		}
	}
	return n, nil
}

func runALO(ctx context.Context, opts []kgo.Opt, want, maxPoll int, first *firstCommit) (int, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	for n < want {
		fs := cl.PollRecords(ctx, maxPoll)
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		recs := fs.Records()
		if len(recs) > 0 {
			if err := produceAll(ctx, cl, recs); err != nil {
				return n, err
			}
			if err := cl.CommitRecords(ctx, recs...); err != nil {
				return n, err
			}
			n += len(recs)
			first.note(n)
		}
		cl.AllowRebalance()
	}
	return n, nil
}
