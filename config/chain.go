package config

import (
	"context"
	"errors"
	"fmt"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// Chain is the plugins of one pipeline block, loaded: what the chain of a
// pipeline.Producer is built from. Options turns it into pipeline options;
// a caller that does not hand them to a producer (a rejected reload) closes
// the plugins with Close.
type Chain struct {
	// Pipeline is the block the chain was loaded from.
	Pipeline *Pipeline
	// Plugins are in chain order: interceptors, key serializer, value
	// serializer, partitioner.
	Plugins []LoadedPlugin
}

// LoadedPlugin is one plugin block and the plugin it loaded.
type LoadedPlugin struct {
	// Block is the plugin block.
	Block *Plugin
	// Impl is the plugin: a plugins.Interceptor, plugins.Serializer or
	// plugins.Partitioner, as Block.Kind says; for a module, the
	// wasmhost view of that kind (*wasmhost.Interceptor, ...). It is nil for the built-in "bytes" serializer and "default"
	// partitioner, which are the pipeline's own (no serializer, the default
	// partitioner).
	Impl any
}

// LoadChain loads the plugins of p: built-in ones with plugins.NewSerializer
// and plugins.NewPartitioner, modules into host with the limits and config of
// their block. An error names the block (FILE:LINE:COL); the plugins loaded
// before it are closed again.
func (c *Config) LoadChain(ctx context.Context, p *Pipeline, host *wasmhost.Host) (*Chain, error) {
	loaded, err := loadPlugins(ctx, host, p.plugins())
	if err != nil {
		return nil, err
	}
	return &Chain{Pipeline: p, Plugins: loaded}, nil
}

// loadPlugins loads the plugins of blocks, in order, for LoadChain and
// LoadConsumer. An error names the block (FILE:LINE:COL); the plugins loaded
// before it are closed again.
func loadPlugins(ctx context.Context, host *wasmhost.Host, blocks []*Plugin) ([]LoadedPlugin, error) {
	var loaded []LoadedPlugin
	for i, b := range blocks {
		impl, err := b.load(ctx, host)
		if err != nil {
			_ = closePlugins(context.WithoutCancel(ctx), loaded)
			return nil, &LoadError{Block: b, Loaded: blocks[:i:i], Err: err}
		}
		loaded = append(loaded, LoadedPlugin{Block: b, Impl: impl})
	}
	return loaded, nil
}

// LoadError is the error of LoadChain, LoadConsumer and Build when a plugin
// block does not load. Its text names the block (FILE:LINE:COL).
// Config.CheckModulesAfter turns it into a diagnostic without loading the
// block again.
type LoadError struct {
	// Block is the block that did not load.
	Block *Plugin
	// Loaded are the blocks of the same chain before it, which loaded
	// (and were closed again).
	Loaded []*Plugin
	// Err is why Block did not load.
	Err error
}

func (e *LoadError) Error() string { return fmt.Sprintf("%s: %v", pos(e.Block.DefRange), e.Err) }

func (e *LoadError) Unwrap() error { return e.Err }

// closePlugins closes the loaded plugins that hold resources (modules).
func closePlugins(ctx context.Context, loaded []LoadedPlugin) error {
	var errs []error
	for _, lp := range loaded {
		if c, ok := lp.Impl.(plugins.Closer); ok {
			errs = append(errs, c.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// load creates the plugin of block b, as the kind b uses it as.
func (b *Plugin) load(ctx context.Context, host *wasmhost.Host) (any, error) {
	switch {
	case b.Builtin == plugins.SerializerBytes && b.Kind == plugins.KindSerializer,
		b.Builtin == plugins.PartitionerDefault && b.Kind == plugins.KindPartitioner:
		return nil, nil
	case b.Builtin != "" && b.Kind == plugins.KindSerializer:
		return plugins.NewSerializer(b.Builtin, b.Config)
	case b.Builtin != "" && b.Kind == plugins.KindPartitioner:
		return plugins.NewPartitioner(b.Builtin, b.Config)
	case b.Builtin != "":
		return nil, fmt.Errorf("there is no built-in %v %q", b.Kind, b.Builtin)
	}
	pl, err := loadModule(ctx, host, b)
	if err != nil {
		return nil, err
	}
	switch b.Kind {
	case plugins.KindInterceptor:
		return pl.Interceptor(), nil
	case plugins.KindSerializer:
		return pl.Serializer(), nil
	case plugins.KindConsumeInterceptor:
		return pl.ConsumeInterceptor(), nil
	case plugins.KindDeserializer:
		return pl.Deserializer(), nil
	}
	return pl.Partitioner(), nil
}

// Options returns the chain options of pipeline.New and Producer.Swap for
// the chain: the pipeline's circuit breaker if it has one, then its plugins
// in order under their names, each with its on_failure policy and
// circuit_breaker block.
func (ch *Chain) Options() []pipeline.Option {
	var opts []pipeline.Option
	if cb := ch.Pipeline.CircuitBreaker; cb != nil {
		opts = append(opts, pipeline.CircuitBreaker(cb.Threshold, cb.Cooldown))
	}
	p := ch.Pipeline
	for _, lp := range ch.Plugins {
		b := lp.Block
		po := b.pluginOptions()
		switch {
		case b.Kind == plugins.KindInterceptor:
			opts = append(opts, pipeline.Interceptor(b.Name, lp.Impl.(plugins.Interceptor), po...))
		case lp.Impl == nil && b.Kind == plugins.KindSerializer:
			// The built-in "bytes": no serializer.
		case b == p.KeySerializer:
			opts = append(opts, pipeline.KeySerializer(b.Name, lp.Impl.(plugins.Serializer), po...))
		case b == p.ValueSerializer:
			opts = append(opts, pipeline.ValueSerializer(b.Name, lp.Impl.(plugins.Serializer), po...))
		case b == p.Partitioner:
			// A nil partitioner (the built-in "default") is the pipeline's own.
			part, _ := lp.Impl.(plugins.Partitioner)
			opts = append(opts, pipeline.Partitioner(b.Name, part, po...))
		}
	}
	return opts
}

// Close closes the chain's plugins that hold resources (modules). Only a
// chain that was not handed to a producer is closed this way: a producer
// owns the plugins it is given.
func (ch *Chain) Close(ctx context.Context) error {
	return closePlugins(ctx, ch.Plugins)
}
