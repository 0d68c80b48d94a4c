package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/internal/kafkaping"
	"github.com/kpipe/kpipe/internal/kgolog"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// The headers of a dead-lettered record, after the input record's own.
const (
	// HeaderError is the error that failed the record.
	HeaderError = "kpipe.error"
	// HeaderPlugin and HeaderHook name the plugin and hook that failed it,
	// when a plugin did (a pipeline.PluginError); absent otherwise.
	HeaderPlugin = "kpipe.plugin"
	HeaderHook   = "kpipe.hook"
	// HeaderTopic, HeaderPartition and HeaderOffset say where the record
	// was read.
	HeaderTopic     = "kpipe.source.topic"
	HeaderPartition = "kpipe.source.partition"
	HeaderOffset    = "kpipe.source.offset"
)

// Source reads records from Kafka through a consumer group, runs them
// through a pipeline.Producer and produces them, committing the consumed
// offsets as its Delivery says. Create it with New, run it with Run, and
// Close it.
type Source struct {
	cfg  config
	log  hclog.Logger
	prod *pipeline.Producer
	sess *kgo.GroupTransactSession // ExactlyOnce; its client is prod's
	cl   *kgo.Client               // the consuming client: sess's, or the AtLeastOnce consumer
	dlq  *pipeline.Producer        // nil without a dead-letter topic

	// slots hold the records of the batch in flight; a callback writes
	// its slot's result and then counts done.
	slots []slot
	done  atomic.Int64
	// dlqSlots are the dead-letter records of the batch in flight.
	dlqSlots []slot
	dlqDone  atomic.Int64

	stats stats

	// resume asks Run to take up the stopped partitions (ResumeStopped);
	// wake ends the poll Run is waiting in, so that it does so at once.
	resume atomic.Bool
	wake   atomic.Pointer[context.CancelFunc]
}

// slot is one record of a batch: the pipeline's record, the input record it
// came from, and its result.
type slot struct {
	rec plugins.Record // first: slotOf depends on it
	in  *kgo.Record
	res pipeline.Result
	why error // a dead-letter record's: why its input record failed
}

// slotOf returns the slot holding r: the callbacks receive the
// *plugins.Record they were sent with, which is the first field of its slot.
func slotOf(r *plugins.Record) *slot { return (*slot)(unsafe.Pointer(r)) }

// sourceCount numbers the ExactlyOnce sources of the process, for their
// default transactional ids.
var sourceCount atomic.Int64

