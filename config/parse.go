package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kpipe/kpipe/internal/suggest"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// Load reads and parses the configuration file at path. See Parse.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration file",
			Detail:   err.Error(),
			Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	return Parse(src, path)
}

// Parse parses and validates a configuration. filename is used in
// diagnostics, and relative module paths are resolved against its directory.
//
// Parse reports every problem it finds, not only the first. It checks the
// syntax, unknown and missing fields, value types, durations and sizes,
// environment variables, the consistency of the kafka settings, the names of
// built-in plugins and their config, duplicate names, and that every module
// file exists. It does not load modules: see CheckModules.
//
// The returned Config is nil if and only if the diagnostics hold an error.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	cfg, diags := parse(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// parse is Parse, but returns what it could decode even when there are
// errors (nil only on syntax errors), for Check.
func parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	if diags := checkText(src, filename); diags.HasErrors() {
		return nil, diags
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, explainSyntax(src, filename, diags)
	}
	d := &decoder{ctx: evalContext(), dir: filepath.Dir(filename), diags: diags}
	cfg := d.file(file.Body, filename)
	sortDiagnostics(d.diags)
	return cfg, d.diags
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "kafka"},
		{Type: "pipeline", LabelNames: []string{"name"}},
		{Type: "consumer", LabelNames: []string{"name"}},
	},
}

var kafkaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "brokers"},
		{Name: "client_id"},
		{Name: "acks"},
		{Name: "idempotence"},
		{Name: "transactional_id"},
		{Name: "linger"},
		{Name: "batch_max_bytes"},
		{Name: "max_request_size"},
		{Name: "max_buffered_records"},
		{Name: "max_buffered_bytes"},
		{Name: "compression"},
		{Name: "request_timeout"},
		{Name: "delivery_timeout"},
		{Name: "retries"},
		{Name: "max_in_flight"},
		{Name: "partitioner_ignore_keys"},
		{Name: "metadata_max_age"},
		{Name: "max_block"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "tls"},
		{Type: "sasl"},
	},
}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "topic"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "interceptor", LabelNames: []string{"name"}},
		{Type: "key_serializer"},
		{Type: "value_serializer"},
		{Type: "partitioner"},
		{Type: "circuit_breaker"},
		{Type: "batch"},
		{Type: "source", LabelNames: []string{"type"}},
	},
}

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "module"},
		{Name: "builtin"},
		{Name: "config"},
		{Name: "memory_limit"},
		{Name: "timeout"},
		{Name: "load_timeout"},
		{Name: "pool_size"},
		{Name: "max_output"},
		{Name: "sha256"},
		{Name: "on_failure"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "circuit_breaker"},
	},
}

var batchSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_records"},
		{Name: "linger"},
	},
}

var circuitBreakerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "threshold", Required: true},
		{Name: "cooldown", Required: true},
	},
}

// The producer's defaults and limits that the cross-field rules need; they
// are pipeline.New's, which enforces the same rules without a position.
const (
	defaultBatchMaxBytes    = 1_000_012 // pipeline.BatchMaxBytes
	defaultMaxRequestSize   = 100 << 20 // pipeline.MaxRequestSize
	defaultMaxBufferedBytes = 32 << 20  // pipeline.MaxBufferedBytes
	maxInterceptors         = 64        // pipeline.New refuses more
)

// The limits franz-go's client puts on the kafka block's settings (kgo's
// config validation, which fails the client at start with no position):
// checked here so that validate reports them at the attribute, and run does
// not get past validation to fail then.
const (
	maxLinger         = time.Minute
	minRequestTimeout = 100 * time.Millisecond
	// maxRequestTimeout is the largest number of milliseconds the int32
	// timeout field of a produce request holds.
	maxRequestTimeout   = time.Duration(math.MaxInt32) * time.Millisecond
	minDeliveryTimeout  = time.Second
	minMetadataMaxAge   = 10 * time.Millisecond
	maxMetadataMaxAge   = time.Hour
	minBatchMaxBytes    = 512
	minMaxRequestSize   = 1 << 10
	maxKafkaBytes       = 1 << 30 // the largest batch and request
	maxClientIDLen      = 256
	maxTransactionIDLen = 16382
)

