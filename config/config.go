package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// Config is a parsed and validated configuration file.
type Config struct {
	// Filename is the name the configuration was parsed under; relative
	// module paths were resolved against its directory.
	Filename string
	// Kafka holds the producer client settings. The zero value means
	// franz-go's defaults and no brokers.
	Kafka Kafka
	// Pipelines are the pipeline blocks, in file order. Names are unique.
	Pipelines []*Pipeline
	// Consumers are the consumer blocks (consume.go), in file order.
	// Names are unique among them.
	Consumers []*Consumer
}

// Pipeline returns the pipeline with the given name. With an empty name it
// returns the only pipeline of a file that has exactly one.
func (c *Config) Pipeline(name string) (*Pipeline, error) {
	return chooseBlock(c, "pipeline", c.Pipelines, func(p *Pipeline) string { return p.Name }, name)
}

// chooseBlock is Pipeline and Consumer: it returns the block named name
// among blocks, those of type what ("pipeline", "consumer") in c, or with
// an empty name the only one of a file that has exactly one. The error of
// a file that has only blocks of the other type says what runs those.
func chooseBlock[B any](c *Config, what string, blocks []B, nameOf func(B) string, name string) (B, error) {
	var none B
	if name == "" {
		other, others, runs := "consumer", len(c.Consumers), "kpipe consume --config"
		if what == "consumer" {
			other, others, runs = "pipeline", len(c.Pipelines), "kpipe run --config"
		}
		switch {
		case len(blocks) == 1:
			return blocks[0], nil
		case len(blocks) == 0 && others > 0:
			return none, fmt.Errorf(`%s defines no %s "NAME" block, only %s blocks (%s runs those)`, c.Filename, what, other, runs)
		case len(blocks) == 0:
			return none, fmt.Errorf(`%s defines no %s "NAME" block`, c.Filename, what)
		}
		names := make([]string, len(blocks))
		for i, b := range blocks {
			names[i] = nameOf(b)
		}
		return none, fmt.Errorf("%s defines %d %ss %q: choose one", c.Filename, len(blocks), what, names)
	}
	for _, b := range blocks {
		if nameOf(b) == name {
			return b, nil
		}
	}
	return none, fmt.Errorf("%s: no %s named %q", c.Filename, what, name)
}

// Kafka holds the settings of the kafka block. Every field is optional; an
// unset field keeps the client's default. The Kafka producer property each
// one corresponds to is given in its comment.
type Kafka struct {
	// Brokers are the bootstrap brokers, HOST:PORT (bootstrap.servers).
	// Empty means none: `kpipe run` then starts an embedded broker.
	Brokers []string
	// ClientID is the client id sent to brokers (client.id).
	ClientID string
	// Acks is "0", "1" or "all" (acks); "" keeps the default, all.
	Acks string
	// Idempotence enables idempotent writes (enable.idempotence); nil
	// keeps the default: on when acks is "all", off otherwise. It
	// requires Acks "all".
	Idempotence *bool
	// TransactionalID makes the producer transactional
	// (transactional.id). It requires idempotence.
	TransactionalID string
	// Linger is how long a partition's batch waits for more records
	// (linger.ms); nil keeps the default, 10ms.
	Linger *time.Duration
	// BatchMaxBytes is the largest record batch the producer builds
	// (batch.size); 0 keeps the default, 1000012, which matches the
	// broker's default max.message.bytes.
	BatchMaxBytes int32
	// MaxRequestSize is the largest produce request (max.request.size); 0
	// keeps the default, 100 MiB.
	MaxRequestSize int32
	// MaxBufferedRecords caps records buffered in the client, after which
	// sending blocks (no direct Kafka equivalent; see buffer.memory); 0
	// keeps the default, 50000.
	MaxBufferedRecords int
	// MaxBufferedBytes caps bytes buffered in the client (buffer.memory);
	// nil keeps the default, 32 MiB, and 0 means no byte limit.
	MaxBufferedBytes *int64
	// Compression is "none", "gzip", "snappy", "lz4" or "zstd"
	// (compression.type); "" keeps the default, none.
	Compression string
	// RequestTimeout is how long the broker may take to answer a produce
	// request (request.timeout.ms); 0 keeps the default, 30s.
	RequestTimeout time.Duration
	// DeliveryTimeout bounds the time from send to acknowledgement
	// (delivery.timeout.ms); 0 means no limit, the default (see
	// pipeline.DeliveryTimeout for why kpipe does not default to Kafka's 2m).
	DeliveryTimeout time.Duration
	// Retries caps how often a record is retried (retries); nil keeps the
	// default, unlimited.
	Retries *int
	// MaxInFlight caps the produce requests waiting for a response per
	// broker (max.in.flight.requests.per.connection); 0 keeps the
	// default, 5, the only value idempotence allows.
	MaxInFlight int
	// PartitionerIgnoreKeys makes the default partitioner spread keyed
	// records like unkeyed ones (partitioner.ignore.keys).
	PartitionerIgnoreKeys bool
	// MetadataMaxAge is how old metadata may get before it is refreshed
	// (metadata.max.age.ms); 0 keeps the default, 5m.
	MetadataMaxAge time.Duration
	// MaxBlock bounds how long a send waits for room in the buffer
	// (max.block.ms); nil keeps the default, 60s.
	MaxBlock *time.Duration
	// TLS and SASL are the tls and sasl blocks: how the connections to
	// the brokers are secured and authenticated (security.protocol,
	// ssl.*, sasl.*); nil for none. ClientOptions turns them into the
	// client's options.
	TLS  *TLS
	SASL *SASL
	// DefRange is the position of the kafka block's header, for
	// diagnostics; the zero range if the file has no kafka block.
	DefRange hcl.Range
}