// New creates a Source: the pipeline.Producer of the Sink options (with the
// group's client inside it for ExactlyOnce), the consumer (AtLeastOnce)
// and the dead-letter producer. It fails if a seed broker does not answer
// before ctx ends, or if the options are inconsistent: among others, if the
// source would read its own output, that is if the sink's DefaultTopic or
// the DeadLetter topic is one that Topics names or TopicRegex matches, or
// the two are the same topic (CheckOutput). A record that a plugin sends to
// another topic is not checked.
func New(ctx context.Context, opts ...Option) (*Source, error) {
	cfg := config{maxPoll: 10_000, endTimeout: 10 * time.Second}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case cfg.group == "":
		return nil, errors.New("kafkasource: no group (use Group)")
	case (len(cfg.topics) == 0) == (cfg.topicRegex == ""):
		return nil, errors.New("kafkasource: exactly one of Topics and TopicRegex is required")
	case cfg.delivery == ExactlyOnce && len(cfg.brokers) > 0:
		return nil, errors.New("kafkasource: ExactlyOnce reads from the sink's cluster: Brokers must not be set")
	case cfg.delivery == AtLeastOnce && len(cfg.brokers) == 0:
		return nil, errors.New("kafkasource: no source brokers (use Brokers)")
	case cfg.delivery == AtLeastOnce && cfg.txnID != "":
		return nil, errors.New("kafkasource: TransactionalID is for ExactlyOnce")
	case cfg.maxPoll <= 0 || cfg.endTimeout <= 0:
		return nil, errors.New("kafkasource: MaxPollRecords and EndTimeout must be positive")
	case cfg.deadLetter != "" && Reads(cfg.deadLetter, cfg.topics, cfg.topicRegex):
		return nil, fmt.Errorf("kafkasource: the dead-letter topic %q is a topic the source reads", cfg.deadLetter)
	}
	s := &Source{cfg: cfg, log: cfg.logger}
	if s.log == nil {
		s.log = hclog.Default().Named("kpipe")
	}
	s.stats.parts = map[topicPartition]*PartitionStats{}

	cons := []kgo.Opt{
		kgo.ConsumerGroup(cfg.group),
		// Records of aborted transactions are never read, under
		// either guarantee.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
	}
	if cfg.topicRegex != "" {
		cons = append(cons, kgo.ConsumeRegex(), kgo.ConsumeTopics(cfg.topicRegex))
	} else {
		cons = append(cons, kgo.ConsumeTopics(cfg.topics...))
	}
	if cfg.start == StartLatest {
		cons = append(cons, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	} else {
		cons = append(cons, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	if cfg.sessionTimeout > 0 {
		cons = append(cons, kgo.SessionTimeout(cfg.sessionTimeout))
		if hb := cfg.sessionTimeout / 3; hb < defaultHeartbeat {
			cons = append(cons, kgo.HeartbeatInterval(hb))
		}
	}
	if cfg.rebalanceTimeout > 0 {
		cons = append(cons, kgo.RebalanceTimeout(cfg.rebalanceTimeout))
	}

	sink := append([]pipeline.Option{pipeline.Logger(s.log)}, cfg.sink...)
	if cfg.delivery == ExactlyOnce {
		id := cfg.txnID
		if id == "" {
			host, _ := os.Hostname()
			id = fmt.Sprintf("kpipe-%s-%s-%d-%d", cfg.group, host, os.Getpid(), sourceCount.Add(1))
		}
		sink = append(sink,
			pipeline.TransactionalID(id),
			pipeline.KgoOptions(append(cons, kgo.RequireStableFetchOffsets())...),
			pipeline.ClientFactory(func(o ...kgo.Opt) (*kgo.Client, error) {
				sess, err := kgo.NewGroupTransactSession(o...)
				if err != nil {
					return nil, err
				}
				s.sess = sess
				return sess.Client(), nil
			}))
	}
	prod, err := pipeline.New(ctx, sink...)
	if err != nil {
		return nil, fmt.Errorf("kafkasource: %w", err)
	}
	s.prod = prod
	ok := false
	defer func() {
		if !ok {
			s.closeAll(ctx)
		}
	}()
	if err := CheckOutput(prod.DefaultTopic(), cfg.topics, cfg.topicRegex, cfg.deadLetter); err != nil {
		return nil, fmt.Errorf("kafkasource: DefaultTopic: %w", err)
	}
	if cfg.delivery == ExactlyOnce {
		s.cl = s.sess.Client()
		// Initialise the transactional id now rather than at the first
		// transaction: the broker then aborts a transaction a
		// predecessor with the same id left open (a killed process),
		// which would otherwise hold back the group's next readers of
		// its partitions (their offsets are unstable while it is open)
		// until the transaction timeout, while this process, which has
		// no records before it has partitions, would not get there.
		if _, _, err := s.cl.ProducerID(ctx); err != nil {
			return nil, fmt.Errorf("kafkasource: initialising transactional id: %w", err)
		}
	} else {
		cons = append(cons,
			kgo.SeedBrokers(cfg.brokers...),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.WithLogger(kgolog.New(s.log.Named("kgo"))))
		cl, err := kgo.NewClient(append(cons, cfg.consumerKgoOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("kafkasource: consumer: %w", err)
		}
		s.cl = cl
		if err := kafkaping.Ping(ctx, cl); err != nil {
			return nil, fmt.Errorf("kafkasource: consumer: no seed broker of %s answered: %w", strings.Join(cfg.brokers, ","), err)
		}
	}
	switch {
	case cfg.deadLetter != "" && s.sess != nil:
		if err := ensureTopic(ctx, s.cl, cfg.deadLetter); err != nil {
			return nil, fmt.Errorf("kafkasource: dead-letter topic: %w", err)
		}
	case cfg.deadLetter != "":
		dopts := append([]pipeline.Option{pipeline.Logger(s.log.Named("dead-letter"))}, cfg.deadLetterOpts...)
		if s.dlq, err = pipeline.New(ctx, dopts...); err != nil {
			return nil, fmt.Errorf("kafkasource: dead-letter producer: %w", err)
		}
	}
	ok = true
	return s, nil
}

// Producer returns the pipeline.Producer the records go through, for its
// Stats, and for Swap to replace its plugins while the source runs. Its
// transaction methods, Flush and Close belong to the Source.
func (s *Source) Producer() *pipeline.Producer { return s.prod }

// Delivery returns the source's delivery guarantee.
func (s *Source) Delivery() Delivery { return s.cfg.delivery }

// Run reads, runs and produces records until ctx ends (it then returns
// nil) or a failure that the source cannot get past: a transaction that
// could not be ended, or a client that was closed. Each poll's records are
// produced and then committed together; when ctx ends before each of a
// poll's records has its outcome, their transaction is aborted
// (ExactlyOnce) or their offsets are not committed (AtLeastOnce), and the
// next process of the group reads them again. With ExactlyOnce a
// transaction, once begun, is always ended (committed once every record
// has its outcome, else aborted), under EndTimeout rather than ctx: one left
// open would hold back the group's next reader of its partitions until the
// transaction timeout. Run must not be called twice at once.
func (s *Source) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		pctx, cancel := context.WithCancel(ctx)
		s.wake.Store(&cancel)
		if s.resume.Load() {
			cancel() // asked before the poll began: skip the wait
		}
		fs := s.cl.PollRecords(pctx, s.cfg.maxPoll)
		s.wake.Store(nil)
		cancel()
		if fs.IsClientClosed() {
			return errors.New("kafkasource: the client was closed")
		}
		var resumed map[topicPartition]bool
		if s.resume.Swap(false) {
			resumed = s.resumeStopped()
		}
		var recs []*kgo.Record
		fs.EachError(func(topic string, part int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch failed", "topic", topic, "partition", part, "error", err)
			}
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 || resumed[topicPartition{fp.Topic, fp.Partition}] {
				// A partition just resumed is read again from
				// where it stopped: these records come later.
				return
			}
			if s.stats.noteFetch(fp) {
				// A stopped partition: its records stay
				// uncommitted.
				return
			}
			recs = append(recs, fp.Records...)
		})
		if len(recs) == 0 {
			if s.sess == nil {
				s.cl.AllowRebalance()
			}
			continue
		}
		if err := s.batch(ctx, recs); err != nil {
			return err
		}
	}
}

