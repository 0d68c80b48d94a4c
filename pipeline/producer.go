package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

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
	// ErrSerialize is wrapped by the error of a record whose key or value
	// serializer failed.
	ErrSerialize = errors.New("serialization failed")
)

// Producer runs records through interceptors, serializers and a partitioner
// and produces them with a franz-go client. It is safe for concurrent use.
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

	ics    []*interceptorSlot
	keySer *serializerSlot // nil: keys are sent as they are
	valSer *serializerSlot

	part      atomic.Pointer[partitionerSlot]
	partMu    sync.Mutex
	partNames []string              // every partitioner name used, in order, for Stats
	partStats map[string]*hookStats // by name, shared by the partitioners of one name
	newBreak  func() breaker

	stage    *stager // nil: StageBatch turned off
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

	// What Send writes for every record (sent) is apart from what the
	// completion goroutine writes (envs, the outcome counters), and both
	// are apart from what either only reads, so that the two goroutines
	// do not fight over cache lines. Records in flight = sent -
	// (delivered + filtered + failed).
	_           cacheLinePad
	sent        atomic.Uint64
	bytesIn     atomic.Int64 // see room
	room        room
	_           cacheLinePad
	envs        envPool
	bytesOut    atomic.Int64 // see room
	delivered   atomic.Uint64
	filtered    atomic.Uint64
	failed      atomic.Uint64
	closeFailed atomic.Int64 // records failed because the client closed
	// ackView is the promise's scratch copy of a delivered record for
	// the interceptors that take acknowledgements in batches (see acks).
	ackView plugins.Record
	_       cacheLinePad
}

// cacheLinePad keeps the fields before it and after it off one cache line.
type cacheLinePad [64]byte

type interceptorSlot struct {
	name   string
	ic     plugins.Interceptor
	acks   bool                     // OnAck is called: ic does not say it wants none (plugins.AckObserver)
	batch  plugins.BatchInterceptor // ic, if it takes batches and StageBatch is on
	ackB   plugins.AckBatcher       // ic, if it wants acks in batches and StageBatch is on
	sendBr breaker                  // a failing OnSend does not bypass a working OnAck
	ackBr  breaker
	onSend hookStats
	onAck  hookStats
}

type serializerSlot struct {
	name   string
	s      plugins.Serializer
	target plugins.Target
	hook   Hook
	stats  hookStats
}

type partitionerSlot struct {
	name     string
	p        plugins.Partitioner
	perTopic plugins.PerTopicPartitioner // nil if p keeps no per-topic state
	explicit bool                        // p requires explicit partitions
	isDef    bool                        // p is the built-in default: use the fallback directly
	bp       plugins.BatchPartitioner    // p, if it takes batches and keeps no per-topic state; nil without StageBatch
	br       breaker
	stats    *hookStats
}

