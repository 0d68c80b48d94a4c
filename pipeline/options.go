package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// An Option configures a Producer. Options are applied in order; for a
// setting given twice the last one wins, except Interceptor, which appends.
//
// The chain options (Interceptor, KeySerializer, ValueSerializer,
// Partitioner and CircuitBreaker) describe the plugins; they are the only
// options Producer.Swap takes. The others configure the client and the
// producer, and are fixed by New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// chainOption is an option of the chain: see Option.
type chainOption func(*chainConfig)

func (f chainOption) apply(c *config) { f(&c.chain) }

// AckLevel is how many replicas must have written a record before the broker
// acknowledges it (Kafka property acks).
type AckLevel int8

// The acknowledgement levels.
const (
	// AcksNone (acks=0): the broker sends no response; a record counts as
	// delivered once written to the connection, and its offset is unknown
	// (Result.Offset is -1).
	AcksNone AckLevel = 0
	// AcksLeader (acks=1): the partition leader has written the record.
	AcksLeader AckLevel = 1
	// AcksAll (acks=all or -1): every in-sync replica has written it.
	AcksAll AckLevel = -1
)

func (a AckLevel) String() string {
	switch a {
	case AcksNone:
		return "0"
	case AcksLeader:
		return "1"
	case AcksAll:
		return "all"
	}
	return fmt.Sprintf("AckLevel(%d)", int8(a))
}

// AckNames returns the acks values ParseAcks takes, as AckLevel.String
// gives them: "0", "1" and "all" ("-1", the same as "all", is left out).
func AckNames() []string { return []string{AcksNone.String(), AcksLeader.String(), AcksAll.String()} }

// ParseAcks parses a Kafka acks value: "0", "1", "all" or "-1" (the same
// as "all"), the spellings the Java client accepts. It is the one place
// they are listed: kpipe's configuration uses it too.
func ParseAcks(s string) (AckLevel, error) {
	switch s {
	case "0":
		return AcksNone, nil
	case "1":
		return AcksLeader, nil
	case "all", "-1":
		return AcksAll, nil
	}
	return 0, fmt.Errorf(`acks must be "0", "1" or "all" ("-1" is "all"), not %q`, s)
}

// Codec is a compression codec for record batches (Kafka property
// compression.type).
type Codec uint8

// The compression codecs.
const (
	// NoCompression sends batches uncompressed (compression.type=none).
	NoCompression Codec = iota
	// Gzip compresses with gzip at its default level.
	Gzip
	// Snappy compresses with snappy.
	Snappy
	// LZ4 compresses with lz4.
	LZ4
	// Zstd compresses with zstd (brokers from Kafka 2.1).
	Zstd
)

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