// batch runs one poll's records through the pipeline and commits them.
func (s *Source) batch(ctx context.Context, recs []*kgo.Record) error {
	if s.sess != nil {
		if err := s.sess.Begin(); err != nil {
			return fmt.Errorf("kafkasource: begin transaction: %w", err)
		}
	}
	s.send(ctx, recs)
	flushErr := s.prod.Flush(ctx)
	if flushErr != nil || ctx.Err() != nil {
		// Interrupted: the records failed or are failing with ctx's
		// error, which is no fault of theirs.
		s.abandon()
		return nil
	}
	stops := s.deadLetter(ctx, recs)
	if ctx.Err() != nil {
		s.abandon()
		return nil
	}
	if s.sess != nil {
		return s.endTransaction(recs, stops)
	}
	s.commit(ctx, recs, stops)
	return nil
}

// send sends every record of the batch through the producer, in order.
func (s *Source) send(ctx context.Context, recs []*kgo.Record) {
	if cap(s.slots) < len(recs) {
		s.slots = make([]slot, len(recs))
	}
	s.slots = s.slots[:len(recs)]
	s.done.Store(0)
	for i, in := range recs {
		sl := &s.slots[i]
		*sl = slot{in: in, rec: plugins.Record{
			Key:       in.Key,
			Value:     in.Value,
			Headers:   in.Headers[:len(in.Headers):len(in.Headers)], // an appended header never lands in the input's array
			Timestamp: in.Timestamp,
		}}
		s.prod.Send(ctx, &sl.rec, s.completed)
	}
}

// completed is the callback of every record.
func (s *Source) completed(r *plugins.Record, res pipeline.Result) {
	slotOf(r).res = res
	s.done.Add(1)
}

// stop is a partition stopped in this batch: at the record in, why, and
// the offset it is read again from if it is resumed (ResumeStopped): its
// committed offset once the batch ends.
type stop struct {
	in   *kgo.Record
	err  error
	from int64
}

