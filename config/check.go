package config

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/wasmhost"
)

// CheckModules loads the WASM modules of the pipelines and consumer blocks
// named (of every one when none is named; "" names the only pipeline of a
// file that has one, or its only consumer if it has no pipeline) into host, each as the kind its block uses it as and with its block's
// limits and config, and reports each one that fails to load (not a valid
// module, a kind it does not implement, a missing export, an unknown import,
// a failing kpipe_init...) at its module attribute. Blocks whose config or
// limits have errors are not loaded: those errors are reported already, and
// loading with wrong settings would only add errors that follow from them.
// A failure that only the
// block's memory_limit or timeout causes (the module loads without it) is
// reported at that attribute instead. Each plugin is closed again once it
// loaded.
//
// What a plugin logs or writes while it is checked is not passed on (run
// loads it again, and would print it twice); when it fails, the first line it
// wrote to stderr or logged as a warning or error ends the diagnostic, since
// that is where a guest runtime says why it died.
func (c *Config) CheckModules(ctx context.Context, host *wasmhost.Host, pipelines ...string) hcl.Diagnostics {
	return c.checkModules(ctx, host, nil, pipelines)
}

// CheckModulesAfter is CheckModules once a LoadChain, LoadConsumer or Build
// of c has failed with err. When err is a *LoadError, the blocks that
// loaded before the one it names are not loaded again, nor is that block
// if its load overran its time limit (it would take as long again): it is
// reported from err. The blocks after it are loaded, to report every
// module that fails at once. With any other err it is CheckModules.
func (c *Config) CheckModulesAfter(ctx context.Context, host *wasmhost.Host, err error, pipelines ...string) hcl.Diagnostics {
	var le *LoadError
	errors.As(err, &le)
	return c.checkModules(ctx, host, le, pipelines)
}

func (c *Config) checkModules(ctx context.Context, host *wasmhost.Host, prior *LoadError, pipelines []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range c.Pipelines {
		if !selected(c, p, pipelines) {
			continue
		}
		for _, pl := range p.plugins() {
			if d := checkModule(ctx, host, pl, prior); d != nil {
				diags = append(diags, d)
			}
		}
	}
	return append(diags, c.checkConsumers(ctx, host, prior, pipelines)...)
}

// selected reports whether CheckModules checks p when asked for names.
func selected(c *Config, p *Pipeline, names []string) bool {
	if len(names) == 0 {
		return true
	}
	return slices.ContainsFunc(names, func(n string) bool {
		return n == p.Name || n == "" && len(c.Pipelines) == 1
	})
}

// plugins returns p's plugin blocks in pipeline order.
func (p *Pipeline) plugins() []*Plugin {
	out := slices.Clone(p.Interceptors)
	for _, pl := range []*Plugin{p.KeySerializer, p.ValueSerializer, p.Partitioner} {
		if pl != nil {
			out = append(out, pl)
		}
	}
	return out
}

// checkModule loads p's module, if it has one, and returns the diagnostic of
// its failure, or nil. A block that prior (if not nil) names or says loaded
// is not loaded again.
func checkModule(ctx context.Context, host *wasmhost.Host, p *Plugin, prior *LoadError) *hcl.Diagnostic {
	if p == nil || p.Module == "" || p.settingErrors {
		return nil // nothing to load, or reported by Parse
	}
	if fi, err := os.Stat(p.Module); err != nil || fi.IsDir() {
		return nil // reported by Parse
	}
	var said string
	var err error
	switch {
	case prior != nil && p == prior.Block && errors.Is(prior.Err, context.DeadlineExceeded):
		// Loading it again would take as long again; a quicker
		// failure is loaded again for what the plugin says.
		err = prior.Err
	case prior != nil && slices.Contains(prior.Loaded, p):
		return nil
	default:
		said, err = tryLoad(ctx, host, p, p.loadOptions())
	}
	if err == nil {
		return nil
	}
	detail := err.Error()
	if said != "" {
		detail += fmt.Sprintf("; the plugin said: %s", said)
	}
	rng := p.ModuleRange
	summary := "Cannot load module"
	// A limit that is the only cause is the thing to change: say so there.
	for _, limit := range []string{"memory_limit", "timeout"} {
		at, set := p.limitRanges[limit]
		if !set {
			continue
		}
		without := *p
		switch limit {
		case "memory_limit":
			without.MemoryLimit = 0
		case "timeout":
			without.Timeout = nil
		}
		if _, err := tryLoad(ctx, host, p, without.loadOptions()); err == nil {
			rng, summary = at, "Limit too small for this module"
			detail = fmt.Sprintf("the module loads with the default %s, but not with this one: %s", limit, detail)
			break
		}
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rng}
}

// tryLoad loads p with opts and closes it again. If that fails it returns,
// with the error, the first line the plugin wrote on stderr or logged as a
// warning or error.
func tryLoad(ctx context.Context, host *wasmhost.Host, p *Plugin, opts []wasmhost.PluginOption) (string, error) {
	var out bytes.Buffer
	quiet := hclog.New(&hclog.LoggerOptions{Output: &out, JSONFormat: true, Level: hclog.Warn})
	pl, err := host.LoadFile(ctx, p.Name, p.Module, p.Kind, append(opts, wasmhost.WithLogger(quiet))...)
	if err == nil {
		_ = pl.Close(ctx)
		return "", nil
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var line struct {
			Message string `json:"@message"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message != "" {
			return line.Message, err
		}
	}
	return "", err
}

// Check parses the configuration file at path and loads the WASM modules of
// the pipelines named, as CheckModules does; modules are loaded even when
// the file has errors elsewhere. It reports every problem at once, sorted by
// position. The Config is nil if there is any error.
//
// Check and CheckModules are the one diagnostics path of the kpipe command:
// validate calls Check; run, which loads its pipeline's modules once with
// Build, calls Check for a file with errors and CheckModules when Build
// failed, so that both print the same lines with WriteDiagnostics.
func Check(ctx context.Context, path string, host *wasmhost.Host, pipelines ...string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Load(path) // reports the read error
	}
	cfg, diags := parse(src, path)
	if cfg == nil {
		return nil, diags
	}
	diags = append(diags, cfg.CheckModules(ctx, host, pipelines...)...)
	sortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}