func (c Codec) String() string {
	if int(c) < len(codecNames) {
		return codecNames[c]
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// CodecNames returns the names of the codecs, as ParseCodec takes them and
// Codec.String gives them: none, gzip, snappy, lz4 and zstd.
func CodecNames() []string { return slices.Clone(codecNames[:]) }

// ParseCodec parses a Kafka compression.type value: none, gzip, snappy, lz4
// or zstd.
func ParseCodec(s string) (Codec, error) {
	for i, n := range codecNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("invalid compression type %q: want one of %s", s, strings.Join(codecNames[:], ", "))
}

func (c Codec) kgo() (kgo.CompressionCodec, error) {
	switch c {
	case NoCompression:
		return kgo.NoCompression(), nil
	case Gzip:
		return kgo.GzipCompression(), nil
	case Snappy:
		return kgo.SnappyCompression(), nil
	case LZ4:
		return kgo.Lz4Compression(), nil
	case Zstd:
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("invalid compression codec %d", uint8(c))
}

type config struct {
	brokers         []string
	clientID        string
	acks            AckLevel
	idempotence     *bool
	txnID           string
	linger          time.Duration
	batchMaxBytes   int32
	maxRequestSize  int32
	maxBufRecords   int
	maxBufBytes     int
	codecs          []Codec
	requestTimeout  time.Duration
	deliveryTimeout time.Duration
	retries         int
	maxInFlight     int
	ignoreKeys      bool
	metadataMaxAge  time.Duration
	maxBlock        time.Duration
	defaultTopic    string
	logger          hclog.Logger
	stageMax        int
	stageLinger     time.Duration // negative: derived from linger
	kgoOpts         []kgo.Opt
	newClient       func(...kgo.Opt) (*kgo.Client, error)
	chain           chainConfig
}

// chainConfig is what the chain options set: the plugins of one chain.
type chainConfig struct {
	interceptors []namedPlugin
	keySer       *namedPlugin
	valSer       *namedPlugin
	part         *namedPlugin
	cbThreshold  int
	cbCooldown   time.Duration
}

// namedPlugin is a plugin given to a chain option, with its options.
type namedPlugin struct {
	name   string
	plugin any // plugins.Interceptor, plugins.Serializer or plugins.Partitioner; nil for a built-in default
	opts   pluginConfig
}

// idempotent applies the rules of acks, enable.idempotence and
// transactional.id (the one place they are written; kpipe's configuration
// checks them with CheckIdempotence) and reports whether the producer is
// idempotent.
func (c *config) idempotent() (bool, error) {
	if err := CheckIdempotence(c.acks, c.idempotence, c.txnID); err != nil {
		return false, err
	}
	return Idempotent(c.acks, c.idempotence), nil
}

// Idempotent reports whether a producer with acks and enable.idempotence
// (nil: not set) writes idempotently: as set, or by default when acks is
// all (the Java client's rule).
func Idempotent(acks AckLevel, idempotence *bool) bool {
	if idempotence != nil {
		return *idempotence
	}
	return acks == AcksAll
}

// ErrMaxInFlightIdempotent is CheckMaxInFlight's error for a MaxInFlight
// other than 5 with idempotence.
var ErrMaxInFlightIdempotent = errors.New("with idempotence franz-go keeps 5 requests in flight per broker (order is kept across retries); other values need idempotence off")

// CheckMaxInFlight checks max.in.flight.requests.per.connection: at least
// 1, and 5 when the producer is idempotent (ErrMaxInFlightIdempotent). It
// is the one place this rule is written: New and kpipe's configuration use
// it.
func CheckMaxInFlight(n int, idempotent bool) error {
	switch {
	case n < 1:
		return fmt.Errorf("MaxInFlight (max.in.flight.requests.per.connection) %d: must be at least 1", n)
	case idempotent && n != 5:
		return fmt.Errorf("MaxInFlight (max.in.flight.requests.per.connection) %d: %w", n, ErrMaxInFlightIdempotent)
	}
	return nil
}

// The rules CheckIdempotence checks, for errors.Is.
var (
	// ErrIdempotenceNeedsAcksAll: Idempotence(true) with acks other
	// than all.
	ErrIdempotenceNeedsAcksAll = errors.New("idempotence (enable.idempotence=true) requires acks=all")
	// ErrTransactionNeedsIdempotence: a TransactionalID with
	// Idempotence(false).
	ErrTransactionNeedsIdempotence = errors.New("a transactional producer requires idempotence")
	// ErrTransactionNeedsAcksAll: a TransactionalID with acks other than
	// all.
	ErrTransactionNeedsAcksAll = errors.New("a transactional producer requires idempotence, and so acks=all")
)

// CheckIdempotence checks acks, enable.idempotence (nil: not set) and
// transactional.id ("" none) against each other, with the Java client's
// rules: idempotence requires acks=all, and is on by default when acks is
// all; a transactional producer must be idempotent, and so use acks=all.
// It returns every rule broken (ErrIdempotenceNeedsAcksAll,
// ErrTransactionNeedsIdempotence, ErrTransactionNeedsAcksAll), joined. It
// is the one place these rules are written: New and kpipe's configuration
// use it.
func CheckIdempotence(acks AckLevel, idempotence *bool, txnID string) error {
	switch acks {
	case AcksNone, AcksLeader, AcksAll:
	default:
		return fmt.Errorf("invalid acks level %d", int8(acks))
	}
	var errs []error
	if idempotence != nil && *idempotence && acks != AcksAll {
		errs = append(errs, fmt.Errorf("%w, got acks=%s", ErrIdempotenceNeedsAcksAll, acks))
	}
	if txnID != "" {
		if idempotence != nil && !*idempotence {
			errs = append(errs, fmt.Errorf("transactional.id %q: %w", txnID, ErrTransactionNeedsIdempotence))
		}
		if acks != AcksAll {
			errs = append(errs, fmt.Errorf("transactional.id %q: %w, got acks=%s", txnID, ErrTransactionNeedsAcksAll, acks))
		}
	}
	return errors.Join(errs...)
}

// kgoOptions returns the franz-go options for the client settings.
func (c *config) kgoOptions(idem bool) ([]kgo.Opt, error) {
	kopts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ProducerLinger(c.linger),
		kgo.ProducerBatchMaxBytes(c.batchMaxBytes),
		kgo.BrokerMaxWriteBytes(c.maxRequestSize),
		kgo.MaxBufferedRecords(c.maxBufRecords),
		kgo.ProduceRequestTimeout(c.requestTimeout),
		kgo.RecordDeliveryTimeout(c.deliveryTimeout),
		kgo.MetadataMaxAge(c.metadataMaxAge),
		kgo.MetadataMinAge(min(5*time.Second, c.metadataMaxAge)),
	}
	if c.retries >= 0 {
		kopts = append(kopts, kgo.RecordRetries(c.retries))
	}
	if c.maxBufBytes > 0 {
		kopts = append(kopts, kgo.MaxBufferedBytes(c.maxBufBytes))
	}
	if c.clientID != "" {
		kopts = append(kopts, kgo.ClientID(c.clientID))
	}
	switch c.acks {
	case AcksNone:
		kopts = append(kopts, kgo.RequiredAcks(kgo.NoAck()))
	case AcksLeader:
		kopts = append(kopts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		kopts = append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if !idem {
		kopts = append(kopts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.maxInFlight))
	}
	if c.txnID != "" {
		kopts = append(kopts, kgo.TransactionalID(c.txnID))
	}
	if len(c.codecs) > 0 {
		codecs := make([]kgo.CompressionCodec, len(c.codecs))
		for i, cc := range c.codecs {
			kc, err := cc.kgo()
			if err != nil {
				return nil, err
			}
			codecs[i] = kc
		}
		kopts = append(kopts, kgo.ProducerBatchCompression(codecs...))
	}
	return kopts, nil
}

func defaultChainConfig() chainConfig {
	return chainConfig{cbThreshold: 10, cbCooldown: 10 * time.Second}
}

func defaultConfig() config {
	return config{
		acks:           AcksAll,
		linger:         10 * time.Millisecond,
		batchMaxBytes:  1_000_012,
		maxRequestSize: 100 << 20,
		maxBufRecords:  50_000,
		maxBufBytes:    32 << 20,
		codecs:         []Codec{NoCompression},
		requestTimeout: 30 * time.Second,
		retries:        -1,
		maxInFlight:    5,
		metadataMaxAge: 5 * time.Minute,
		maxBlock:       60 * time.Second,
		stageMax:       DefaultStageBatchRecords,
		stageLinger:    -1,
		chain:          defaultChainConfig(),
	}
}

// Brokers sets the seed brokers, as host:port (Kafka property
// bootstrap.servers). Required; there is no default.
func Brokers(addrs ...string) Option {
	return optionFunc(func(c *config) { c.brokers = append([]string(nil), addrs...) })
}

// ClientID sets the client ID sent to brokers with every request (Kafka
// property client.id). Default: franz-go's, "kgo".
func ClientID(id string) Option { return optionFunc(func(c *config) { c.clientID = id }) }

// Acks sets how many replicas must acknowledge a record (Kafka property
// acks). Default: AcksAll, as in the Java client since Kafka 3.0.
func Acks(a AckLevel) Option { return optionFunc(func(c *config) { c.acks = a }) }

// Idempotence turns the idempotent producer on or off (Kafka property
// enable.idempotence). An idempotent producer never writes a record twice
// after a retry and keeps per-partition order. It requires AcksAll: New fails
// if Idempotence(true) is given with another acks level. Default: on when
// acks is all, off otherwise (the Java client's rule for an unset
// enable.idempotence).
func Idempotence(on bool) Option { return optionFunc(func(c *config) { c.idempotence = &on }) }

// TransactionalID makes the producer transactional under id (Kafka property
// transactional.id): records must then be sent between BeginTransaction and
// CommitTransaction or AbortTransaction. Requires idempotence, and so
// AcksAll. Default: none (not transactional).
func TransactionalID(id string) Option { return optionFunc(func(c *config) { c.txnID = id }) }

// Linger sets how long the client waits for more records before it sends a
// partly filled batch (Kafka property linger.ms). Zero sends as soon as
// possible. Default: 10ms (franz-go's default; the Java client's is 5ms
// since Kafka 4.0).
func Linger(d time.Duration) Option { return optionFunc(func(c *config) { c.linger = d }) }

// BatchMaxBytes caps the size of one record batch (franz-go
// ProducerBatchMaxBytes, the closest to Kafka's batch.size). Unlike Java's
// batch.size it is also the largest record the producer accepts: a record
// that does not fit in a batch on its own fails with a "record too large"
// error, alone. It should not exceed the topic's max.message.bytes.
// Default: 1,000,012 bytes, Kafka's default max.message.bytes.
func BatchMaxBytes(n int32) Option { return optionFunc(func(c *config) { c.batchMaxBytes = n }) }

// MaxRequestSize caps the size of one produce request (franz-go
// BrokerMaxWriteBytes; Kafka property max.request.size). Default: 100 MiB,
// the broker's socket.request.max.bytes; the per-record limit is
// BatchMaxBytes.
func MaxRequestSize(n int32) Option { return optionFunc(func(c *config) { c.maxRequestSize = n }) }

// MaxBufferedRecords caps how many records may wait in the client; Send
// blocks while the buffer is full, until space frees, its context ends or
// MaxBlock passes (franz-go MaxBufferedRecords; no Kafka equivalent).
// Default: 50,000.
func MaxBufferedRecords(n int) Option { return optionFunc(func(c *config) { c.maxBufRecords = n }) }

// MaxBufferedBytes caps how many bytes of records (keys, values, header
// keys and values) may wait in the client; Send blocks while it is
// exceeded, until space frees, its context ends or MaxBlock passes
// (franz-go MaxBufferedBytes; Kafka property buffer.memory). It must be at
// least BatchMaxBytes, the largest record. Zero means no byte limit, and
// memory is then bounded only by MaxBufferedRecords times the record size.
// Default: 32 MiB, Kafka's.
func MaxBufferedBytes(n int) Option { return optionFunc(func(c *config) { c.maxBufBytes = n }) }

// MaxBlock bounds how long Send (and SendSync) may wait for room in the
// client's buffer (MaxBufferedRecords, MaxBufferedBytes); a record that
// got none by then fails with an error wrapping ErrBufferFull ("buffer
// full for 1m0s: the brokers took no records for that long (MaxBlock,
// Kafka max.block.ms ...)") and Send returns. Zero fails a record at once
// when the buffer is full. The records of one SendBatch, or of one stage
// batch, share the bound: once one of them waited MaxBlock in vain, the
// following ones that find no room fail at once. Kafka property
// max.block.ms; franz-go has no such bound (its Produce waits until the
// context ends). Default: 60s, the Java client's.
//
// Unlike the Java client's send, Send never waits for metadata: a record
// for a topic whose partitions are not known yet is buffered at once and
// waits in the buffer, where it counts against the limits above, so a
// broker that does not answer fills the buffer and MaxBlock then applies.
// Records already buffered are bounded by DeliveryTimeout, and by the
// context given to Flush and Close.
func MaxBlock(d time.Duration) Option { return optionFunc(func(c *config) { c.maxBlock = d }) }

// MaxInFlight caps how many produce requests may wait for a response per
// broker (Kafka property max.in.flight.requests.per.connection; franz-go
// MaxProduceRequestsInflightPerBroker, which counts per broker, as franz-go
// sends produce requests over one connection per broker). Default: 5, the
// Java client's (franz-go's own default is 1).
//
// With idempotence franz-go does not take this setting: it always keeps
// up to 5 requests in flight (1 for brokers older than Kafka 1.0), and
// idempotence keeps the order of records across retries within that
// window. New therefore fails if idempotence is on and n is not 5; where
// the Java client takes 1 to 5 with idempotence, turn idempotence off to
// use fewer. Without idempotence, a value above 1 may reorder records
// when a request is retried.
func MaxInFlight(n int) Option { return optionFunc(func(c *config) { c.maxInFlight = n }) }

// PartitionerIgnoreKeys makes the built-in default partitioner ignore keys:
// keyed records are spread in sticky batches like unkeyed ones, instead of
// going to the partition their key hashes to (Kafka property
// partitioner.ignore.keys, Kafka 3.3+, KIP-794). It applies wherever the
// default partitioner chooses: with no partitioner set, and for records a
// partitioner plugin defers (plugins.DefaultPartition) or fails. It does
// not change the built-in murmur2 partitioner, which always hashes keys.
// Default: false.
func PartitionerIgnoreKeys(on bool) Option { return optionFunc(func(c *config) { c.ignoreKeys = on }) }

// MetadataMaxAge sets how old the client's metadata may get before it is
// refreshed, which is how the producer learns of new partitions and moved
// leaders when nothing fails (Kafka property metadata.max.age.ms; franz-go
// MetadataMaxAge). The client also waits at least the smaller of 5s and
// this age between two refreshes (franz-go MetadataMinAge). At least 10ms.
// Default: 5m, the Java client's and franz-go's.
func MetadataMaxAge(d time.Duration) Option {
	return optionFunc(func(c *config) { c.metadataMaxAge = d })
}

// Compression sets the batch compression codecs in order of preference; the
// first one the broker supports is used (Kafka property compression.type,
// which takes one). Default: NoCompression, as in the Java client.
func Compression(codecs ...Codec) Option {
	return optionFunc(func(c *config) { c.codecs = append([]Codec(nil), codecs...) })
}

// RequestTimeout sets how long a broker may take to answer a produce request
// (franz-go ProduceRequestTimeout; Kafka property request.timeout.ms).
// Default: 30s, the Java client's.
func RequestTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.requestTimeout = d })
}