// maxMemoryLimit is the largest memory a plugin may have (sdk/ABI.md, 3).
const maxMemoryLimit = 32768 * pageSize

func (d *decoder) file(body hcl.Body, filename string) *Config {
	cfg := &Config{Filename: filename}
	content, diags := body.Content(rootSchema)
	d.diags = append(d.diags, diags...)

	var kafkaSeen *hcl.Block
	pipelines, consumers := map[string]*hcl.Block{}, map[string]*hcl.Block{}
	sources := map[*Pipeline]*sourceRanges{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "kafka":
			if kafkaSeen != nil {
				d.errorf(b.DefRange, "Duplicate kafka block",
					"Only one kafka block is allowed; the first one is at %s.", kafkaSeen.DefRange)
				continue
			}
			kafkaSeen = b
			cfg.Kafka.DefRange = b.DefRange
			d.kafka(b.Body, &cfg.Kafka)
		case "pipeline":
			if d.uniqueName("pipeline", b, pipelines) {
				cfg.Pipelines = append(cfg.Pipelines, d.pipeline(b, sources))
			}
		case "consumer":
			if d.uniqueName("consumer", b, consumers) {
				cfg.Consumers = append(cfg.Consumers, d.consumer(b))
			}
		}
	}
	var firstSource *Pipeline
	for _, p := range cfg.Pipelines {
		if p.Source != nil {
			d.checkSource(cfg, p, sources[p])
			if firstSource == nil {
				firstSource = p
			}
		}
	}
	if firstSource != nil {
		d.checkKafkaForSources(firstSource)
	}
	if len(cfg.Pipelines) == 0 && len(cfg.Consumers) == 0 && !d.diags.HasErrors() {
		d.errorf(body.MissingItemRange(), "No pipeline", `The configuration must define at least one pipeline "NAME" block.`)
	}
	return cfg
}

// uniqueName checks the name label of b, a pipeline or consumer block (what
// names the type), against the names of the blocks of its type before it
// (seen, to which it adds b). A duplicate is reported and false returned:
// the block is not decoded. An empty name is reported too.
func (d *decoder) uniqueName(what string, b *hcl.Block, seen map[string]*hcl.Block) bool {
	name := b.Labels[0]
	if first, dup := seen[name]; dup {
		d.errorf(b.LabelRanges[0], "Duplicate "+what+" name",
			"A %s named %q is already defined at %s.", what, name, first.DefRange)
		return false
	}
	seen[name] = b
	if name == "" {
		d.errorf(b.LabelRanges[0], "Invalid "+what+" name", "A %s name must not be empty.", what)
	}
	return true
}

