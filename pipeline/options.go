package pipeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// An Option configures a Producer. Options are applied in order; for a
// setting given twice the last one wins, except Interceptor, which appends.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

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

// ParseAcks parses a Kafka acks value: "0", "1", "all" or "-1".
func ParseAcks(s string) (AckLevel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "none":
		return AcksNone, nil
	case "1", "leader":
		return AcksLeader, nil
	case "all", "-1":
		return AcksAll, nil
	}
	return 0, fmt.Errorf("invalid acks %q: want 0, 1, all or -1", s)
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

type namedInterceptor struct {
	name string
	ic   plugins.Interceptor
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
	interceptors    []namedInterceptor
	keySerName      string
	keySer          plugins.Serializer
	valSerName      string
	valSer          plugins.Serializer
	partName        string
	part            plugins.Partitioner
	logger          hclog.Logger
	cbThreshold     int
	cbCooldown      time.Duration
	stageMax        int
	stageLinger     time.Duration // negative: derived from linger
	kgoOpts         []kgo.Opt
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
		cbThreshold:    10,
		cbCooldown:     10 * time.Second,
		stageMax:       64,
		stageLinger:    -1,
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
// when the buffer is full. Kafka property max.block.ms; franz-go has no
// such bound (its Produce waits until the context ends). Default: 60s, the
// Java client's.
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
// order given; name identifies it in logs and Stats. At most 64. If ic
// implements plugins.AckObserver and its WantsAcks returns false (as a WASM
// interceptor without kpipe_on_ack does), its OnAck is never called and it
// has no on_ack entry in Stats.
func Interceptor(name string, ic plugins.Interceptor) Option {
	return optionFunc(func(c *config) { c.interceptors = append(c.interceptors, namedInterceptor{name, ic}) })
}

// KeySerializer sets the serializer of record keys (Kafka property
// key.serializer). Null keys are never passed to it. Default: none, the
// keys are sent as they are (the built-in "bytes", which is never called
// and has no Stats entry).
func KeySerializer(name string, s plugins.Serializer) Option {
	return optionFunc(func(c *config) { c.keySerName, c.keySer = name, s })
}

// ValueSerializer sets the serializer of record values (Kafka property
// value.serializer). Null values (tombstones) are never passed to it.
// Default: none, the values are sent as they are (the built-in "bytes",
// which is never called and has no Stats entry).
func ValueSerializer(name string, s plugins.Serializer) Option {
	return optionFunc(func(c *config) { c.valSerName, c.valSer = name, s })
}

// Partitioner sets the partitioner of records that do not name a partition
// (Kafka property partitioner.class); it can be replaced later with
// SetPartitioner. Default: the built-in "default" (murmur2 for keyed records
// like the Java client, sticky batches for unkeyed ones).
func Partitioner(name string, p plugins.Partitioner) Option {
	return optionFunc(func(c *config) { c.partName, c.part = name, p })
}

// Logger sets the logger for plugin failures and the client's own warnings
// and errors. Default: hclog.Default() named "kpipe".
func Logger(l hclog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// CircuitBreaker sets when a failing interceptor or partitioner is bypassed:
// after threshold consecutive failures of one plugin, its calls are skipped
// for cooldown (interceptors pass records through unchanged, partitioners
// defer to the default partitioner); then it is tried again. If it fails
// again at once the next cool-down is twice as long, up to 16 times
// cooldown; one success resets it. The breaker counts calls: with stage
// batching (StageBatch) a batch call, or a delivery of queued
// acknowledgements, is one failure if every record in it failed and a
// success otherwise, while Stats counts each record. A threshold of zero or
// less disables the breaker. Serializers are never bypassed: a record they
// cannot serialize fails. Default: threshold 10, cooldown 10s.
func CircuitBreaker(threshold int, cooldown time.Duration) Option {
	return optionFunc(func(c *config) { c.cbThreshold, c.cbCooldown = threshold, cooldown })
}

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
// transaction methods run it at once. OnAck of an AckBatcher is delivered
// in batches too: when its queue fills, when acknowledgements have waited
// linger, and on Flush and Close.
//
// Records are batched only while some stage can use it: an interceptor that
// implements plugins.BatchInterceptor or plugins.AckBatcher, or a current
// partitioner (see SetPartitioner) that implements plugins.BatchPartitioner
// and keeps no per-topic state. Otherwise (Go plugins that take no batches,
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
// guarantees.
func KgoOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.kgoOpts = append(c.kgoOpts, opts...) })
}