// deadLetter sends the batch's failed records to the dead-letter topic and
// waits for them. It returns the partitions to stop: those of failed
// records when there is no dead-letter topic or the dead-letter record
// failed too, each at its first such record.
func (s *Source) deadLetter(ctx context.Context, recs []*kgo.Record) map[topicPartition]stop {
	var stops map[topicPartition]stop
	stopAt := func(in *kgo.Record, err error) {
		tp := topicPartition{in.Topic, in.Partition}
		if _, ok := stops[tp]; ok {
			return
		}
		if stops == nil {
			stops = map[topicPartition]stop{}
		}
		stops[tp] = stop{in: in, err: err, from: in.Offset}
	}
	s.dlqSlots = s.dlqSlots[:0]
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.res.Outcome != pipeline.Failed {
			continue
		}
		if s.cfg.deadLetter == "" {
			stopAt(sl.in, sl.res.Err)
			continue
		}
		s.dlqSlots = append(s.dlqSlots, slot{in: sl.in, rec: deadLetterRecord(s.cfg.deadLetter, sl.in, sl.res.Err), why: sl.res.Err})
	}
	if len(s.dlqSlots) == 0 {
		return stops
	}
	if s.sess != nil {
		if !s.deadLetterInTransaction(ctx) {
			return stops // ctx ended; the caller abandons the batch
		}
	} else {
		s.dlqDone.Store(0)
		for i := range s.dlqSlots {
			s.dlq.Send(ctx, &s.dlqSlots[i].rec, s.deadLettered)
		}
		if err := s.dlq.Flush(ctx); err != nil {
			return stops // ctx ended; the caller abandons the batch
		}
	}
	for i := range s.dlqSlots {
		sl := &s.dlqSlots[i]
		if sl.res.Outcome != pipeline.Delivered {
			stopAt(sl.in, fmt.Errorf("%w; sending it to dead-letter topic %q failed too: %w", sl.why, s.cfg.deadLetter, sl.res.Err))
		}
	}
	return stops
}

// deadLetterInTransaction produces the batch's dead-letter records
// (ExactlyOnce) in its transaction, with the transactional client itself
// and no plugins, and waits for them; it reports false if ctx ended first.
// They are then committed or aborted with the batch's output and offsets:
// a dead-letter record is in the topic, for a read_committed reader, once
// for each input record committed as dead-lettered.
func (s *Source) deadLetterInTransaction(ctx context.Context) bool {
	// The callbacks write into res, not into the slots: if ctx ends
	// first, the batch is abandoned and the slots are reused while late
	// callbacks may still run.
	res := make([]pipeline.Result, len(s.dlqSlots))
	var left atomic.Int64
	left.Store(int64(len(res)))
	done := make(chan struct{})
	for i := range s.dlqSlots {
		r := &s.dlqSlots[i].rec
		kr := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
		s.cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
			if err != nil {
				res[i] = pipeline.Result{Outcome: pipeline.Failed, Topic: kr.Topic, Partition: -1, Offset: -1, Err: err}
			} else {
				res[i] = pipeline.Result{Outcome: pipeline.Delivered, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp}
			}
			if left.Add(-1) == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	for i := range res {
		s.dlqSlots[i].res = res[i]
	}
	return true
}

// ensureTopic makes sure the cluster of cl has topic, asking for its
// creation if the cluster creates topics on demand.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	absent, err := kafkaping.AbsentTopics(ctx, cl, []string{topic}, true)
	if err != nil {
		return err
	}
	if len(absent) > 0 {
		return fmt.Errorf("%q does not exist, and the cluster does not create topics on demand: create it first", topic)
	}
	return nil
}

// deadLettered is the callback of a dead-letter record.
func (s *Source) deadLettered(r *plugins.Record, res pipeline.Result) {
	slotOf(r).res = res
	s.dlqDone.Add(1)
}

// deadLetterRecord returns the dead-letter record of in, which failed with
// err: in's key, value, headers and timestamp, and headers saying why.
func deadLetterRecord(topic string, in *kgo.Record, err error) plugins.Record {
	h := make([]plugins.Header, len(in.Headers), len(in.Headers)+6)
	copy(h, in.Headers)
	h = append(h, plugins.Header{Key: HeaderError, Value: []byte(err.Error())})
	var pe *pipeline.PluginError
	if errors.As(err, &pe) {
		h = append(h,
			plugins.Header{Key: HeaderPlugin, Value: []byte(pe.Plugin)},
			plugins.Header{Key: HeaderHook, Value: []byte(pe.Hook)})
	}
	h = append(h,
		plugins.Header{Key: HeaderTopic, Value: []byte(in.Topic)},
		plugins.Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(in.Partition), 10)},
		plugins.Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, in.Offset, 10)})
	return plugins.Record{Topic: topic, Key: in.Key, Value: in.Value, Headers: h, Timestamp: in.Timestamp}
}

