package config

import (
	"time"

	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
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
	if k.MaxBufferedBytes != 0 {
		opts = append(opts, pipeline.MaxBufferedBytes(int(k.MaxBufferedBytes)))
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
	return opts, nil
}

// Build returns the options of pipeline.New for the pipeline p of c: the
// kafka settings, p's default topic, its plugins in order and its circuit
// breaker. Built-in plugins are created with plugins.NewSerializer and
// plugins.NewPartitioner; modules are loaded into host with the limits and
// config of their block. Modules loaded before an error stay in host: close
// the host to release them.
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
	if cb := p.CircuitBreaker; cb != nil {
		opts = append(opts, pipeline.CircuitBreaker(cb.Threshold, cb.Cooldown))
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
	for _, ic := range p.Interceptors {
		pl, err := load(ctx, host, ic)
		if err != nil {
			return nil, err
		}
		i, ok := pl.(plugins.Interceptor)
		if !ok {
			return nil, fmt.Errorf("%s: interceptor %q is not an interceptor", pos(ic.DefRange), ic.Name)
		}
		opts = append(opts, pipeline.Interceptor(ic.Name, i))
	}
	for _, s := range []struct {
		pl  *Plugin
		opt func(string, plugins.Serializer) pipeline.Option
	}{{p.KeySerializer, pipeline.KeySerializer}, {p.ValueSerializer, pipeline.ValueSerializer}} {
		if s.pl == nil {
			continue
		}
		var ser plugins.Serializer
		if s.pl.Builtin != "" {
			ser, err = plugins.NewSerializer(s.pl.Builtin, s.pl.Config)
		} else {
			ser, err = loadModule(ctx, host, s.pl)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos(s.pl.DefRange), err)
		}
		opts = append(opts, s.opt(s.pl.Name, ser))
	}
	if pp := p.Partitioner; pp != nil {
		var part plugins.Partitioner
		if pp.Builtin != "" {
			part, err = plugins.NewPartitioner(pp.Builtin, pp.Config)
		} else {
			part, err = loadModule(ctx, host, pp)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos(pp.DefRange), err)
		}
		opts = append(opts, pipeline.Partitioner(pp.Name, part))
	}
	return opts, nil
}

// load loads an interceptor, which is always a module.
func load(ctx context.Context, host *wasmhost.Host, p *Plugin) (any, error) {
	pl, err := loadModule(ctx, host, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pos(p.DefRange), err)
	}
	return pl, nil
}

// loadModule loads p's module as p.Kind with p's limits and config.
func loadModule(ctx context.Context, host *wasmhost.Host, p *Plugin) (*wasmhost.Plugin, error) {
	return host.LoadFile(ctx, p.Name, p.Module, p.Kind, p.loadOptions()...)
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
