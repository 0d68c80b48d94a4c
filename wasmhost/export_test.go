package wasmhost

// WithContextTimeout makes a plugin with a call timeout use wazero's
// termination checks (the fallback for modules that cannot be
// instrumented), for the tests and benchmarks of that mode.
func WithContextTimeout() PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.contextTimeout = true })
}

// Instrumented reports whether the plugin's module was instrumented for
// call timeouts.
func (p *Plugin) Instrumented() bool { return p.instrumented }