// New returns a Producer configured by opts. It creates the franz-go client
// and pings the seed brokers: it fails if none answers before ctx ends, or if
// the options are inconsistent (for example Idempotence(true) without
// AcksAll).
func New(ctx context.Context, opts ...Option) (*Producer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if len(cfg.brokers) == 0 {
		return nil, errors.New("pipeline: no brokers (use Brokers)")
	}
	if len(cfg.interceptors) > 64 {
		return nil, fmt.Errorf("pipeline: %d interceptors, at most 64 are supported", len(cfg.interceptors))
	}
	switch cfg.acks {
	case AcksNone, AcksLeader, AcksAll:
	default:
		return nil, fmt.Errorf("pipeline: invalid acks level %d", int8(cfg.acks))
	}
	idem := cfg.acks == AcksAll
	if cfg.idempotence != nil {
		if *cfg.idempotence && cfg.acks != AcksAll {
			return nil, fmt.Errorf("pipeline: idempotence (enable.idempotence=true) requires acks=all, got acks=%s", cfg.acks)
		}
		idem = *cfg.idempotence
	}
	if cfg.txnID != "" && !idem {
		return nil, fmt.Errorf("pipeline: transactional.id %q requires idempotence and acks=all", cfg.txnID)
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
	if cfg.maxInFlight < 1 {
		return nil, fmt.Errorf("pipeline: MaxInFlight (max.in.flight.requests.per.connection) %d: must be at least 1", cfg.maxInFlight)
	}
	if idem && cfg.maxInFlight != 5 {
		return nil, fmt.Errorf("pipeline: MaxInFlight (max.in.flight.requests.per.connection) %d with idempotence: franz-go keeps 5 requests in flight per broker when idempotent (order is kept across retries); turn idempotence off to use %d", cfg.maxInFlight, cfg.maxInFlight)
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
	threshold, cooldown := int32(min(cfg.cbThreshold, 1<<30)), int64(cfg.cbCooldown)
	p.newBreak = func() breaker { return breaker{threshold: threshold, cooldown: cooldown} }
	stageLinger := cfg.stageLinger
	if stageLinger < 0 {
		stageLinger = min(time.Millisecond, cfg.linger)
	}
	batching := cfg.stageMax > 1 && stageLinger > 0
	batchICs := false
	for _, ic := range cfg.interceptors {
		if ic.ic == nil {
			p.stopLife()
			return nil, fmt.Errorf("pipeline: interceptor %q is nil", ic.name)
		}
		acks := true
		if ao, ok := ic.ic.(plugins.AckObserver); ok {
			acks = ao.WantsAcks()
		}
		s := &interceptorSlot{name: ic.name, ic: ic.ic, acks: acks, sendBr: p.newBreak(), ackBr: p.newBreak()}
		if batching {
			s.batch, _ = ic.ic.(plugins.BatchInterceptor)
			if acks {
				s.ackB, _ = ic.ic.(plugins.AckBatcher)
			}
			batchICs = batchICs || s.batch != nil || s.ackB != nil
		}
		p.ics = append(p.ics, s)
	}
	if batching {
		p.stage = newStager(p, cfg.stageMax, stageLinger, batchICs)
	}
	// The built-in "bytes" serializer is the identity: it is not called,
	// and so has no Stats entry.
	if cfg.keySer != nil && !plugins.IsIdentity(cfg.keySer) {
		p.keySer = &serializerSlot{name: cfg.keySerName, s: cfg.keySer, target: plugins.TargetKey, hook: HookSerializeKey}
	}
	if cfg.valSer != nil && !plugins.IsIdentity(cfg.valSer) {
		p.valSer = &serializerSlot{name: cfg.valSerName, s: cfg.valSer, target: plugins.TargetValue, hook: HookSerializeValue}
	}
	p.SetPartitioner(cfg.partName, cfg.part)

	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.brokers...),
		kgo.ProducerLinger(cfg.linger),
		kgo.ProducerBatchMaxBytes(cfg.batchMaxBytes),
		kgo.BrokerMaxWriteBytes(cfg.maxRequestSize),
		kgo.MaxBufferedRecords(cfg.maxBufRecords),
		kgo.ProduceRequestTimeout(cfg.requestTimeout),
		kgo.RecordDeliveryTimeout(cfg.deliveryTimeout),
		kgo.RecordPartitioner(kgoPartitioner{p}),
		kgo.MetadataMaxAge(cfg.metadataMaxAge),
		kgo.MetadataMinAge(min(5*time.Second, cfg.metadataMaxAge)),
		kgo.WithLogger(kgolog.New(log.Named("kgo"))),
	}
	if cfg.retries >= 0 {
		kopts = append(kopts, kgo.RecordRetries(cfg.retries))
	}
	if cfg.maxBufBytes > 0 {
		kopts = append(kopts, kgo.MaxBufferedBytes(cfg.maxBufBytes))
	}
	if cfg.clientID != "" {
		kopts = append(kopts, kgo.ClientID(cfg.clientID))
	}
	switch cfg.acks {
	case AcksNone:
		kopts = append(kopts, kgo.RequiredAcks(kgo.NoAck()))
	case AcksLeader:
		kopts = append(kopts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		kopts = append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if !idem {
		kopts = append(kopts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(cfg.maxInFlight))
	}
	if cfg.txnID != "" {
		kopts = append(kopts, kgo.TransactionalID(cfg.txnID))
	}
	if len(cfg.codecs) > 0 {
		codecs := make([]kgo.CompressionCodec, len(cfg.codecs))
		for i, c := range cfg.codecs {
			kc, err := c.kgo()
			if err != nil {
				p.stop()
				return nil, fmt.Errorf("pipeline: %w", err)
			}
			codecs[i] = kc
		}
		kopts = append(kopts, kgo.ProducerBatchCompression(codecs...))
	}
	kopts = append(kopts, cfg.kgoOpts...)

	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("pipeline: create client: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		p.stop()
		return nil, fmt.Errorf("pipeline: no seed broker of %s answered: %w", strings.Join(cfg.brokers, ","), err)
	}
	p.cl = cl
	return p, nil
}

// SetPartitioner replaces the partitioner while records flow: records
// partitioned from now on use p; none is lost or partitioned twice. A nil p
// restores the built-in "default" partitioner. Stats has one entry per
// partitioner name: partitioners set under a name used before add to its
// counts.
func (p *Producer) SetPartitioner(name string, pp plugins.Partitioner) {
	if pp == nil {
		pp, _ = plugins.NewPartitioner(plugins.PartitionerDefault, nil)
		if name == "" {
			name = plugins.PartitionerDefault
		}
	}
	s := &partitionerSlot{name: name, p: pp, br: p.newBreak(), isDef: plugins.IsDefault(pp)}
	s.perTopic, _ = pp.(plugins.PerTopicPartitioner)
	if ep, ok := pp.(plugins.ExplicitPartitioner); ok {
		s.explicit = ep.RequiresExplicitPartition()
	}
	if p.stage != nil && s.perTopic == nil && !s.explicit && !s.isDef {
		s.bp, _ = pp.(plugins.BatchPartitioner)
	}
	p.partMu.Lock()
	if p.partStats == nil {
		p.partStats = map[string]*hookStats{}
	}
	if s.stats = p.partStats[name]; s.stats == nil {
		s.stats = new(hookStats)
		p.partStats[name] = s.stats
		p.partNames = append(p.partNames, name)
	}
	p.partMu.Unlock()
	p.part.Store(s)
}

// Send runs r through the pipeline and produces it asynchronously; cb, if
// not nil, is called exactly once with the record's outcome. cb runs on the
// producer's completion goroutine, or, for records that fail or are
// filtered before they reach the client, on the goroutine that ran the
// stages: the caller's, or with stage batching (StageBatch) the one that
// ran the batch, which may be another Send's or a timer's. cb must be quick
// and must not call Flush, Close or the transaction methods; like a
// franz-go promise, it must not call Send when the client's buffer may be
// full (start a goroutine for that).
//
// Without stage batching, Send returns once the record went through the
// interceptors, serializers and partitioner and is in the client's buffer
// (or is complete). With stage batching, it usually returns as soon as the
// record is queued for the stages; the Send that fills a batch runs it, and
// returns once the batch is in the client's buffer. Records of one
// goroutine keep their order either way. The OnAck of an interceptor that
// takes acknowledgements in batches (plugins.AckBatcher) may reach it after
// cb has run, by up to the stage linger; Flush and Close deliver them.
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
	if b := p.stage; b != nil {
		if b.active(p) {
			p.enqueue(ctx, r, cb)
			return
		}
		if b.busy.Load() {
			// Batched records sent before (the partitioner
			// taking batches was replaced since) go first.
			p.runPending(false)
		}
	}
	e := p.prepare(ctx, r, cb)
	if e != nil {
		p.produce(e)
	}
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
	e := p.prepare(ctx, r, func(_ *plugins.Record, rr Result) { res, done = rr, true })
	if e == nil {
		if !done {
			panic("pipeline: record neither prepared nor completed")
		}
		return res
	}
	p.finish(e, p.produceSync(e), nil)
	return res
}

// prepare runs the interceptors and serializers. It returns the envelope to
// produce, or nil if the record is already complete (filtered or failed).
func (p *Producer) prepare(ctx context.Context, r *plugins.Record, cb func(*plugins.Record, Result)) *envelope {
	if ctx == nil {
		ctx = context.Background()
	}
	if r == nil {
		p.sent.Add(1)
		p.failed.Add(1)
		if cb != nil {
			cb(nil, Result{Outcome: Failed, Partition: -1, Offset: -1, Err: errors.New("pipeline: nil record")})
		}
		return nil
	}
	p.sent.Add(1)
	e := getEnvelope()
	e.kr.Context, e.rec, e.cb = ctx, r, cb
	if p.closed.Load() {
		p.complete(e, Failed, ErrClosed)
		return nil
	}
	if r.Topic == "" {
		if p.topic == "" {
			p.complete(e, Failed, ErrNoTopic)
			return nil
		}
		r.Topic = p.topic
	}

	for i, s := range p.ics {
		if err := p.onSend(i, s, e); err != nil {
			p.complete(e, Filtered, err)
			return nil
		}
	}
	if err := p.seal(e, p.part.Load()); err != nil {
		p.complete(e, Failed, err)
		return nil
	}
	return e
}

// onSend runs OnSend of interceptor i, s, on e's record with the record's
// context. It returns the Filtered error if the interceptor dropped the
// record, which the caller completes.
func (p *Producer) onSend(i int, s *interceptorSlot, e *envelope) error {
	if !s.sendBr.allow() {
		s.onSend.bypasses.Add(1)
		return nil
	}
	if s.acks {
		e.seen |= 1 << i // to be given OnAck
	}
	r := e.rec
	saved := *r
	v, err := s.callOnSend(e.kr.Context, r)
	if err != nil {
		*r = saved
		p.pluginFailed(s.name, HookOnSend, &s.onSend, &s.sendBr, err)
		return nil
	}
	s.sendBr.success()
	if v == plugins.Drop {
		s.onSend.drops.Add(1)
		e.seen &^= 1 << i
		return fmt.Errorf("%w by interceptor %q", ErrFiltered, s.name)
	}
	return nil
}

// seal runs the serializers on e's record, which the interceptors are done
// with, and fills in the kgo.Record to produce. It returns why the record
// fails, if it does, which the caller completes. ps is the current
// partitioner.
func (p *Producer) seal(e *envelope, ps *partitionerSlot) error {
	r := e.rec
	if r.Topic == "" {
		return ErrNoTopic
	}
	key, val := r.Key, r.Value
	if p.keySer != nil || p.valSer != nil {
		var err error
		if key != nil && p.keySer != nil {
			if key, err = p.keySer.serialize(e.kr.Context, r); err != nil {
				return err
			}
		}
		if val != nil && p.valSer != nil {
			if val, err = p.valSer.serialize(e.kr.Context, r); err != nil {
				return err
			}
		}
		// Only now: both serializers see the record as the
		// interceptors left it.
		r.Key, r.Value = key, val
	}

	e.origPart = r.Partition
	if r.HasPartition {
		e.explicit = true
	} else if ps.explicit {
		return fmt.Errorf("partitioner %q: %w", ps.name, plugins.ErrNoPartition)
	}
	e.kr.Topic = r.Topic
	e.kr.Key = key
	e.kr.Value = val
	e.kr.Headers = r.Headers
	e.kr.Timestamp = r.Timestamp
	e.kr.Partition = r.Partition
	return nil
}

func (s *interceptorSlot) callOnSend(ctx context.Context, r *plugins.Record) (v plugins.Verdict, err error) {
	t := s.onSend.start()
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		s.onSend.end(t)
	}()
	v, err = s.ic.OnSend(ctx, r)
	if err == nil && v != plugins.Continue && v != plugins.Drop {
		err = fmt.Errorf("invalid verdict %d", v)
	}
	return v, err
}