func (d *decoder) kafka(body hcl.Body, k *Kafka) {
	content, diags := body.Content(kafkaSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes

	d.kafkaAttrs = a
	k.TLS, k.SASL = d.security("kafka", content.Blocks)
	if attr, ok := a["brokers"]; ok {
		if list, ok := d.brokerList(attr); ok {
			if len(list) == 0 && d.isList(attr) {
				// An empty string is no brokers, which is what
				// env("KAFKA_BROKERS", "") gives when the variable is
				// unset; a list with no broker in it ([], [""]) is a
				// slip.
				d.errorf(attr.Expr.Range(), "Empty brokers",
					`The brokers list names no broker. For kpipe's embedded broker, remove the brokers attribute, or write brokers = env("KAFKA_BROKERS", "") to choose when kpipe starts: the embedded broker while KAFKA_BROKERS is unset or empty.`)
			}
			k.Brokers = list
		}
	}
	if attr, ok := a["client_id"]; ok {
		k.ClientID, _ = d.stringMax(attr, maxClientIDLen)
	}
	if attr, ok := a["acks"]; ok {
		if s, ok := d.string(attr); ok {
			if level, err := pipeline.ParseAcks(s); err != nil {
				d.errorf(attr.Expr.Range(), "Invalid acks", "%s.%s", err, suggest.Hint(s, pipeline.AckNames(), "%q"))
			} else {
				k.Acks = level.String()
			}
		}
	}
	if attr, ok := a["idempotence"]; ok {
		if b, ok := d.bool(attr); ok {
			k.Idempotence = &b
		}
	}
	if attr, ok := a["transactional_id"]; ok {
		if id, ok := d.stringMax(attr, maxTransactionIDLen); ok {
			if id == "" {
				d.errorf(attr.Expr.Range(), "Invalid transactional_id",
					"transactional_id must not be empty (brokers refuse an empty one); remove the attribute for a producer that is not transactional.")
			}
			k.TransactionalID = id
		}
	}
	if attr, ok := a["linger"]; ok {
		if v, ok := d.durationWithin(attr, true, 0, maxLinger); ok {
			k.Linger = &v
		}
	}
	if attr, ok := a["batch_max_bytes"]; ok {
		if v, ok := d.size(attr, minBatchMaxBytes, maxKafkaBytes); ok {
			k.BatchMaxBytes = int32(v)
		}
	}
	if attr, ok := a["max_request_size"]; ok {
		if v, ok := d.size(attr, minMaxRequestSize, maxKafkaBytes); ok {
			k.MaxRequestSize = int32(v)
		}
	}
	if attr, ok := a["max_buffered_records"]; ok {
		if v, ok := d.int(attr, 1, 1<<31-1); ok {
			k.MaxBufferedRecords = v
		}
	}
	if attr, ok := a["max_buffered_bytes"]; ok {
		if v, ok := d.size(attr, 0, 1<<62); ok {
			n := int64(v)
			k.MaxBufferedBytes = &n
		}
	}
	if attr, ok := a["compression"]; ok {
		if s, ok := d.string(attr); ok {
			if d.oneOf(attr, s, pipeline.CodecNames()...) {
				k.Compression = s
			}
		}
	}
	if attr, ok := a["request_timeout"]; ok {
		k.RequestTimeout, _ = d.durationWithin(attr, false, minRequestTimeout, maxRequestTimeout)
	}
	if attr, ok := a["delivery_timeout"]; ok {
		k.DeliveryTimeout, _ = d.durationWithin(attr, false, minDeliveryTimeout, math.MaxInt64)
	}
	if attr, ok := a["retries"]; ok {
		if v, ok := d.int(attr, 0, 1<<31-1); ok {
			k.Retries = &v
		}
	}

	if attr, ok := a["max_in_flight"]; ok {
		if v, ok := d.int(attr, 1, 1<<20); ok {
			k.MaxInFlight = v
		}
	}
	if attr, ok := a["partitioner_ignore_keys"]; ok {
		k.PartitionerIgnoreKeys, _ = d.bool(attr)
	}
	if attr, ok := a["metadata_max_age"]; ok {
		k.MetadataMaxAge, _ = d.durationWithin(attr, false, minMetadataMaxAge, maxMetadataMaxAge)
	}
	if attr, ok := a["max_block"]; ok {
		if v, ok := d.duration(attr, true); ok {
			k.MaxBlock = &v
		}
	}

	// Cross-field rules, reported at the attribute that breaks them.
	batch, request := int64(defaultBatchMaxBytes), int64(defaultMaxRequestSize)
	if k.BatchMaxBytes != 0 {
		batch = int64(k.BatchMaxBytes)
	}
	if k.MaxRequestSize != 0 {
		request = int64(k.MaxRequestSize)
	}
	if batch > request {
		at, what := a["batch_max_bytes"], "its default"
		if at == nil {
			at = a["max_request_size"]
		}
		if a["max_request_size"] != nil {
			what = "max_request_size at " + a["max_request_size"].Expr.Range().String()
		}
		d.errorf(at.Expr.Range(), "Batch larger than a request",
			"batch_max_bytes (%s) must not be larger than max_request_size (%s, %s): a batch is sent in one produce request.",
			formatSize(uint64(batch)), formatSize(uint64(request)), what)
	}
	// The idempotence rules are pipeline.CheckIdempotence's.
	acks := pipeline.AcksAll
	if k.Acks != "" {
		acks, _ = pipeline.ParseAcks(k.Acks)
	}
	err := pipeline.CheckIdempotence(acks, k.Idempotence, k.TransactionalID)
	if errors.Is(err, pipeline.ErrIdempotenceNeedsAcksAll) {
		d.errorf(a["idempotence"].Range, "Idempotence needs acks = \"all\"",
			"Idempotent writes require acks = \"all\", but acks is %q (at %s). Set idempotence = false, or acks = \"all\".",
			k.Acks, a["acks"].Expr.Range())
	}
	if errors.Is(err, pipeline.ErrTransactionNeedsIdempotence) {
		d.errorf(a["idempotence"].Range, "Transactions need idempotence",
			"A transactional producer (transactional_id at %s) must be idempotent; remove idempotence = false.",
			a["transactional_id"].Expr.Range())
	}
	if k.MaxInFlight != 0 && errors.Is(pipeline.CheckMaxInFlight(k.MaxInFlight, pipeline.Idempotent(acks, k.Idempotence)), pipeline.ErrMaxInFlightIdempotent) {
		d.errorf(a["max_in_flight"].Expr.Range(), "max_in_flight needs idempotence = false",
			"With idempotence (on by default with acks = \"all\"), franz-go always keeps 5 requests in flight per broker and keeps records in order across retries; max_in_flight = %d takes effect only with idempotence = false.",
			k.MaxInFlight)
	}
	// A batch_max_bytes already refused above is not refused again here.
	if k.MaxBufferedBytes == nil && a["max_buffered_bytes"] == nil && batch > defaultMaxBufferedBytes && batch <= request {
		d.errorf(a["batch_max_bytes"].Expr.Range(), "max_buffered_bytes below batch_max_bytes",
			"batch_max_bytes (%s), the largest record, must fit in the client's buffer, max_buffered_bytes (its default, %s); set max_buffered_bytes to at least batch_max_bytes, or to 0 for no byte limit.",
			formatSize(uint64(batch)), formatSize(defaultMaxBufferedBytes))
	}
	if k.MaxBufferedBytes != nil && *k.MaxBufferedBytes != 0 {
		if *k.MaxBufferedBytes < batch {
			d.errorf(a["max_buffered_bytes"].Expr.Range(), "max_buffered_bytes below batch_max_bytes",
				"max_buffered_bytes (%d) must be at least batch_max_bytes (%d), the largest record; 0 means no byte limit.",
				*k.MaxBufferedBytes, batch)
		}
	}
	if errors.Is(err, pipeline.ErrTransactionNeedsAcksAll) {
		d.errorf(a["acks"].Range, "Transactions need acks = \"all\"",
			"A transactional producer (transactional_id at %s) must use acks = \"all\".",
			a["transactional_id"].Expr.Range())
	}
}

func (d *decoder) pipeline(b *hcl.Block, sources map[*Pipeline]*sourceRanges) *Pipeline {
	p := &Pipeline{Name: b.Labels[0], DefRange: b.DefRange}
	content, diags := b.Body.Content(pipelineSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["topic"]; ok {
		if s, ok := d.string(attr); ok {
			if s == "" {
				d.errorf(attr.Expr.Range(), "Invalid topic", "topic must not be empty; remove the attribute to have no default topic.")
			}
			p.Topic = s
		}
	}
	p.Interceptors = d.chainBlocks("pipeline", content.Blocks, plugins.KindInterceptor, map[string]pluginSlot{
		"key_serializer":   {plugins.KindSerializer, &p.KeySerializer},
		"value_serializer": {plugins.KindSerializer, &p.ValueSerializer},
		"partitioner":      {plugins.KindPartitioner, &p.Partitioner},
	}, func(blk *hcl.Block) {
		switch blk.Type {
		case "circuit_breaker":
			p.CircuitBreaker = d.circuitBreaker(blk)
		case "batch":
			p.Batch = d.batch(blk)
		case "source":
			if src, rg := d.source(blk); src != nil {
				p.Source, sources[p] = src, rg
			}
		default:
			panic("config: unhandled block type " + blk.Type)
		}
	})
	return p
}

// pluginSlot is where chainBlocks stores the plugin of a block that names
// one plugin of a chain (key_serializer, value_deserializer, ...), and its
// kind.
type pluginSlot struct {
	kind plugins.Kind
	dst  **Plugin
}

// chainBlocks decodes the blocks of a pipeline or consumer block (owner
// names it in errors), in order. It returns the interceptor blocks, decoded
// as plugins of kind interceptor: each has a name of its own, not empty,
// and there are at most maxInterceptors. Every other block may appear once:
// the plugin blocks of slots are decoded into their slot, and the rest are
// handed to other.
func (d *decoder) chainBlocks(owner string, blocks hcl.Blocks, interceptor plugins.Kind, slots map[string]pluginSlot, other func(*hcl.Block)) []*Plugin {
	var out []*Plugin
	names := map[string]*hcl.Block{}
	single := map[string]*hcl.Block{}
	for _, blk := range blocks {
		if blk.Type != "interceptor" {
			if first, dup := single[blk.Type]; dup {
				d.errorf(blk.DefRange, "Duplicate "+blk.Type+" block",
					"A %s has at most one %s block; the first one is at %s.", owner, blk.Type, first.DefRange)
				continue
			}
			single[blk.Type] = blk
			if slot, ok := slots[blk.Type]; ok {
				*slot.dst = d.plugin(blk, slot.kind, "")
			} else {
				other(blk)
			}
			continue
		}
		name := blk.Labels[0]
		if first, dup := names[name]; dup {
			d.errorf(blk.LabelRanges[0], "Duplicate interceptor name",
				"An interceptor named %q is already defined in this %s at %s.", name, owner, first.DefRange)
			continue
		}
		names[name] = blk
		if len(names) == maxInterceptors+1 {
			d.errorf(blk.DefRange, "Too many interceptors",
				"A %s has at most %d interceptors; this is interceptor %d.", owner, maxInterceptors, len(names))
		}
		if name == "" {
			d.errorf(blk.LabelRanges[0], "Invalid interceptor name", "An interceptor name must not be empty.")
		}
		if pl := d.plugin(blk, interceptor, name); pl != nil {
			out = append(out, pl)
		}
	}
	return out
}

func (d *decoder) plugin(b *hcl.Block, kind plugins.Kind, name string) *Plugin {
	p := &Plugin{Name: name, Kind: kind, DefRange: b.DefRange}
	content, diags := b.Body.Content(pluginSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes

	modAttr, hasMod := a["module"]
	bltAttr, hasBlt := a["builtin"]
	switch {
	case hasMod && hasBlt:
		d.errorf(bltAttr.Range, "Conflicting plugin source",
			"A %s block names either a module or a builtin, not both (module is at %s).", b.Type, modAttr.Range)
		// Which one was meant is unknown: checking either (the module's
		// file and load, the builtin's name and config) would only add
		// errors about a source that may not be wanted.
		hasMod, hasBlt = false, false
	case !hasMod && !hasBlt:
		d.errorf(b.DefRange, "Missing plugin source",
			`A %s block needs either module = "path/to/plugin.wasm" or builtin = "NAME".`, b.Type)
	}
	if hasMod {
		p.ModuleRange = modAttr.Expr.Range()
		if s, ok := d.string(modAttr); ok {
			d.module(p, modAttr, s)
		}
	}
	// Errors in what loading a module uses make loading it pointless:
	// CheckModules skips the block then.
	before := len(d.diags.Errs())
	cfgAttr, hasCfg := a["config"]
	if hasCfg {
		p.Config, _ = d.json(cfgAttr)
	}
	if hasBlt {
		if s, ok := d.string(bltAttr); ok {
			p.Builtin = s
			if p.Name == "" {
				p.Name = s
			}
			switch err := checkBuiltin(kind, s, nil); {
			case err != nil:
				d.errorf(bltAttr.Expr.Range(), "Invalid builtin", "%s.%s", err, suggest.Hint(s, builtinNames(kind), "%q"))
			case hasCfg && checkBuiltin(kind, s, p.Config) != nil:
				d.errorf(cfgAttr.Range, "Not allowed with a builtin",
					"builtin %q takes no config; remove the config attribute.", s)
			}
		}
		// Limits, failure policy and pins govern WASM modules only.
		for _, n := range []string{"memory_limit", "timeout", "load_timeout", "pool_size", "max_output", "sha256"} {
			if attr, ok := a[n]; ok {
				d.errorf(attr.Range, "Not allowed with a builtin",
					"%s applies to WASM modules only; builtin %q runs natively.", n, p.Builtin)
			}
		}
	}
	if attr, ok := a["sha256"]; ok && hasMod {
		d.pin(p, attr)
	}
	p.limitRanges = map[string]hcl.Range{}
	for _, n := range []string{"memory_limit", "timeout"} {
		if attr, ok := a[n]; ok {
			p.limitRanges[n] = attr.Expr.Range()
		}
	}
	if attr, ok := a["memory_limit"]; ok {
		if v, ok := d.size(attr, pageSize, maxMemoryLimit); ok {
			if v%pageSize != 0 {
				d.errorf(attr.Expr.Range(), "Invalid memory_limit",
					"memory_limit must be a multiple of the 64KiB WebAssembly page size, got %d bytes.", v)
			} else {
				p.MemoryLimit = v
			}
		}
	}
	if attr, ok := a["timeout"]; ok {
		if v, ok := d.duration(attr, true); ok {
			p.Timeout = &v
		}
	}
	if attr, ok := a["load_timeout"]; ok {
		if v, ok := d.duration(attr, true); ok {
			p.LoadTimeout = &v
		}
	}
	if attr, ok := a["pool_size"]; ok {
		p.PoolSize, _ = d.int(attr, 1, 4096)
	}
	if attr, ok := a["max_output"]; ok {
		if v, ok := d.size(attr, 1, 1<<31-1); ok {
			p.MaxOutput = int(v)
		}
	}
	p.settingErrors = len(d.diags.Errs()) > before
	if attr, ok := a["on_failure"]; ok {
		if s, ok := d.string(attr); ok {
			f, err := pipeline.ParseFailurePolicy(s)
			if err == nil {
				err = pipeline.CheckFailurePolicy(kind, f)
			}
			if err != nil {
				allowed := failurePolicies(kind)
				d.errorf(attr.Expr.Range(), "Invalid on_failure", "%s: on_failure must be %s, not %q.%s",
					b.Type, suggest.Quoted(allowed), s, suggest.Hint(s, allowed, "%q"))
			} else {
				p.OnFailure = f
			}
		}
	}
	var first hcl.Range
	for _, blk := range content.Blocks {
		if p.CircuitBreaker != nil {
			d.errorf(blk.DefRange, "Duplicate circuit_breaker block", "A plugin block has at most one circuit_breaker block; the first one is at %s.", first)
			continue
		}
		if kind == plugins.KindSerializer {
			d.errorf(blk.DefRange, "Not allowed in a serializer",
				"Serializers have no circuit breaker: a record a serializer cannot serialize always fails.")
			continue
		}
		if kind == plugins.KindDeserializer {
			d.errorf(blk.DefRange, "Not allowed in a deserializer",
				"Deserializers have no circuit breaker: a record a deserializer cannot read fails or is filtered (on_failure).")
			continue
		}
		p.CircuitBreaker, first = d.circuitBreaker(blk), blk.DefRange
	}
	return p
}

func (d *decoder) module(p *Plugin, attr *hcl.Attribute, path string) {
	if path == "" {
		d.errorf(attr.Expr.Range(), "Invalid module", "module must not be empty.")
		return
	}
	path, ok := d.filePath(attr, path)
	if !ok {
		return
	}
	p.Module = path
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(p.Module), ".wasm")
	}
	fi, err := os.Stat(p.Module)
	switch {
	case err != nil:
		detail := err.Error()
		if os.IsNotExist(err) {
			detail = fmt.Sprintf("%s does not exist (relative module paths are resolved against the directory of the configuration file).", p.Module)
		}
		d.errorf(attr.Expr.Range(), "Module not found", "%s", detail)
	case fi.IsDir():
		d.errorf(attr.Expr.Range(), "Module not found", "%s is a directory, not a WASM module.", p.Module)
	default:
		sum, err := fileSHA256(p.Module)
		if err != nil {
			d.errorf(attr.Expr.Range(), "Cannot read module", "%s", err)
			return
		}
		p.ModuleSHA256 = sum
	}
}

// filePath resolves path, the value of attr, as every path in a
// configuration file is: relative to the file's directory, with a leading ~
// for the current user's home (a shell expands ~ on a command line but not
// inside a configuration file's strings; ~user is left as it is).
func (d *decoder) filePath(attr *hcl.Attribute, path string) (string, bool) {
	if rest, ok := strings.CutPrefix(path, "~"); ok && (rest == "" || rest[0] == '/' || rest[0] == filepath.Separator) {
		home, err := os.UserHomeDir()
		if err != nil {
			d.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s starts with ~, and the home directory is not known: %s.", path, err)
			return "", false
		}
		path = home + rest
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(d.dir, path)
	}
	return filepath.Clean(path), true
}

// pin decodes a module block's sha256 attribute and checks the module
// against it (module runs first and hashed the file).
func (d *decoder) pin(p *Plugin, attr *hcl.Attribute) {
	s, ok := d.string(attr)
	if !ok {
		return
	}
	if len(s) != sha256.Size*2 || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		d.errorf(attr.Expr.Range(), "Invalid sha256",
			"sha256 must be the 64 hexadecimal digits of the module's SHA-256 (sha256sum prints them), got %q.", s)
		return
	}
	p.PinnedSHA256 = strings.ToLower(s)
	if p.ModuleSHA256 != "" && p.ModuleSHA256 != p.PinnedSHA256 {
		d.errorf(attr.Expr.Range(), "Module does not match its sha256",
			"%s has SHA-256 %s, but the block pins %s: the module is not the one this configuration was written for.",
			p.Module, p.ModuleSHA256, p.PinnedSHA256)
	}
}