// abandon ends a batch that ctx interrupted: its transaction is aborted
// (ExactlyOnce); AtLeastOnce commits nothing.
func (s *Source) abandon() {
	if s.sess == nil {
		return
	}
	if _, err := s.end(kgo.TryAbort); err != nil {
		s.log.Warn("aborting the transaction of an interrupted batch", "error", err)
	}
	s.stats.aborted.Add(1)
}

// end ends the transaction in flight, committing it if commit says so and
// the session allows. It runs under a context of its own, bounded by
// EndTimeout, never under Run's: a transaction left open (its offsets sent
// with TxnOffsetCommit, its EndTxn not) keeps the group's committed offsets
// of its partitions unstable, so the member the group gives them to next
// cannot start reading them (its offset fetch gets UNSTABLE_OFFSET_COMMIT),
// and read_committed readers of the output cannot read past its records,
// until the transaction timeout aborts it. Ending Run's context in the
// middle of an End did exactly that (TestStopWhileCommitting). If End fails
// all the same, end aborts once more: franz-go keeps a transaction whose
// end was not confirmed for that retry, which reinitialises the producer id
// and so makes the broker abort whatever the id left open.
func (s *Source) end(commit kgo.TransactionEndTry) (committed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.endTimeout)
	defer cancel()
	committed, err = s.sess.End(ctx, commit)
	if err == nil {
		return committed, nil
	}
	actx, acancel := context.WithTimeout(context.Background(), s.cfg.endTimeout)
	defer acancel()
	if _, aerr := s.sess.End(actx, kgo.TryAbort); aerr != nil {
		return false, fmt.Errorf("%w; aborting it failed too: %w", err, aerr)
	}
	return false, err
}

// endTransaction ends the batch's transaction: it commits unless a
// partition must stop, in which case it stops the partitions and aborts, so
// that the other partitions' records are read again and produced in the
// next one. Every record of the batch has its outcome by now, so the
// transaction is ended even if ctx has ended meanwhile (see end).
func (s *Source) endTransaction(recs []*kgo.Record, stops map[topicPartition]stop) error {
	if len(stops) > 0 {
		// The abort leaves each stopped partition committed up to
		// the start of this batch's records of it.
		for i, in := range recs {
			tp := topicPartition{in.Topic, in.Partition}
			if st, ok := stops[tp]; ok && (i == 0 || recs[i-1].Topic != in.Topic || recs[i-1].Partition != in.Partition) {
				st.from = in.Offset
				stops[tp] = st
			}
		}
		s.stopPartitions(stops)
		_, err := s.end(kgo.TryAbort)
		s.stats.aborted.Add(1)
		if err != nil {
			return fmt.Errorf("kafkasource: abort transaction: %w", err)
		}
		return nil
	}
	committed, err := s.end(kgo.TryCommit)
	if err != nil {
		return fmt.Errorf("kafkasource: end transaction: %w", err)
	}
	if !committed {
		// A rebalance (or an abortable error) aborted it; the session
		// rewound to the committed offsets and the records are read
		// again by whoever owns their partitions now.
		s.stats.aborted.Add(1)
		s.log.Info("transaction aborted (the group rebalanced or the commit failed); its records are read again", "records", len(recs))
		return nil
	}
	s.stats.committed.Add(1)
	s.stats.count(s.slots, nil)
	return nil
}

// commit commits the batch's offsets (AtLeastOnce): every partition up to
// its last record, a stopped partition up to the record that stopped it.
func (s *Source) commit(ctx context.Context, recs []*kgo.Record, stops map[topicPartition]stop) {
	defer s.cl.AllowRebalance()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	// A poll's records come partition by partition, in offset order: the
	// last record of each run of one partition is the one to commit.
	for i, in := range recs {
		if i+1 < len(recs) && recs[i+1].Partition == in.Partition && recs[i+1].Topic == in.Topic {
			continue
		}
		if st, ok := stops[topicPartition{in.Topic, in.Partition}]; ok {
			if st.in.Offset == 0 {
				continue
			}
			// Commit up to the record that stopped the partition.
			in = &kgo.Record{Topic: in.Topic, Partition: in.Partition, LeaderEpoch: st.in.LeaderEpoch, Offset: st.in.Offset - 1}
		}
		m := offsets[in.Topic]
		if m == nil {
			m = map[int32]kgo.EpochOffset{}
			offsets[in.Topic] = m
		}
		if old, ok := m[in.Partition]; !ok || old.Offset < in.Offset+1 {
			m[in.Partition] = kgo.EpochOffset{Epoch: in.LeaderEpoch, Offset: in.Offset + 1}
		}
	}
	s.stopPartitions(stops)
	if len(offsets) > 0 {
		var cerr error
		s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = commitError(resp, err)
		})
		if cerr != nil {
			if ctx.Err() == nil {
				// The group moved on (this member was too slow,
				// or left): another member reads the records
				// again. Duplicates, not losses.
				s.log.Warn("committing offsets failed; the records will be produced again", "error", cerr)
			}
			return
		}
	}
	s.stats.committed.Add(1)
	s.stats.count(s.slots, stops)
}