// DeliveryTimeout bounds the time a record may take to be delivered; a record
// still not delivered then fails (franz-go RecordDeliveryTimeout; Kafka
// property delivery.timeout.ms). Zero means no limit. Default: 0, franz-go's
// (the Java client's is 2 minutes).
//
// franz-go measures this timeout from the record's timestamp, not from
// Send: with a DeliveryTimeout, records whose explicit Timestamp is older
// than the timeout fail with "records have timed out". This is why the
// default is no limit.
func DeliveryTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.deliveryTimeout = d })
}

// Retries caps how many times a record is retried before it fails (franz-go
// RecordRetries; Kafka property retries). Negative means no limit other than
// DeliveryTimeout. Default: -1.
func Retries(n int) Option { return optionFunc(func(c *config) { c.retries = n }) }

// DefaultTopic sets the topic of records whose Topic is empty; it is filled
// in before the interceptors run. Without it such records fail. Default:
// none.
func DefaultTopic(topic string) Option { return optionFunc(func(c *config) { c.defaultTopic = topic }) }

// Interceptor appends an interceptor to the chain. Interceptors run in the
// order given; name identifies it in logs, Stats and failure errors. At most
// 64. If ic implements plugins.AckObserver and its WantsAcks returns false
// (as a WASM interceptor without kpipe_on_ack does), its OnAck is never
// called and it has no on_ack entry in Stats. opts set its failure policy
// (OnFailure; default SkipPlugin) and circuit breaker
// (PluginCircuitBreaker; default the chain's CircuitBreaker).
func Interceptor(name string, ic plugins.Interceptor, opts ...PluginOption) Option {
	np := newNamedPlugin(name, ic, opts)
	if ic == nil {
		np.plugin = nil
	}
	return chainOption(func(c *chainConfig) { c.interceptors = append(c.interceptors, np) })
}

