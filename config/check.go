package config

import (
	"context"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/wasmhost"
)

// CheckModules loads every WASM module of every pipeline into host, as the
// kind its block uses it as and with its block's limits and config, and
// reports each one that fails to load (not a valid module, a kind it does not
// implement, a missing export, an unknown import, a failing kpipe_init...) at
// its module attribute. Each plugin is closed again once it loaded.
func (c *Config) CheckModules(ctx context.Context, host *wasmhost.Host) hcl.Diagnostics {
	var diags hcl.Diagnostics
	check := func(p *Plugin) {
		if p == nil || p.Module == "" {
			return
		}
		if fi, err := os.Stat(p.Module); err != nil || fi.IsDir() {
			return // reported by Parse
		}
		pl, err := loadModule(ctx, host, p)
		if err == nil {
			_ = pl.Close(ctx)
			return
		}
		rng := p.ModuleRange
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot load module",
			Detail:   err.Error(),
			Subject:  &rng,
		})
	}
	for _, p := range c.Pipelines {
		for _, ic := range p.Interceptors {
			check(ic)
		}
		check(p.KeySerializer)
		check(p.ValueSerializer)
		check(p.Partitioner)
	}
	return diags
}

// Check is Load followed by CheckModules, except that modules are loaded even
// when the file has errors elsewhere: it reports every problem of the file
// at once, sorted by position. The Config is nil if there is any error.
func Check(ctx context.Context, path string, host *wasmhost.Host) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Load(path) // reports the read error
	}
	cfg, diags := parse(src, path)
	if cfg == nil {
		return nil, diags
	}
	diags = append(diags, cfg.CheckModules(ctx, host)...)
	sortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}
