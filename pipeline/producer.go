package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/kafkaping"
	"github.com/kpipe/kpipe/internal/kgolog"
	"github.com/kpipe/kpipe/plugins"
)

// Outcome is how a record's trip through the pipeline ended.
type Outcome uint8

// The outcomes. Every record sent ends in exactly one of them.
const (
	// Delivered: the broker acknowledged the record (or, with AcksNone,
	// the client wrote it).
	Delivered Outcome = iota
	// Filtered: an interceptor dropped the record; it was not sent. This
	// is not an error.
	Filtered
	// Failed: the record was not delivered; Result.Err says why.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Filtered:
		return "filtered"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Result is the outcome of one record.
type Result struct {
	Outcome Outcome
	// Topic is the topic the record was (or would have been) written to.
	Topic string
	// Partition is the partition the record was written to, or -1 if it
	// was not delivered.
	Partition int32
	// Offset is the record's offset in its partition, or -1 if it was not
	// delivered or the producer uses AcksNone.
	Offset int64
	// Timestamp is the record's timestamp as produced (zero if it never
	// reached the client).
	Timestamp time.Time
	// Err is why the record failed (Outcome Failed), or, for Filtered,
	// which interceptor dropped it (errors.Is(Err, ErrFiltered)); nil
	// when delivered.
	Err error
	// ChainVersion is the version of the chain that handled the record
	// (see Producer.Swap): which plugins touched it. 0 for a record that
	// never entered a chain (nil, or sent after Close).
	ChainVersion uint64
}

var (
	// ErrClosed is the error of records sent after Close, or still
	// buffered when Close gave up waiting for them.
	ErrClosed = errors.New("producer closed")
	// ErrFiltered is wrapped by the Err of a filtered record's Result and
	// given to the OnAck of the interceptors before the one that dropped
	// it.
	ErrFiltered = errors.New("record filtered")
	// ErrRecordTooLarge is wrapped by the error of a record larger than
	// BatchMaxBytes (or the broker's limit); it fails alone.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrNoTopic is the error of a record with no topic when there is no
	// DefaultTopic.
	ErrNoTopic = errors.New("record has no topic and no default topic is set")
	// ErrUnknownPartition is wrapped by the error of a record that names
	// a partition its topic does not have.
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrSerialize is wrapped by the error of a record whose key or value
	// serializer failed.
	ErrSerialize = errors.New("serialization failed")
)

// Producer runs records through interceptors, serializers and a partitioner
// and produces them with a franz-go client. It is safe for concurrent use.
//
// Who owns what: the current chain of plugins is behind cur, replaced only
// by Swap under swapMu; a record's envelope belongs in turn to its Send
// goroutine, the stager, the client and the completion side (envelope.go);
// the stager owns the records waiting for a stage batch and its scratch
// space (stage.go); the acknowledgement queue owns the records waiting for
// their acknowledgements (acks.go); the counters are atomic.
type Producer struct {
	cl      *kgo.Client
	log     hclog.Logger
	topic   string
	txn     bool
	acks0   bool
	maxRec  int32
	promise func(*kgo.Record, error)

	// MaxBlock, MaxBufferedRecords and MaxBufferedBytes, for produce.
	maxBlock      time.Duration
	maxBufRecords int
	maxBufBytes   int
	ignoreKeys    bool // PartitionerIgnoreKeys
	// pass is what Passthrough returns for a chain that passes records
	// as they are.
	pass Passthrough

	// slots are the live chains, each at the index the admission word
	// names it by (see admission in chain.go); written under swapMu.
	slots   *[maxSlots]atomic.Pointer[chain]
	swapMu  sync.Mutex
	live    []*chain // chains whose plugins are not closed yet; guarded by swapMu
	closers sync.WaitGroup

	hookStats statsTable

	stage    *stager // nil: StageBatch turned off
	acks     ackQueue
	topicsMu sync.Mutex
	topics   map[string]*topicPartitioner // franz-go's, by topic; for the partition counts
	// life is the context of the plugin calls a stage batch makes for
	// records of several Sends; Close cancels it.
	life     context.Context
	stopLife context.CancelFunc

	closed       atomic.Bool
	idle         chan struct{} // signalled when nothing is in flight after Close
	closeMu      sync.Mutex
	closeStarted bool

	// unchained counts records sent that entered no chain (nil, or sent
	// after Close); they complete at once. Records sent = adm's count +
	// unchained; in flight = sent - (delivered + filtered + failed).
	unchained atomic.Uint64

	// What Send writes for every record (adm, bytesIn) is apart from what
	// the completion goroutine writes (bytesOut, the outcome counters), and
	// both are apart from what either only reads, so that the two
	// goroutines do not fight over cache lines: without the pads,
	// BenchmarkProduce/builtin took 1.1x the CPU per record (RATIONALE.md,
	// "Padding").
	_           cacheLinePad
	adm         atomic.Uint64 // the admission word: see chain.go
	bytesIn     atomic.Int64  // see room
	room        room
	_           cacheLinePad
	bytesOut    atomic.Int64 // see room
	delivered   atomic.Uint64
	filtered    atomic.Uint64
	failed      atomic.Uint64
	closeFailed atomic.Int64 // records failed because the client closed
	_           cacheLinePad

	// batches counts the batches the brokers acknowledged, from a
	// franz-go hook called once per batch.
	batches batchCounter
}

// cacheLinePad keeps the fields before it and after it off one cache line.
type cacheLinePad [64]byte

// New returns a Producer configured by opts. It creates the franz-go client
// and pings the seed brokers: it fails if none answers before ctx ends, or if
// the options are inconsistent (for example Idempotence(true) without
// AcksAll, or a failure policy a plugin's kind does not have).
func New(ctx context.Context, opts ...Option) (*Producer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if len(cfg.brokers) == 0 {
		return nil, errors.New("pipeline: no brokers (use Brokers)")
	}
	idem, err := cfg.idempotent()
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if cfg.batchMaxBytes <= 0 || cfg.maxRequestSize <= 0 || cfg.maxBufRecords <= 0 || cfg.maxBufBytes < 0 {
		return nil, errors.New("pipeline: BatchMaxBytes, MaxRequestSize and MaxBufferedRecords must be positive, MaxBufferedBytes not negative")
	}
	if cfg.batchMaxBytes > cfg.maxRequestSize {
		return nil, fmt.Errorf("pipeline: BatchMaxBytes %d is larger than MaxRequestSize %d", cfg.batchMaxBytes, cfg.maxRequestSize)
	}
	if cfg.maxBufBytes > 0 && cfg.maxBufBytes < int(cfg.batchMaxBytes) {
		return nil, fmt.Errorf("pipeline: MaxBufferedBytes (buffer.memory) %d is smaller than BatchMaxBytes %d, the largest record", cfg.maxBufBytes, cfg.batchMaxBytes)
	}
	if err := CheckMaxInFlight(cfg.maxInFlight, idem); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if cfg.metadataMaxAge < 10*time.Millisecond {
		return nil, fmt.Errorf("pipeline: MetadataMaxAge (metadata.max.age.ms) %v: must be at least 10ms", cfg.metadataMaxAge)
	}
	if cfg.maxBlock < 0 {
		return nil, fmt.Errorf("pipeline: MaxBlock (max.block.ms) %v: must not be negative", cfg.maxBlock)
	}
	log := cfg.logger
	if log == nil {
		log = hclog.Default().Named("kpipe")
	}

	p := &Producer{
		log:    log,
		topic:  cfg.defaultTopic,
		txn:    cfg.txnID != "",
		acks0:  cfg.acks == AcksNone,
		maxRec: cfg.batchMaxBytes,
		idle:   make(chan struct{}, 1),
		topics: map[string]*topicPartitioner{},

		maxBlock:      cfg.maxBlock,
		maxBufRecords: cfg.maxBufRecords,
		maxBufBytes:   cfg.maxBufBytes,
		ignoreKeys:    cfg.ignoreKeys,
	}
	p.life, p.stopLife = context.WithCancel(context.Background())
	p.promise = p.onPromise
	stageLinger := cfg.stageLinger
	if stageLinger < 0 {
		stageLinger = min(time.Millisecond, cfg.linger)
	}
	if cfg.stageMax > 1 && stageLinger > 0 {
		p.stage = newStager(p, cfg.stageMax, stageLinger)
		p.acks.timer = time.AfterFunc(time.Hour, p.flushAcks)
		p.acks.timer.Stop()
	}
	ch, err := p.newChain(cfg.chain, 1)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.initChains(ch)

	kopts, err := cfg.kgoOptions(idem)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	kopts = append(kopts,
		kgo.RecordPartitioner(kgoPartitioner{p}),
		kgo.WithLogger(kgolog.New(log.Named("kgo"))),
		kgo.WithHooks(&p.batches))
	kopts = append(kopts, cfg.kgoOpts...)

	newClient := kgo.NewClient
	if cfg.newClient != nil {
		newClient = cfg.newClient
	}
	cl, err := newClient(kopts...)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("pipeline: create client: %w", err)
	}
	if err := kafkaping.Ping(ctx, cl); err != nil {
		cl.Close()
		p.stop()
		return nil, fmt.Errorf("pipeline: no seed broker of %s answered: %w", strings.Join(cfg.brokers, ","), err)
	}
	p.cl = cl
	p.pass = Passthrough{Client: cl, Acks: cfg.acks, BatchMaxBytes: cfg.batchMaxBytes, RequestTimeout: cfg.requestTimeout}
	if len(cfg.codecs) > 0 {
		p.pass.Codec = cfg.codecs[0]
	}
	return p, nil
}