// stopPartitions pauses the partitions of stops and records why.
func (s *Source) stopPartitions(stops map[topicPartition]stop) {
	if len(stops) == 0 {
		return
	}
	pause := map[string][]int32{}
	for tp, st := range stops {
		pause[tp.topic] = append(pause[tp.topic], tp.partition)
		// Recorded before it is said: a reload that the log line
		// prompts resumes the partition (ResumeStopped reads Stats).
		s.stats.stop(tp, st.in.Offset, st.from, st.err)
		s.log.Error("partition stopped: a record failed and there is no dead-letter topic; its records from this one on stay unconsumed (uncommitted) until kpipe restarts or a reload resumes it",
			"topic", tp.topic, "partition", tp.partition, "offset", st.in.Offset, "error", st.err)
	}
	s.cl.PauseFetchPartitions(pause)
}

// ResumeStopped asks Run to take up again the partitions that a failed
// record stopped (see the package documentation): typically once
// Producer().Swap has replaced the plugin that failed them. Each is read
// again from its committed offset, the record that stopped it for
// AtLeastOnce, the start of the poll that held it for ExactlyOnce (whose
// transaction was aborted), and stops again if a record fails again. It
// returns how many partitions are stopped now; Run resumes them before its
// next poll, ending the poll it waits in, and Stats shows them stopped
// until then. It is safe to call while Run runs.
func (s *Source) ResumeStopped() int {
	n := 0
	for _, ps := range s.Stats().Partitions {
		if ps.Stopped {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	s.resume.Store(true)
	if cancel := s.wake.Load(); cancel != nil {
		(*cancel)()
	}
	return n
}

// resumeStopped resumes the stopped partitions, between polls, each at the
// offset it was committed up to when it stopped. The fetch position has
// to be set: for AtLeastOnce it is past the records fetched with the one
// that failed; for ExactlyOnce the aborted transaction rewinds a partition
// only if it had a committed offset before. (For AtLeastOnce rebalances
// are blocked until the next commit, BlockRebalanceOnPoll, so a partition
// is still this member's when its offset is set; SetOffsets skips one
// that is not.) It returns the partitions it resumed.
func (s *Source) resumeStopped() map[topicPartition]bool {
	stopped := s.stats.resume()
	if len(stopped) == 0 {
		return nil
	}
	parts := map[string][]int32{}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	resumed := map[topicPartition]bool{}
	for tp, from := range stopped {
		resumed[tp] = true
		parts[tp.topic] = append(parts[tp.topic], tp.partition)
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: from}
		s.log.Info("partition resumed: reading it again from its committed offset", "topic", tp.topic, "partition", tp.partition, "offset", from)
	}
	s.cl.SetOffsets(offsets)
	s.cl.ResumeFetchPartitions(parts)
	return resumed
}

// Close shuts the source down within ctx: it closes the dead-letter
// producer and the producer (flushing what they hold, then closing the
// client, which leaves the group) and, for AtLeastOnce, the consumer. Call
// it once Run returned. The report is the producer's.
func (s *Source) Close(ctx context.Context) (pipeline.CloseReport, error) {
	return s.closeAll(ctx)
}

func (s *Source) closeAll(ctx context.Context) (pipeline.CloseReport, error) {
	var errs []error
	if s.dlq != nil {
		if _, err := s.dlq.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("dead-letter producer: %w", err))
		}
	}
	if s.sess == nil && s.cl != nil {
		closeBounded(ctx, s.cl.CloseAllowingRebalance)
	}
	rep, err := s.prod.Close(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// closeBounded runs closeFn (which leaves the group: a request to a broker
// that may be gone) until it returns or ctx ends.
func closeBounded(ctx context.Context, closeFn func()) {
	done := make(chan struct{})
	go func() {
		closeFn()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// commitError returns the error of an offset commit: the request's, or the
// first partition's.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil || resp == nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("topic %s partition %d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