func (s *interceptorSlot) callOnAck(ctx context.Context, r *plugins.Record, ack plugins.Ack) (err error) {
	t := s.onAck.start()
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		s.onAck.end(t)
	}()
	return s.ic.OnAck(ctx, r, ack)
}

func (s *serializerSlot) serialize(ctx context.Context, r *plugins.Record) (b []byte, err error) {
	t := s.stats.start()
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		s.stats.end(t)
		if err != nil {
			s.stats.failures.Add(1)
			err = fmt.Errorf("%w: %s serializer %q: %w", ErrSerialize, s.target, s.name, err)
		}
	}()
	return s.s.Serialize(ctx, s.target, r)
}

// pluginFailed counts and logs a failed interceptor or partitioner call and
// feeds its circuit breaker.
func (p *Producer) pluginFailed(name string, hook Hook, st *hookStats, br *breaker, err error) {
	p.pluginFailedN(name, hook, st, br, err, 1)
}

// pluginFailedN counts the failed records of one plugin call (a batch call
// serves many) and feeds the circuit breaker one failure: the breaker counts
// calls, so that one fault of a batch call, which fails each of its records,
// is one failure, as it is when the plugin is called per record. err is the
// first failure, the one logged.
func (p *Producer) pluginFailedN(name string, hook Hook, st *hookStats, br *breaker, err error, records int) {
	p.countFailures(name, hook, st, err, records)
	if d := br.failure(); d > 0 {
		p.log.Error("plugin keeps failing; bypassing it", "plugin", name, "hook", string(hook), "error", err, "cooldown", d)
	}
}