// DefaultTopic returns the topic of records sent without one (the
// DefaultTopic option), or "" if there is none. It does not change while
// the producer lives: Swap replaces only plugins.
func (p *Producer) DefaultTopic() string { return p.topic }

// SetPartitioner replaces the partitioner while records flow, keeping the
// other plugins: it is Swap with the current chain's interceptors and
// serializers (and their policies) and the partitioner pp under name. A nil
// pp restores the built-in "default" partitioner.
func (p *Producer) SetPartitioner(name string, pp plugins.Partitioner, opts ...PluginOption) error {
	p.swapMu.Lock()
	defer p.swapMu.Unlock()
	cc := p.current().cfg
	np := newNamedPlugin(name, pp, opts)
	if pp == nil {
		np.plugin = nil
	}
	cc.part = &np
	_, err := p.swapLocked(cc)
	return err
}

// MaxBufferedBytes returns the most bytes of records the producer's client
// buffers (the MaxBufferedBytes option, 32MiB by default), 0 for no limit.
func (p *Producer) MaxBufferedBytes() int { return p.maxBufBytes }

// Send runs r through the pipeline and produces it asynchronously; cb, if
// not nil, is called exactly once with the record's outcome, and with r
// itself (as the plugins left it), so that one callback can serve many
// records and tell them apart by pointer. cb runs on the
// producer's completion goroutine, or, for records that fail or are
// filtered before they reach the client, on the goroutine that ran the
// stages: the caller's, or with stage batching (StageBatch) the one that
// ran the batch, which may be another Send's or a timer's. The callback of a
// record an AckBatcher saw runs after its OnAckBatch, up to the stage
// linger later, on the goroutine that delivered the acknowledgements (the
// completion goroutine, a timer's, or Flush's, SendSync's or Close's
// caller). Every OnAck of a record comes before its callback. cb must be quick
// and must not call Flush, Close or the transaction methods; like a
// franz-go promise, it must not call Send when the client's buffer may be
// full (start a goroutine for that).
//
// Without stage batching, Send returns once the record went through the
// interceptors, serializers and partitioner and is in the client's buffer
// (or is complete). With stage batching, it usually returns as soon as the
// record is queued for the stages; the Send that fills a batch runs it, and
// returns once the batch is in the client's buffer. Records of one
// goroutine keep their order either way.
//
// The producer owns r until cb is called: interceptors change it in place,
// and cb receives it as it was produced (serialized key and value, final
// topic, partition and timestamp). r must not be reused before then.
//
// ctx is the context of the record: the client fails it if ctx ends while
// it is buffered, and single-record plugin calls get it. Batch plugin calls
// serve records of many Sends and get a context of the producer's instead,
// which Close cancels.
//
// Send blocks while the client's buffer is full (MaxBufferedRecords,
// MaxBufferedBytes), for at most MaxBlock: a record that got no room by then
// fails with ErrBufferFull, and if ctx ends first with ctx's error.
// With stage batching, the Send that runs a batch is the one that blocks.
func (p *Producer) Send(ctx context.Context, r *plugins.Record, cb func(*plugins.Record, Result)) {
	e := p.admit(ctx, r, cb, new(envelope))
	if e == nil {
		return
	}
	if b := p.stage; b != nil {
		if e.ch.batching {
			p.enqueue(e)
			return
		}
		if b.busy.Load() {
			// Batched records sent before (the chain was swapped
			// since) go first.
			p.runPending(false)
		}
	}
	one := [1]*envelope{e}
	p.produce(false, p.run(e.ch, one[:], nil)...)
}

