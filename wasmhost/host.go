package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Host compiles and runs WebAssembly plugins. It owns the wazero runtimes,
// the compilation cache and every Plugin it loaded. One Host per process is
// the norm; it is safe for concurrent use.
type Host struct {
	logger   hclog.Logger
	cacheDir string // empty: no file cache

	mu       sync.Mutex
	closed   bool
	runtimes [2]*hostRuntime // indexed by mode
	plugins  map[*Plugin]struct{}
	// closedSuppressed sums, per plugin name, PluginStats.LogLinesSuppressed
	// of the plugins closed so far (see LogLinesSuppressed).
	closedSuppressed map[string]uint64

	// compiling counts the compilations running on the runtimes,
	// including those a load abandoned (see compile): a runtime is closed
	// only once none runs on it, since wazero's compiler does not expect
	// its runtime to close under it.
	compiling sync.WaitGroup
}

// mode selects one of the Host's two runtimes. Plugins without a call
// timeout and plugins whose module was instrumented for it use the plain
// runtime; the others (modules the instrumenter refuses) need code compiled
// with wazero's termination checks, which the rest should not pay for. See
// RATIONALE.md.
type mode int

const (
	modePlain         mode = iota // no call timeout, or an instrumented module
	modeInterruptible             // wazero's termination checks compiled in
)

// cacheSubdir names each mode's compilation cache directory. wazero's cache
// key already covers the termination checks (Module.AssignModuleID hashes
// the flag), so sharing one directory would be safe with wazero v1.12.0;
// separate directories keep it safe whatever a later wazero does.
var cacheSubdir = [...]string{modePlain: "plain", modeInterruptible: "interruptible"}

type hostRuntime struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
}

type hostConfig struct {
	logger   hclog.Logger
	cacheDir string
	noCache  bool
	dirSet   bool
}

// HostOption configures a Host.
type HostOption interface{ applyHost(*hostConfig) }

type hostOptionFunc func(*hostConfig)

func (f hostOptionFunc) applyHost(c *hostConfig) { f(c) }

// WithCompilationCacheDir keeps compiled plugins in dir, so that loading a
// plugin a second time (in this process or a later one) skips compilation.
// Each runtime mode uses its own subdirectory. The default is
// kpipe/wazero under os.UserCacheDir(); if that cannot be determined, only
// an in-memory cache is used.
func WithCompilationCacheDir(dir string) HostOption {
	return hostOptionFunc(func(c *hostConfig) { c.cacheDir, c.dirSet, c.noCache = dir, true, false })
}

// WithoutCompilationCache disables the file compilation cache: every Host
// compiles every plugin it loads.
func WithoutCompilationCache() HostOption {
	return hostOptionFunc(func(c *hostConfig) { c.noCache = true })
}

// LoggerOption is returned by WithLogger; it is both a HostOption and a
// PluginOption.
type LoggerOption struct{ logger hclog.Logger }

// WithLogger sets a logger. As a HostOption it is the logger of the Host and
// the parent of every plugin's logger; the default discards everything. As a
// PluginOption it replaces the Host's logger for one plugin. Either way the
// plugin logs with the field plugin=<name>. A plugin's logger receives its
// log calls, its stdout (info) and stderr (warn) lines, and its faults.
func WithLogger(l hclog.Logger) LoggerOption { return LoggerOption{l} }

func (o LoggerOption) applyHost(c *hostConfig)     { c.logger = o.logger }
func (o LoggerOption) applyPlugin(c *pluginConfig) { c.logger = o.logger }

// New creates a Host. Runtimes are created when the first plugin needs them.
func New(ctx context.Context, opts ...HostOption) (*Host, error) {
	cfg := hostConfig{logger: hclog.NewNullLogger()}
	for _, o := range opts {
		o.applyHost(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = hclog.NewNullLogger()
	}
	h := &Host{logger: cfg.logger, plugins: map[*Plugin]struct{}{}}
	switch {
	case cfg.noCache:
	case cfg.dirSet:
		if cfg.cacheDir == "" {
			return nil, errors.New("wasmhost: empty compilation cache directory")
		}
		h.cacheDir = cfg.cacheDir
	default:
		base, err := os.UserCacheDir()
		if err != nil {
			h.logger.Debug("no user cache directory, compiled plugins are not cached on disk", "error", err)
			break
		}
		h.cacheDir = filepath.Join(base, "kpipe", "wazero")
	}
	return h, nil
}

// runtime returns the runtime of mode m, creating it on first use.
func (h *Host) runtime(ctx context.Context, m mode) (wazero.Runtime, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if hr := h.runtimes[m]; hr != nil {
		return hr.rt, nil
	}
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(m == modeInterruptible)
	hr := &hostRuntime{}
	if h.cacheDir != "" {
		dir := filepath.Join(h.cacheDir, cacheSubdir[m])
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache %s: %w", dir, err)
		}
		hr.cache = cache
		cfg = cfg.WithCompilationCache(cache)
	}
	hr.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, hr.rt); err != nil {
		hr.close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, hr.rt); err != nil {
		hr.close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiate host module: %w", err)
	}
	h.runtimes[m] = hr
	return hr.rt, nil
}

func (hr *hostRuntime) close(ctx context.Context) error {
	err := hr.rt.Close(ctx)
	if hr.cache != nil {
		err = errors.Join(err, hr.cache.Close(ctx))
	}
	return err
}

// register records a loaded plugin so that Close can close it. It fails if
// the Host was closed meanwhile.
func (h *Host) register(p *Plugin) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	h.plugins[p] = struct{}{}
	return nil
}

func (h *Host) unregister(p *Plugin) {
	h.mu.Lock()
	if _, ok := h.plugins[p]; ok {
		delete(h.plugins, p)
		if n := p.logLimit.suppressed.Load(); n > 0 {
			if h.closedSuppressed == nil {
				h.closedSuppressed = map[string]uint64{}
			}
			h.closedSuppressed[p.name] += n
		}
	}
	h.mu.Unlock()
}

// LogLinesSuppressed returns, per plugin name, how many log lines the log
// rate limit (WithLogRateLimit) dropped, over every plugin of that name the
// Host loaded, closed ones included: the totals only grow, across reloads
// that replace a plugin by another of the same name. Names with none are
// absent.
func (h *Host) LogLinesSuppressed() map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[string]uint64, len(h.closedSuppressed))
	for name, n := range h.closedSuppressed {
		m[name] = n
	}
	for p := range h.plugins {
		if n := p.logLimit.suppressed.Load(); n > 0 {
			m[p.name] += n
		}
	}
	return m
}

// Close closes every plugin the Host loaded (waiting for their calls in
// flight, as Plugin.Close does) and then the runtimes. Later calls fail with
// ErrClosed. Close is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	ps := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		ps = append(ps, p)
	}
	h.mu.Unlock()

	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close(ctx))
	}
	// A compilation abandoned by an interrupted load may still run; the
	// runtimes close when it ends. Close waits for that while ctx lasts,
	// then leaves it to a goroutine.
	compiled := make(chan struct{})
	go func() {
		h.compiling.Wait()
		close(compiled)
	}()
	closeRuntimes := func(ctx context.Context) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		var errs []error
		for i, hr := range h.runtimes {
			if hr != nil {
				errs = append(errs, hr.close(ctx))
				h.runtimes[i] = nil
			}
		}
		return errors.Join(errs...)
	}
	select {
	case <-compiled:
		errs = append(errs, closeRuntimes(ctx))
	case <-ctx.Done():
		go func() {
			<-compiled
			closeRuntimes(context.Background())
		}()
	}
	return errors.Join(errs...)
}
