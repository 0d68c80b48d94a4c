package config

import (
	"time"

	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/wasmhost"
)

// kafkaOptions returns the pipeline options for the settings of the kafka
// block that are set; unset settings keep the pipeline's defaults.
func (k *Kafka) kafkaOptions() ([]pipeline.Option, error) {
	var opts []pipeline.Option
	if len(k.Brokers) > 0 {
		opts = append(opts, pipeline.Brokers(k.Brokers...))
	}
	if k.ClientID != "" {
		opts = append(opts, pipeline.ClientID(k.ClientID))
	}
	if k.Acks != "" {
		a, err := pipeline.ParseAcks(k.Acks)
		if err != nil {
			return nil, err
		}
		opts = append(opts, pipeline.Acks(a))
	}
	if k.Idempotence != nil {
		opts = append(opts, pipeline.Idempotence(*k.Idempotence))
	}
	if k.TransactionalID != "" {
		opts = append(opts, pipeline.TransactionalID(k.TransactionalID))
	}
	if k.Linger != nil {
		opts = append(opts, pipeline.Linger(*k.Linger))
	}
	if k.BatchMaxBytes != 0 {
		opts = append(opts, pipeline.BatchMaxBytes(k.BatchMaxBytes))
	}
	if k.MaxRequestSize != 0 {
		opts = append(opts, pipeline.MaxRequestSize(k.MaxRequestSize))
	}
	if k.MaxBufferedRecords != 0 {
		opts = append(opts, pipeline.MaxBufferedRecords(k.MaxBufferedRecords))
	}
	if k.MaxBufferedBytes != nil {
		opts = append(opts, pipeline.MaxBufferedBytes(int(*k.MaxBufferedBytes)))
	}
	if k.Compression != "" {
		c, err := pipeline.ParseCodec(k.Compression)
		if err != nil {
			return nil, fmt.Errorf("compression: %w", err)
		}
		opts = append(opts, pipeline.Compression(c))
	}
	if k.RequestTimeout != 0 {
		opts = append(opts, pipeline.RequestTimeout(k.RequestTimeout))
	}
	if k.DeliveryTimeout != 0 {
		opts = append(opts, pipeline.DeliveryTimeout(k.DeliveryTimeout))
	}
	if k.Retries != nil {
		opts = append(opts, pipeline.Retries(*k.Retries))
	}
	if k.MaxInFlight != 0 {
		opts = append(opts, pipeline.MaxInFlight(k.MaxInFlight))
	}
	if k.PartitionerIgnoreKeys {
		opts = append(opts, pipeline.PartitionerIgnoreKeys(true))
	}
	if k.MetadataMaxAge != 0 {
		opts = append(opts, pipeline.MetadataMaxAge(k.MetadataMaxAge))
	}
	if k.MaxBlock != nil {
		opts = append(opts, pipeline.MaxBlock(*k.MaxBlock))
	}
	if conn := k.ClientOptions(); len(conn) > 0 {
		opts = append(opts, pipeline.KgoOptions(conn...))
	}
	return opts, nil
}

// Build returns the options of pipeline.New for the pipeline p of c: the
// kafka settings, p's default topic and stage batching, followed by
// ChainOptions. On an error the plugins loaded before it are closed again.
//
// Build does not set Brokers when the kafka block has none, nor a Logger.
func (c *Config) Build(ctx context.Context, p *Pipeline, host *wasmhost.Host) ([]pipeline.Option, error) {
	opts, err := c.Kafka.kafkaOptions()
	if err != nil {
		return nil, fmt.Errorf("%s: kafka: %w", c.Filename, err)
	}
	if p.Topic != "" {
		opts = append(opts, pipeline.DefaultTopic(p.Topic))
	}
	if b := p.Batch; b != nil {
		n, linger := b.MaxRecords, time.Duration(-1) // -1: the pipeline's default linger
		if n == 0 {
			n = DefaultBatchRecords
		}
		if b.Linger != nil {
			linger = *b.Linger
		}
		opts = append(opts, pipeline.StageBatch(n, linger))
	}
	chain, err := c.ChainOptions(ctx, p, host)
	if err != nil {
		return nil, err
	}
	return append(opts, chain...), nil
}

// ChainOptions loads p's plugins and returns the chain options of
// pipeline.New and pipeline.Producer.Swap (no kafka settings): the
// pipeline's circuit breaker and its plugins in order, each with its
// on_failure policy and circuit_breaker block. Built-in plugins are created
// with plugins.NewSerializer and plugins.NewPartitioner, except the
// built-in "bytes" serializer, which maps to no serializer (data is sent as
// it is), and the built-in "default" partitioner, which maps to the
// pipeline's own default. Modules are loaded into host with the limits and
// config of their block (LoadChain, then Chain.Options). On an error the
// plugins loaded before it are closed again.
func (c *Config) ChainOptions(ctx context.Context, p *Pipeline, host *wasmhost.Host) ([]pipeline.Option, error) {
	ch, err := c.LoadChain(ctx, p, host)
	if err != nil {
		return nil, err
	}
	return ch.Options(), nil
}

// pluginOptions returns the pipeline options of p's on_failure attribute
// and circuit_breaker block.
func (p *Plugin) pluginOptions() []pipeline.PluginOption {
	var opts []pipeline.PluginOption
	if p.OnFailure != 0 {
		opts = append(opts, pipeline.OnFailure(p.OnFailure))
	}
	if cb := p.CircuitBreaker; cb != nil {
		opts = append(opts, pipeline.PluginCircuitBreaker(cb.Threshold, cb.Cooldown))
	}
	return opts
}

// loadOptions returns the wasmhost options for p's config and limits; limits
// that are not set keep the host's defaults.
func (p *Plugin) loadOptions() []wasmhost.PluginOption {
	var opts []wasmhost.PluginOption
	if p.Config != nil {
		opts = append(opts, wasmhost.WithConfig(p.Config))
	}
	if p.MemoryLimit != 0 {
		opts = append(opts, wasmhost.WithMemoryLimitPages(p.MemoryLimitPages()))
	}
	if p.Timeout != nil {
		opts = append(opts, wasmhost.WithCallTimeout(*p.Timeout))
	}
	if p.LoadTimeout != nil {
		opts = append(opts, wasmhost.WithLoadTimeout(*p.LoadTimeout))
	}
	if p.PoolSize != 0 {
		opts = append(opts, wasmhost.WithPoolSize(p.PoolSize))
	}
	if p.MaxOutput != 0 {
		opts = append(opts, wasmhost.WithMaxOutputBytes(p.MaxOutput))
	}
	return opts
}

// pos formats the start of a range as FILE:LINE:COL, like diagnostics.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