// SendSync sends r and waits for its outcome. It does not wait out Linger:
// the batch holding r is sent at once. Records queued for a stage batch
// (see StageBatch) go to the client first, to keep the order of the
// caller's records; r itself goes through the stages alone, with
// single-record plugin calls.
func (p *Producer) SendSync(ctx context.Context, r *plugins.Record) Result {
	if b := p.stage; b != nil && b.busy.Load() {
		p.runPending(false)
	}
	var res Result
	done := false
	e := p.admit(ctx, r, func(_ *plugins.Record, rr Result) { res, done = rr, true }, new(envelope))
	if e == nil {
		return res
	}
	one := [1]*envelope{e}
	if len(p.run(e.ch, one[:], nil)) == 0 {
		if !done {
			panic("pipeline: record neither run nor completed")
		}
		return res
	}
	if !p.finish(e, p.produceSync(e), false) {
		p.flushAcks()
	}
	return res
}

// admit counts a record sent and gives it e, a zero envelope, on the
// current chain. It returns nil if the record is already complete (nil, or
// sent after Close).
func (p *Producer) admit(ctx context.Context, r *plugins.Record, cb func(*plugins.Record, Result), e *envelope) *envelope {
	if ctx == nil {
		ctx = context.Background()
	}
	if r == nil {
		p.unchained.Add(1)
		p.failed.Add(1)
		if cb != nil {
			cb(nil, Result{Outcome: Failed, Partition: -1, Offset: -1, Err: errors.New("pipeline: nil record")})
		}
		return nil
	}
	// Counted (enter) before closed is read: Close, which sets closed
	// and then waits until nothing is in flight, either waits for this
	// record or makes it fail here.
	ch := p.enter()
	e.open(ctx, r, cb)
	if p.closed.Load() {
		// It runs on no chain (no chain version), and leaves ch
		// before it completes: Close stops waiting for closers once
		// the last record completed.
		p.leave(ch)
		p.complete(e, Failed, ErrClosed)
		return nil
	}
	e.ch = ch
	return e
}