// KeySerializer sets the serializer of record keys (Kafka property
// key.serializer). Null keys are never passed to it. A nil s, like the
// default, sends keys as they are (the built-in "bytes", which is then
// never called and has no Stats entry). A serializer failure always fails
// the record (OnFailure accepts only FailRecord). Default: nil.
func KeySerializer(name string, s plugins.Serializer, opts ...PluginOption) Option {
	np := newNamedPlugin(name, s, opts)
	if s == nil {
		np.plugin = nil
	}
	return chainOption(func(c *chainConfig) { c.keySer = &np })
}

// ValueSerializer sets the serializer of record values (Kafka property
// value.serializer). Null values (tombstones) are never passed to it. A nil
// s, like the default, sends values as they are (the built-in "bytes",
// never called and without a Stats entry). A serializer failure always
// fails the record. Default: nil.
func ValueSerializer(name string, s plugins.Serializer, opts ...PluginOption) Option {
	np := newNamedPlugin(name, s, opts)
	if s == nil {
		np.plugin = nil
	}
	return chainOption(func(c *chainConfig) { c.valSer = &np })
}

// Partitioner sets the partitioner of records that do not name a partition
// (Kafka property partitioner.class). A nil p is the built-in "default"
// (murmur2 for keyed records like the Java client, sticky batches for
// unkeyed ones), which the pipeline runs without a plugin call; it is also
// what a failing partitioner falls back to under the default policy
// (OnFailure(UseDefaultPartitioner); OnFailure(FailRecord) fails the record
// instead). Default: nil, under the name "default".
func Partitioner(name string, p plugins.Partitioner, opts ...PluginOption) Option {
	np := newNamedPlugin(name, p, opts)
	if p == nil {
		np.plugin = nil
	}
	return chainOption(func(c *chainConfig) { c.part = &np })
}