// countFailures adds records failures of a plugin at hook and logs err,
// at most once per second per hook.
func (p *Producer) countFailures(name string, hook Hook, st *hookStats, err error, records int) {
	n := st.failures.Add(uint64(records))
	if st.shouldLog() {
		p.log.Warn("plugin failed; the record goes on without it", "plugin", name, "hook", string(hook), "error", err, "failures", n)
	}
}

// onPromise is the promise of every record sent with Send. franz-go calls
// promises one at a time, which is what envPool.put requires.
func (p *Producer) onPromise(kr *kgo.Record, err error) {
	p.bytesOut.Add(recordBytes(kr))
	e := envelopeOf(kr)
	p.finish(e, err, &p.ackView)
	p.envs.put(e)
}

// finish completes a record that went to the client.
//
// view, if not nil, is scratch space finish may use for a copy of the record
// as produced, read from e.kr, for the interceptors that take
// acknowledgements in batches (see acks); only the promise may pass it.
func (p *Producer) finish(e *envelope, err error, view *plugins.Record) {
	kr := &e.kr
	r := e.rec
	if err != nil {
		// Only a callback or an OnAck can look at the record now;
		// without them, leave its memory, out of the cache by now,
		// alone. With them: prepare left r's topic, key, value and
		// headers as produced, and the client does not change them;
		// the partitioner may have stored a partition in it, which
		// the record did not get.
		if e.cb != nil || e.seen != 0 {
			r.Timestamp = kr.Timestamp
			r.Partition, r.HasPartition = e.origPart, e.explicit
		}
		p.complete(e, Failed, p.explain(e, err))
		return
	}
	// Delivered: the partitioner stored the timestamp and partition in
	// r for the callback and OnAck (topicPartitioner.Partition), unless
	// KgoOptions replaced it.
	if !e.stored && (e.cb != nil || e.seen != 0) {
		r.Timestamp, r.Partition, r.HasPartition = kr.Timestamp, kr.Partition, true
	}
	res := Result{Outcome: Delivered, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp}
	if p.acks0 {
		res.Offset = -1
	}
	p.acks(e, plugins.Ack{Offset: res.Offset}, view)
	p.done(e, res)
}