// Flush waits until every record sent before the call has its outcome, or
// ctx ends. It runs the records queued for a stage batch at once, and
// delivers the acknowledgements waiting for interceptors that take them in
// batches (plugins.AckBatcher): when Flush returns nil, every OnAck of
// those records was delivered and every callback ran.
//
// Records sent while Flush runs are waited for too (franz-go's Flush waits
// until the client buffers nothing): under a steady stream of concurrent
// sends faster than the brokers take them, Flush returns only when ctx
// ends.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.runStageCtx(ctx); err != nil {
		return fmt.Errorf("pipeline: flush: %w", err)
	}
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("pipeline: flush: %w", err)
	}
	if err := p.settle(ctx); err != nil {
		return fmt.Errorf("pipeline: flush: %w", err)
	}
	p.flushAcks()
	return nil
}

// runStage hands the records queued for a stage batch to the client.
func (p *Producer) runStage() {
	if p.stage != nil {
		p.runPending(false)
	}
}

// runStageCtx is runStage that stops waiting when ctx ends, and then
// returns ctx's error. A run of the stages holds procMu until its records
// are in the client, which may wait for room in the client's buffer for as
// long as the brokers do not answer; the run goes on in the background.
func (p *Producer) runStageCtx(ctx context.Context) error {
	if p.stage == nil {
		return nil
	}
	if ctx.Done() == nil {
		p.runPending(false)
		return nil
	}
	done := make(chan struct{})
	go func() {
		p.runPending(false)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the stage timers and cancels the producer's context.
func (p *Producer) stop() {
	if b := p.stage; b != nil {
		b.timer.Stop()
		p.acks.timer.Stop()
	}
	p.stopLife()
}

// CloseReport says what Close left behind.
type CloseReport struct {
	// Undelivered counts records that failed with ErrClosed because
	// Close did not wait for them (the flush ran out of time), plus
	// records sent during or after Close.
	Undelivered int64
	// Delivered, Filtered and Failed are the producer's final totals.
	Delivered, Filtered, Failed uint64
}

// Close flushes the records still buffered until ctx ends, then closes the
// client: records still buffered fail with ErrClosed. It delivers the
// acknowledgements waiting for AckBatchers, waits for every callback to
// run, closes the plugins of every chain that implement plugins.Closer
// (the Producer owns the plugins it is given), and returns a report; the
// error is non-nil if the flush did not finish (it wraps ctx's error).
// Records sent after Close fail with ErrClosed; records queued for a stage
// batch when Close starts are flushed like buffered ones. If ctx ends while
// a stage batch is in a plugin call, Close cancels the context of batched
// plugin calls, and the records of a call it stops fail with ErrClosed,
// whatever the plugin's failure policy. Calling Close
// twice returns ErrClosed.
func (p *Producer) Close(ctx context.Context) (CloseReport, error) {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closeStarted {
		return CloseReport{}, fmt.Errorf("pipeline: %w", ErrClosed)
	}
	p.closeStarted = true
	p.closed.Store(true)
	defer p.stop()
	serr := p.runStageCtx(ctx)
	if serr != nil {
		// ctx ended while a stage batch ran. If it is in a plugin call
		// that does not end by itself (a plugin without a call
		// timeout), only the end of the producer's context, which the
		// batched calls use, ends it; the runs below wait for it.
		p.stop()
	}
	ferr := p.cl.Flush(ctx)
	if ferr == nil {
		ferr = serr
	}
	p.cl.Close()
	// Sends that raced with Close may have queued records since, and a
	// run blocked in the client (serr) ends now that it is closed: the
	// closed client fails their records.
	p.runStage()
	// Wait for the callbacks of the records the client just failed, and
	// of Sends racing with Close.
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for p.inFlight() > 0 {
		select {
		case <-p.idle:
		case <-time.After(10 * time.Millisecond):
			p.runStage()
			p.flushAcks()
		case <-timeout.C:
			p.log.Error("close: callbacks still running after 30s", "in_flight", p.inFlight())
			return p.report(), errors.New("pipeline: close: callbacks did not finish")
		}
	}
	p.flushAcks()
	if err := p.closeLive(ctx); err != nil {
		p.log.Warn("close: closing plugins", "error", err)
	}
	rep := p.report()
	if ferr != nil {
		return rep, fmt.Errorf("pipeline: close: flush did not finish, %d records not delivered: %w", rep.Undelivered, ferr)
	}
	return rep, nil
}

// inFlight returns how many records sent have no outcome yet. Reading the
// completion counters first keeps it from going negative while records
// complete.
func (p *Producer) inFlight() int64 {
	done := p.delivered.Load() + p.filtered.Load() + p.failed.Load()
	return int64(p.adm.Load()&countMask + p.unchained.Load() - done)
}

func (p *Producer) report() CloseReport {
	return CloseReport{
		Undelivered: p.closeFailed.Load(),
		Delivered:   p.delivered.Load(),
		Filtered:    p.filtered.Load(),
		Failed:      p.failed.Load(),
	}
}

// BeginTransaction starts a transaction; the producer must have a
// TransactionalID.
func (p *Producer) BeginTransaction() error {
	if !p.txn {
		return errors.New("pipeline: begin transaction: producer has no transactional id")
	}
	// Records queued before belong to no transaction, and fail as such.
	p.runStage()
	if err := p.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("pipeline: begin transaction: %w", err)
	}
	return nil
}

// CommitTransaction flushes the records of the current transaction
// (including those queued for a stage batch) and commits it. If the flush fails (ctx ended) the transaction stays open and
// the caller should call AbortTransaction. If the commit fails, the records
// are not visible to read_committed consumers.
func (p *Producer) CommitTransaction(ctx context.Context) error {
	if err := p.runStageCtx(ctx); err != nil {
		return fmt.Errorf("pipeline: commit transaction: flush: %w", err)
	}
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("pipeline: commit transaction: flush: %w", err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("pipeline: commit transaction: %w", err)
	}
	return nil
}

// AbortTransaction fails the records still buffered (their callbacks get a
// Failed outcome) and aborts the transaction: records of the transaction
// already written stay invisible to read_committed consumers. Records
// queued for a stage batch are first run through the stages and handed to
// the client, so that they fail with the buffered ones (interceptors see
// them, and get their OnAck).
func (p *Producer) AbortTransaction(ctx context.Context) error {
	if err := p.runStageCtx(ctx); err != nil {
		return fmt.Errorf("pipeline: abort transaction: %w", err)
	}
	if err := p.cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("pipeline: abort transaction: %w", err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("pipeline: abort transaction: %w", err)
	}
	return nil
}