func newNamedPlugin(name string, pl any, opts []PluginOption) namedPlugin {
	np := namedPlugin{name: name, plugin: pl}
	for _, o := range opts {
		o.applyPlugin(&np.opts)
	}
	return np
}

// A PluginOption configures one plugin of a chain: see Interceptor,
// KeySerializer, ValueSerializer and Partitioner.
type PluginOption interface{ applyPlugin(*pluginConfig) }

type pluginOptionFunc func(*pluginConfig)

func (f pluginOptionFunc) applyPlugin(c *pluginConfig) { f(c) }

type pluginConfig struct {
	policy      FailurePolicy // 0: the kind's default
	breakerSet  bool
	cbThreshold int
	cbCooldown  time.Duration
}

// FailurePolicy is what happens to a record when a plugin fails on it: its
// call returned an error, panicked, faulted (a WASM trap, timeout or
// invalid result), or was skipped because the plugin's circuit breaker is
// open.
type FailurePolicy uint8

// The failure policies. Interceptors and consume interceptors take
// SkipPlugin (the default), FailRecord or DropRecord; partitioners
// UseDefaultPartitioner (the default) or FailRecord; serializers only
// FailRecord, which is what they always do; deserializers FailRecord (the
// default) or DropRecord.
const (
	// SkipPlugin: the record goes on as it was before the interceptor
	// (the last good version), counted as a failure of the plugin
	// (config: on_failure = "skip").
	SkipPlugin FailurePolicy = iota + 1
	// FailRecord: the record fails; its Result.Err wraps ErrPluginFailed
	// (ErrSerialize for serializers) and names the plugin and hook
	// (config: on_failure = "fail"). Plugins that must never be skipped,
	// such as redaction or encryption, should use it.
	FailRecord
	// DropRecord: the record is filtered (Outcome Filtered, counted in
	// Drops) as if the interceptor had dropped it (config: on_failure =
	// "drop").
	DropRecord
	// UseDefaultPartitioner: the default partitioner chooses the record's
	// partition (config: on_failure = "default").
	UseDefaultPartitioner
)