// explain wraps a client error with what it means for the record.
func (p *Producer) explain(e *envelope, err error) error {
	switch {
	case errors.Is(err, kerr.MessageTooLarge):
		size := len(e.kr.Key) + len(e.kr.Value)
		for _, h := range e.kr.Headers {
			size += len(h.Key) + len(h.Value)
		}
		return fmt.Errorf("%w: key, value and headers take %d bytes, the limit is %d (BatchMaxBytes) or the broker's max.message.bytes: %w", ErrRecordTooLarge, size, p.maxRec, err)
	case errors.Is(err, kgo.ErrClientClosed):
		p.closeFailed.Add(1)
		return fmt.Errorf("%w before the record was delivered: %w", ErrClosed, err)
	case e.explicit && strings.Contains(err.Error(), "invalid record partitioning choice"):
		return fmt.Errorf("record names partition %d, which topic %q does not have: %w", e.kr.Partition, e.kr.Topic, err)
	}
	return err
}

// complete ends a record with a failure or filter outcome.
func (p *Producer) complete(e *envelope, o Outcome, err error) {
	res := Result{Outcome: o, Topic: e.rec.Topic, Partition: -1, Offset: -1, Timestamp: e.kr.Timestamp, Err: err}
	p.acks(e, plugins.Ack{Offset: -1, Err: err}, nil)
	p.done(e, res)
}