// Pipeline is one pipeline block.
type Pipeline struct {
	// Name is the block label, unique in the file.
	Name string
	// Topic is the default topic of records that name none; "" means
	// none (every record must name its topic).
	Topic string
	// Interceptors run in this order.
	Interceptors []*Plugin
	// KeySerializer, ValueSerializer and Partitioner are nil when the
	// block is absent: keys and values are sent as they are, and the
	// default partitioner chooses.
	KeySerializer   *Plugin
	ValueSerializer *Plugin
	Partitioner     *Plugin
	// CircuitBreaker is the failure policy of the pipeline's interceptors
	// and partitioner, or nil for the pipeline's default (threshold 10,
	// cooldown 10s).
	CircuitBreaker *CircuitBreaker
	// Batch is the pipeline's batch block, or nil for the pipeline's
	// default (see pipeline.StageBatch).
	Batch *Batch
	// Source is the pipeline's source "kafka" block, or nil: records then
	// come from the caller (kpipe run reads them from a file or stdin).
	Source *Source
	// DefRange is the position of the block header, for diagnostics.
	DefRange hcl.Range
}

// Plugin is one interceptor, key_serializer, value_serializer or partitioner
// block. Exactly one of Module and Builtin is set.
type Plugin struct {
	// Name is the interceptor's label, or for the other blocks the
	// builtin name or the module's file name without ".wasm". It names
	// the plugin in logs and statistics.
	Name string
	// Kind is the kind the block uses the plugin as.
	Kind plugins.Kind
	// Module is the path of the WASM module, already resolved against the
	// configuration file's directory.
	Module string
	// Builtin is the name of a built-in plugin.
	Builtin string
	// Config is the plugin's config attribute encoded as JSON, or nil if
	// the attribute is absent.
	Config []byte
	// MemoryLimit is the most linear memory an instance may have, in
	// bytes, a multiple of 64 KiB; 0 keeps the host's default (64 MiB).
	MemoryLimit uint64
	// Timeout is the time limit of one hook call: nil keeps the host's
	// default (1s), 0 turns the limit off.
	Timeout *time.Duration
	// LoadTimeout limits each phase of loading the module and of creating
	// each instance (wasmhost.WithLoadTimeout): nil keeps the host's
	// default (ten times Timeout, at least 5s), 0 turns the limit off.
	LoadTimeout *time.Duration
	// PoolSize is the number of instances that may run at once; 0 keeps
	// the host's default (GOMAXPROCS).
	PoolSize int
	// MaxOutput is the largest result a hook may return, in bytes; 0
	// keeps the host's default (16 MiB).
	MaxOutput int
	// PinnedSHA256 is the block's sha256 attribute in lower-case hex, or
	// "" if the block pins no hash: a module whose SHA-256 differs is
	// refused, when the file is parsed and again when it is loaded.
	PinnedSHA256 string
	// ModuleSHA256 is the SHA-256, in lower-case hex, of the module file
	// as Parse read it ("" for a builtin). Loading the module checks that
	// the file still has it, so that what runs is what was checked.
	ModuleSHA256 string
	// OnFailure is the block's on_failure policy, or 0 for the kind's
	// default (see pipeline.OnFailure): interceptors skip, fail or drop,
	// partitioners default or fail, serializers fail.
	OnFailure pipeline.FailurePolicy
	// CircuitBreaker is the block's own circuit_breaker block, or nil for
	// the pipeline's.
	CircuitBreaker *CircuitBreaker
	// DefRange is the position of the block header and ModuleRange that
	// of the module attribute, for diagnostics.
	DefRange, ModuleRange hcl.Range
	// limitRanges holds the positions of the memory_limit and timeout
	// values that are set, and settingErrors whether the config or a limit
	// has an error, for CheckModules.
	limitRanges   map[string]hcl.Range
	settingErrors bool
}

// CircuitBreaker is a circuit_breaker block, in a pipeline (the default of
// its plugins) or in an interceptor or partitioner block: after Threshold
// consecutive records on which the plugin failed, it is bypassed for
// Cooldown (its on_failure policy applies to the records it would have
// seen), then exactly one call is let through (the cool-down doubles, up to
// 16 times, while the plugin keeps failing). Threshold 0 disables the
// breaker. Serializers are never bypassed (pipeline.CircuitBreaker).
type CircuitBreaker struct {
	Threshold int
	Cooldown  time.Duration
}

// Batch is a pipeline's batch block: records wait for up to Linger, or
// until MaxRecords are waiting, and then go through the plugin stages
// together, so that a WASM plugin is called once per batch instead of once
// per record (pipeline.StageBatch). MaxRecords 1 or Linger 0 turns batching
// off.
type Batch struct {
	// MaxRecords is the batch size; 0 keeps the pipeline's default
	// (DefaultBatchRecords).
	MaxRecords int
	// Linger is how long the first record of a batch may wait; nil keeps
	// the pipeline's default (1ms, and never more than the kafka block's
	// linger).
	Linger *time.Duration
}

// DefaultBatchRecords is the batch size of a batch block without
// max_records: the pipeline's default (pipeline.StageBatch).
const DefaultBatchRecords = pipeline.DefaultStageBatchRecords

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 << 10

// MemoryLimitPages returns MemoryLimit in WebAssembly pages.
func (p *Plugin) MemoryLimitPages() uint32 { return uint32(p.MemoryLimit / pageSize) }