var policyNames = [...]string{SkipPlugin: "skip", FailRecord: "fail", DropRecord: "drop", UseDefaultPartitioner: "default"}

func (f FailurePolicy) String() string {
	if int(f) < len(policyNames) && policyNames[f] != "" {
		return policyNames[f]
	}
	return fmt.Sprintf("FailurePolicy(%d)", uint8(f))
}

// ParseFailurePolicy parses a policy name: "skip", "fail", "drop" or
// "default" (the on_failure attribute of kpipe's configuration).
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	for i, n := range policyNames {
		if n != "" && n == s {
			return FailurePolicy(i), nil
		}
	}
	return 0, fmt.Errorf("invalid failure policy %q: want skip, fail or drop (interceptors), default or fail (partitioners), fail (serializers)", s)
}

// policies lists the policies each kind accepts; the first is its default.
func policies(k plugins.Kind) []FailurePolicy {
	switch k {
	case plugins.KindInterceptor, plugins.KindConsumeInterceptor:
		return []FailurePolicy{SkipPlugin, FailRecord, DropRecord}
	case plugins.KindDeserializer:
		return []FailurePolicy{FailRecord, DropRecord}
	case plugins.KindPartitioner:
		return []FailurePolicy{UseDefaultPartitioner, FailRecord}
	}
	return []FailurePolicy{FailRecord}
}

