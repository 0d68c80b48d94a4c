package config

import (
	"context"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// Consumer is a consumer block: the consume-side plugins that `kpipe
// consume --config` (and pipeline.Consumer) runs on the records it reads,
// and where it reads them. The kafka block's brokers and client_id apply to
// it; its producer settings do not.
//
//	consumer "payments" {
//	  topics = ["payments"]
//	  start  = "earliest"
//
//	  value_deserializer { module = "plugins/unwrap.wasm" }
//	  interceptor "mask" {
//	    module     = "plugins/mask.wasm"
//	    on_failure = "fail"
//	  }
//	}
type Consumer struct {
	// Name is the block label, unique among the consumer blocks.
	Name string
	// Topics are the topics to read; empty means the command line names
	// them (kpipe consume --topic).
	Topics []string
	// Group is the consumer group whose committed offsets the consumer
	// starts from and commits to (group.id); "" reads without a group.
	Group string
	// Start is where a partition without a committed offset is read from
	// (auto.offset.reset): "earliest" or "latest"; "" keeps the command's
	// default (latest, or earliest with --from-beginning).
	Start string
	// Isolation is "read_committed" or "read_uncommitted"
	// (isolation.level); "" keeps the command's default.
	Isolation string
	// KeyDeserializer and ValueDeserializer are nil when the block is
	// absent: keys and values stay as they were fetched.
	KeyDeserializer, ValueDeserializer *Plugin
	// Interceptors are the consume interceptors, in order (Kind
	// plugins.KindConsumeInterceptor).
	Interceptors []*Plugin
	// CircuitBreaker is the default circuit breaker of the interceptors,
	// or nil for the consumer's default (threshold 10, cooldown 10s).
	CircuitBreaker *CircuitBreaker
	// DefRange is the position of the block header, for diagnostics.
	DefRange hcl.Range
}

var consumerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "topics"},
		{Name: "group"},
		{Name: "start"},
		{Name: "isolation"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "interceptor", LabelNames: []string{"name"}},
		{Type: "key_deserializer"},
		{Type: "value_deserializer"},
		{Type: "circuit_breaker"},
	},
}

// consumer decodes consumer block b.
func (d *decoder) consumer(b *hcl.Block) *Consumer {
	c := &Consumer{Name: b.Labels[0], DefRange: b.DefRange}
	content, diags := b.Body.Content(consumerSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	if attr, ok := a["topics"]; ok {
		if list, ok := d.stringList(attr); ok {
			for _, t := range list {
				if t == "" {
					d.errorf(attr.Expr.Range(), "Invalid topics", "A topic name must not be empty.")
					break
				}
			}
			c.Topics = list
		}
	}
	if attr, ok := a["group"]; ok {
		if s, ok := d.string(attr); ok {
			if s == "" {
				d.errorf(attr.Expr.Range(), "Invalid group", "group must not be empty; remove the attribute to read without a group.")
			}
			c.Group = s
		}
	}
	if attr, ok := a["start"]; ok {
		if s, ok := d.string(attr); ok {
			d.oneOf(attr, s, StartEarliest, StartLatest)
			c.Start = s
		}
	}
	if attr, ok := a["isolation"]; ok {
		if s, ok := d.string(attr); ok {
			d.oneOf(attr, s, "read_committed", "read_uncommitted")
			c.Isolation = s
		}
	}
	c.Interceptors = d.chainBlocks("consumer", content.Blocks, plugins.KindConsumeInterceptor, map[string]pluginSlot{
		"key_deserializer":   {plugins.KindDeserializer, &c.KeyDeserializer},
		"value_deserializer": {plugins.KindDeserializer, &c.ValueDeserializer},
	}, func(blk *hcl.Block) {
		switch blk.Type {
		case "circuit_breaker":
			c.CircuitBreaker = d.circuitBreaker(blk)
		default:
			panic("config: unhandled block type " + blk.Type)
		}
	})
	return c
}

// Consumer returns the consumer block with the given name. With an empty
// name it returns the only consumer block of a file that has exactly one.
func (c *Config) Consumer(name string) (*Consumer, error) {
	return chooseBlock(c, "consumer", c.Consumers, func(cb *Consumer) string { return cb.Name }, name)
}

// plugins returns c's plugin blocks in chain order: deserializers, then
// interceptors.
func (c *Consumer) plugins() []*Plugin {
	var out []*Plugin
	for _, pl := range []*Plugin{c.KeyDeserializer, c.ValueDeserializer} {
		if pl != nil {
			out = append(out, pl)
		}
	}
	return append(out, c.Interceptors...)
}

// ConsumerChain is the plugins of one consumer block, loaded: what a
// pipeline.Consumer is built from (Options). A caller that does not hand
// them to a consumer closes them with Close.
type ConsumerChain struct {
	// Consumer is the block the chain was loaded from.
	Consumer *Consumer
	// Plugins are in chain order: key deserializer, value deserializer,
	// interceptors; Impl is a *wasmhost.Deserializer or a
	// *wasmhost.ConsumeInterceptor.
	Plugins []LoadedPlugin
}

// LoadConsumer loads the modules of consumer block cb into host with the
// limits and config of their blocks. An error names the block
// (FILE:LINE:COL); the plugins loaded before it are closed again.
func (c *Config) LoadConsumer(ctx context.Context, cb *Consumer, host *wasmhost.Host) (*ConsumerChain, error) {
	loaded, err := loadPlugins(ctx, host, cb.plugins())
	if err != nil {
		return nil, err
	}
	return &ConsumerChain{Consumer: cb, Plugins: loaded}, nil
}

// Options returns the options of pipeline.NewConsumer and Consumer.Swap for
// the chain: the block's circuit breaker if it has one, then its plugins
// under their names, each with its on_failure policy and circuit_breaker
// block.
func (ch *ConsumerChain) Options() []pipeline.ConsumerOption {
	var opts []pipeline.ConsumerOption
	if cb := ch.Consumer.CircuitBreaker; cb != nil {
		opts = append(opts, pipeline.ConsumerCircuitBreaker(cb.Threshold, cb.Cooldown))
	}
	for _, lp := range ch.Plugins {
		b := lp.Block
		po := b.pluginOptions()
		switch b {
		case ch.Consumer.KeyDeserializer:
			opts = append(opts, pipeline.KeyDeserializer(b.Name, lp.Impl.(plugins.Deserializer), po...))
		case ch.Consumer.ValueDeserializer:
			opts = append(opts, pipeline.ValueDeserializer(b.Name, lp.Impl.(plugins.Deserializer), po...))
		default:
			opts = append(opts, pipeline.ConsumeInterceptor(b.Name, lp.Impl.(plugins.ConsumeInterceptor), po...))
		}
	}
	return opts
}

// Close closes the chain's plugins. Only a chain that was not handed to a
// consumer is closed this way: a consumer owns the plugins it is given.
func (ch *ConsumerChain) Close(ctx context.Context) error {
	return closePlugins(ctx, ch.Plugins)
}

// checkConsumers is CheckModules for the consumer blocks named (every one
// when names is empty; "" names the only consumer of a file that has one).
func (c *Config) checkConsumers(ctx context.Context, host *wasmhost.Host, prior *LoadError, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, cb := range c.Consumers {
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool {
			return n == cb.Name || n == "" && len(c.Consumers) == 1 && len(c.Pipelines) == 0
		}) {
			continue
		}
		for _, pl := range cb.plugins() {
			if d := checkModule(ctx, host, pl, prior); d != nil {
				diags = append(diags, d)
			}
		}
	}
	return diags
}