// maxBatchRecords bounds a batch block's max_records: a batch is encoded into
// one guest buffer, and larger batches gain nothing.
const maxBatchRecords = 1 << 16

func (d *decoder) batch(b *hcl.Block) *Batch {
	bt := &Batch{}
	content, diags := b.Body.Content(batchSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["max_records"]; ok {
		bt.MaxRecords, _ = d.int(attr, 1, maxBatchRecords)
	}
	if attr, ok := content.Attributes["linger"]; ok {
		if v, ok := d.duration(attr, true); ok {
			bt.Linger = &v
		}
	}
	return bt
}

func (d *decoder) circuitBreaker(b *hcl.Block) *CircuitBreaker {
	cb := &CircuitBreaker{}
	content, diags := b.Body.Content(circuitBreakerSchema)
	d.diags = append(d.diags, diags...)
	if attr, ok := content.Attributes["threshold"]; ok {
		cb.Threshold, _ = d.int(attr, 0, 1<<31-1)
	}
	if attr, ok := content.Attributes["cooldown"]; ok {
		if v, ok := d.duration(attr, true); ok && v == 0 {
			d.errorf(attr.Expr.Range(), "Invalid cooldown", "cooldown must be longer than zero.")
		} else {
			cb.Cooldown = v
		}
	}
	return cb
}

// hclUnterminatedTemplate is the summary of HCL's diagnostic for a template
// (quoted string or heredoc) that reaches the end of the file.
const hclUnterminatedTemplate = "Unterminated template string"

// explainSyntax returns the first syntax error of a file, where HCL points at
// the wrong place made right. What follows a syntax error cannot be read
// reliably, and HCL's further errors mostly repeat the first one in other
// words (an unterminated quoted string gives three), so only the first is
// kept. An unterminated heredoc is reported by HCL at the end of the file,
// as an unterminated template string; it is reported here at the <<MARKER
// that opened it, by name.
func explainSyntax(src []byte, filename string, diags hcl.Diagnostics) hcl.Diagnostics {
	diags = heredocDiagnostics(src, filename, diags)
	sortDiagnostics(diags)
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return hcl.Diagnostics{d}
		}
	}
	return diags
}