// CheckFailurePolicy reports whether a plugin of kind k (one of
// plugins.KindInterceptor, KindSerializer, KindPartitioner,
// KindConsumeInterceptor, KindDeserializer) may have policy f.
func CheckFailurePolicy(k plugins.Kind, f FailurePolicy) error {
	allowed := policies(k)
	for _, a := range allowed {
		if a == f {
			return nil
		}
	}
	return fmt.Errorf("on_failure %q is not a policy of a %s (want %s)", f, kindName(k), policyList(allowed))
}

// OnFailure sets what a plugin's failure does to the record: see
// FailurePolicy for the policies each kind accepts. New and Swap fail on a
// policy the plugin's kind does not have. Default: SkipPlugin for
// interceptors, UseDefaultPartitioner for partitioners, FailRecord for
// serializers.
func OnFailure(f FailurePolicy) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.policy = f })
}

// PluginCircuitBreaker gives one plugin its own circuit breaker settings
// instead of the chain's (see CircuitBreaker).
func PluginCircuitBreaker(threshold int, cooldown time.Duration) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		c.breakerSet, c.cbThreshold, c.cbCooldown = true, threshold, cooldown
	})
}

// Logger sets the logger for plugin failures and the client's own warnings
// and errors. Default: hclog.Default() named "kpipe".
func Logger(l hclog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// CircuitBreaker sets the default circuit breaker of the chain's
// interceptors and partitioner (PluginCircuitBreaker overrides it for one
// plugin): after threshold consecutive records on which a plugin failed,
// counted record by record also in batch calls, the plugin is bypassed for
// cooldown, its failure policy applying to each record it would have seen
// (an interceptor under SkipPlugin passes records on unchanged, under
// FailRecord fails them, under DropRecord filters them; a partitioner
// defers to the default partitioner or fails the record). Then exactly one
// call (one record, or one batch call) is let through: if it succeeds on any
// record the breaker closes, otherwise it opens again for twice as long,
// up to 16 times cooldown. Bypassed records are counted in Stats
// (Bypasses). A threshold of zero or less disables the breaker.
// Serializers have no breaker: a record they cannot serialize fails.
// Default: threshold 10, cooldown 10s.
func CircuitBreaker(threshold int, cooldown time.Duration) Option {
	return chainOption(func(c *chainConfig) { c.cbThreshold, c.cbCooldown = threshold, cooldown })
}

// DefaultStageBatchRecords is the stage batch size without StageBatch.
const DefaultStageBatchRecords = 64

// StageBatch sets how records are batched on their way through the plugin
// stages (kpipe only; not the client's batches, see Linger and
// BatchMaxBytes). Calling a WASM plugin costs about 100ns whatever it does;
// a plugin that takes batches (plugins.BatchInterceptor,
// plugins.BatchPartitioner, plugins.AckBatcher, as WASM plugins do) serves
// up to maxRecords records for about the cost of one call.
//
// Send then queues the record and returns. The queue goes through the
// stages when it holds maxRecords records (on the goroutine of the Send
// that filled it) or when its first record has waited linger (on a timer's
// goroutine), whichever comes first; Flush, SendSync, Close and the
// transaction methods run it at once. OnAckBatch of an AckBatcher is given
// batches of acknowledgements too: when maxRecords are waiting or every
// record in flight is, when the first has waited linger, and on Flush and
// Close; the callbacks of those records run after it.
//
// Records are batched only while some stage of the current chain can use
// it: an interceptor that implements plugins.BatchInterceptor or
// plugins.AckBatcher, or a partitioner that implements
// plugins.BatchPartitioner and keeps no per-topic state. Otherwise (Go plugins that take no batches,
// for one) each Send runs the stages itself, as if batching were off, at no
// extra cost. In a batch, plugins that take no batches are called once per
// record, as always, and serializers always are.
//
// maxRecords <= 1 or a linger of 0 turns batching off; a negative linger
// keeps the default linger. The linger adds to the client's Linger for a
// record that does not fill a batch, which is why the default stays small.
// Default: 64 records, linger the smaller of 1ms and Linger (so Linger(0)
// turns stage batching off too).
func StageBatch(maxRecords int, linger time.Duration) Option {
	return optionFunc(func(c *config) { c.stageMax, c.stageLinger = maxRecords, linger })
}

// KgoOptions passes options to the underlying franz-go client, after the
// ones derived from the other options, so they win. It is an escape hatch
// (TLS, SASL, metadata settings, hooks); options that change partitioning
// (kgo.RecordPartitioner) or the default topic break the pipeline's
// guarantees. A franz-go hook that sees a produced kgo.Record finds in its
// Context the pipeline's handle of the record, a context that never ends
// and holds no values: the Send context is the one franz-go is given with
// the record (kgo.Client.Produce's ctx).
func KgoOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.kgoOpts = append(c.kgoOpts, opts...) })
}

// ClientFactory makes New create its franz-go client with newClient instead
// of kgo.NewClient. newClient gets every option New derived (with kpipe's
// partitioner and logger, and KgoOptions last) and must pass them all to the
// client it returns. It is how a client that is more than a producer holds
// the Producer: kafkasource builds the client of a
// kgo.GroupTransactSession this way, so that the pipeline's records are
// produced in the session's transactions, while the session, not the
// Producer's transaction methods, begins and ends them. The owner may also
// produce records of its own with the client (kafkasource's dead-letter
// records): they bypass the pipeline, get the default partitioner, and are
// not counted in Stats. The Producer owns the client it is given and
// closes it in Close. Default: kgo.NewClient.
func ClientFactory(newClient func(opts ...kgo.Opt) (*kgo.Client, error)) Option {
	return optionFunc(func(c *config) { c.newClient = newClient })
}