// done reports res to the callback and counts the outcome.
func (p *Producer) done(e *envelope, res Result) {
	if e.cb != nil {
		e.cb(e.rec, res)
	}
	// Counted after the callback: Close waits until every record is
	// counted.
	switch res.Outcome {
	case Delivered:
		p.delivered.Add(1)
	case Filtered:
		p.filtered.Add(1)
	default:
		p.failed.Add(1)
	}
	if p.closed.Load() && p.inFlight() == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// acks calls OnAck of every interceptor that saw the record and wants
// acknowledgements.
//
// An AckBatcher copies what it is given, so for a delivered record it may be
// given view, a copy of the record as produced read from e.kr, which the
// client has just used on this core, instead of the caller's record: that is
// the same topic, key, value, headers, timestamp and partition, but its
// memory was last written on the Send goroutine's core, and reading it here
// was a cache miss per record (about 60ns of the ~130ns QueueAck took in
// BenchmarkProduce/wasm). view is nil when the caller's record must be used.
func (p *Producer) acks(e *envelope, ack plugins.Ack, view *plugins.Record) {
	filled := false
	for seen := e.seen; seen != 0; seen &= seen - 1 {
		i := bits.TrailingZeros64(seen)
		s := p.ics[i]
		if !s.ackBr.allow() {
			s.onAck.bypasses.Add(1)
			continue
		}
		if s.ackB != nil {
			r := e.rec
			if view != nil {
				if !filled {
					kr := &e.kr
					*view = recordOf(kr)
					view.Partition, view.HasPartition = kr.Partition, true
					filled = true
				}
				r = view
			}
			p.queueAck(s, r, ack)
			continue
		}
		if err := s.callOnAck(context.Background(), e.rec, ack); err != nil {
			p.pluginFailed(s.name, HookOnAck, &s.onAck, &s.ackBr, err)
		} else {
			s.ackBr.success()
		}
	}
}

// Flush waits until every record sent before the call has its outcome, or
// ctx ends. It runs the records queued for a stage batch at once, and once
// the records are complete it delivers the acknowledgements queued in
// interceptors that take them in batches (plugins.AckBatcher): when Flush
// returns nil, every OnAck of those records was delivered.
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
		b.ackTimer.Stop()
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
// client: records still buffered fail with ErrClosed. It waits for every
// callback to run, delivers the acknowledgements queued in AckBatchers, and
// returns a report; the error is non-nil if the flush did not finish (it
// wraps ctx's error). Records sent after Close fail with ErrClosed; records
// queued for a stage batch when Close starts are flushed like buffered
// ones. Close does not close the plugins. Calling Close twice returns
// ErrClosed.
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
		case <-timeout.C:
			p.log.Error("close: callbacks still running after 30s", "in_flight", p.inFlight())
			return p.report(), errors.New("pipeline: close: callbacks did not finish")
		}
	}
	p.flushAcks()
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
	return int64(p.sent.Load() - done)
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

// Stats returns a snapshot of the producer's counters.
func (p *Producer) Stats() Stats {
	s := Stats{
		Delivered: p.delivered.Load(),
		Filtered:  p.filtered.Load(),
		Failed:    p.failed.Load(),
		InFlight:  p.inFlight(),
	}
	for _, ic := range p.ics {
		s.Plugins = append(s.Plugins, ic.onSend.snapshot(ic.name, plugins.KindInterceptor, HookOnSend))
		if ic.acks {
			s.Plugins = append(s.Plugins, ic.onAck.snapshot(ic.name, plugins.KindInterceptor, HookOnAck))
		}
	}
	for _, ser := range []*serializerSlot{p.keySer, p.valSer} {
		if ser != nil {
			s.Plugins = append(s.Plugins, ser.stats.snapshot(ser.name, plugins.KindSerializer, ser.hook))
		}
	}
	p.partMu.Lock()
	for _, name := range p.partNames {
		s.Plugins = append(s.Plugins, p.partStats[name].snapshot(name, plugins.KindPartitioner, HookPartition))
	}
	p.partMu.Unlock()
	return s
}
