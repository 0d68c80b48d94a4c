package wasmhost

import "context"

// WithContextTimeout makes a plugin with a call timeout use wazero's
// termination checks (the fallback for modules that cannot be
// instrumented), for the tests and benchmarks of that mode.
func WithContextTimeout() PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.contextTimeout = true })
}

// Instrumented reports whether the plugin's module was instrumented for
// call timeouts.
func (p *Plugin) Instrumented() bool { return p.instrumented }

// WithoutBatchHooks makes a plugin ignore the module's batch exports and
// serve batches with per-record calls.
func WithoutBatchHooks() PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.noBatch = true })
}

// SetBatchChunk sets the input size above which a batch is split into
// several calls, and returns a function that restores it.
func SetBatchChunk(n int) (restore func()) {
	old := batchChunk
	batchChunk = n
	return func() { batchChunk = old }
}

// SetConfig replaces the bytes the guest reads with config_get, for the
// instances created from now on. Not safe while the plugin is in use.
func (p *Plugin) SetConfig(config []byte) { p.config = config }

// DiscardInstance closes the instance the next call would use, so that the
// call creates a new one. The plugin must have a pool of one and no call in
// flight.
func (p *Plugin) DiscardInstance() error {
	inst, err := p.acquire(context.Background(), hookOnSend)
	if err != nil {
		return err
	}
	p.discard(inst)
	return nil
}

// WaitCompiles waits for the compilations in progress, including those a
// load abandoned.
func (h *Host) WaitCompiles() { h.compiling.Wait() }

// WithoutInstrumentation loads a plugin's module as it is, neither
// instrumented nor with wazero's termination checks: nothing can stop its
// calls. For benchmarks that measure what the instrumentation costs.
func WithoutInstrumentation() PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.plain = true })
}

// SetBeforeCompile makes f run first on the goroutine of every compilation,
// and returns a function that restores the default (nothing).
func SetBeforeCompile(f func()) (restore func()) {
	old := beforeCompile
	beforeCompile = f
	return func() { beforeCompile = old }
}