func heredocDiagnostics(src []byte, filename string, diags hcl.Diagnostics) hcl.Diagnostics {
	var rng hcl.Range
	var marker string
	found := false
	out := diags[:0:0]
	for _, d := range diags {
		if d.Summary != hclUnterminatedTemplate {
			out = append(out, d)
			continue
		}
		if !found {
			rng, marker, found = unterminatedHeredoc(src, filename)
			if !found {
				out = append(out, d)
				continue
			}
			out = append(out, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unterminated heredoc",
				Detail: fmt.Sprintf("The heredoc opened here with %s has no closing line holding only %s "+
					"(spaces before it are allowed), so it runs on to the end of the file.",
					strings.TrimSpace(string(src[rng.Start.Byte:rng.End.Byte])), marker),
				Subject: &rng,
			})
		}
		// Further diagnostics of the same unterminated template would
		// repeat it.
	}
	return out
}

// unterminatedHeredoc returns the range of the <<MARKER (or <<-MARKER) of the
// first heredoc in src that has no closing marker, and the marker.
func unterminatedHeredoc(src []byte, filename string) (hcl.Range, string, bool) {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	var open []hclsyntax.Token
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenOHeredoc:
			open = append(open, t)
		case hclsyntax.TokenCHeredoc:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	if len(open) == 0 {
		return hcl.Range{}, "", false
	}
	t := open[0]
	marker := strings.TrimSpace(strings.TrimLeft(string(t.Bytes), "<-"))
	rng := t.Range
	// The token ends after the newline; the range covers <<MARKER only.
	rng.End = hcl.Pos{Line: rng.Start.Line, Column: rng.Start.Column + len(strings.TrimRight(string(t.Bytes), "\r\n")),
		Byte: rng.Start.Byte + len(strings.TrimRight(string(t.Bytes), "\r\n"))}
	return rng, marker, true
}

// checkBroker checks a bootstrap broker address: HOST:PORT with a port from 1
// to 65535, or HOST alone (the client then uses Kafka's port, 9092).
func checkBroker(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if !strings.Contains(strings.Trim(addr, "[]"), ":") && !strings.ContainsAny(addr, " \t/") {
			return nil
		}
		return fmt.Errorf("%q is not HOST:PORT", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("%q is not HOST:PORT with a port from 1 to 65535", addr)
	}
	return nil
}
