package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
	"github.com/kpipe/kpipe/wasmhost/internal/instrument"
)

// Defaults of the plugin options.
const (
	// DefaultMemoryLimitPages is the default memory limit of an instance:
	// 1024 pages of 64 KiB, 64 MiB.
	DefaultMemoryLimitPages = 1024
	// DefaultCallTimeout is the default time limit of one hook call.
	DefaultCallTimeout = time.Second
	// DefaultMaxOutputBytes is the default limit on the size of a hook's
	// result: 16 MiB.
	DefaultMaxOutputBytes = 16 << 20
	// DefaultMinLoadTimeout is the least default load timeout: see
	// WithLoadTimeout.
	DefaultMinLoadTimeout = 5 * time.Second
)

// minCreateTimeout is the least default load timeout (see WithLoadTimeout):
// DefaultMinLoadTimeout, a variable for the tests.
var minCreateTimeout = DefaultMinLoadTimeout

// minCompileTimeout and compileTimePerMiB make the least time compilation
// may take when the load timeout is on (see WithLoadTimeout): compilation
// takes time in proportion to the module, and an uncached Go guest of 4 MiB
// took over a minute on the shared 2-core machine while other work ran.
const (
	minCompileTimeout = 2 * time.Minute
	compileTimePerMiB = 30 * time.Second
)

// compileTimeout is the least limit on compiling a module of n bytes.
func compileTimeout(n int) time.Duration {
	return minCompileTimeout + time.Duration(int64(n)*int64(compileTimePerMiB)>>20)
}

// defaultLoadTimeout is the load timeout of a plugin whose call timeout is
// d and that was given none (see WithLoadTimeout): ten times d, but at
// least minCreateTimeout. Creating an instance is not charged to the call
// that needs it: a Go guest takes milliseconds to initialise its runtime,
// far more on a loaded machine, which would fail calls under a short
// timeout.
func defaultLoadTimeout(d time.Duration) time.Duration {
	return max(10*d, minCreateTimeout)
}

// MaxTableElements bounds the tables of a plugin's instance: all its
// tables together hold at most this many elements (8 MiB of host memory at
// wazero's 8 bytes an element), whatever the guest's table.grow asks for,
// which then fails (returns -1) in the guest. A module whose tables' initial
// sizes add up to more fails to load. Real modules have tables of a few
// thousand elements (a table holds the functions called indirectly).
const MaxTableElements = 1 << 20

// maxMemoryPages is the largest guest memory the ABI allows: 2 GiB, so that
// every slice pointer is below 2^31.
const maxMemoryPages = 32768

// initialBufferSize is the capacity of the input buffer requested from each
// new instance (ABI section 3.1).
const initialBufferSize = 64 << 10

type pluginConfig struct {
	config   []byte
	poolSize int
	memPages uint32
	timeout  time.Duration
	// loadTimeout is WithLoadTimeout's limit; loadTimeoutSet says it was
	// given, else it follows the call timeout (defaultLoadTimeout).
	loadTimeout    time.Duration
	loadTimeoutSet bool
	maxOutput      uint32
	logger         hclog.Logger
	optionErrs     []error
	// inspect makes load read the kinds of a module whose first instance
	// fails to initialise (Inspect).
	inspect bool
	// file is the file the module was read from (LoadFile, InspectFile),
	// which load's errors name.
	file string
	// logRate and logBurst are WithLogRateLimit's.
	logRate  float64
	logBurst int
	// contextTimeout makes a plugin with a call timeout use wazero's
	// termination checks even if its module could be instrumented (tests
	// and benchmarks of the fallback).
	contextTimeout bool
	// plain loads the module without instrumentation or termination
	// checks, for benchmarks of what they cost (export_test.go).
	plain bool
	// noBatch makes the plugin ignore the module's batch exports, so
	// that the tests can compare the batch calls with the per-record
	// fallback on one module.
	noBatch bool
}

// PluginOption configures a Plugin.
type PluginOption interface{ applyPlugin(*pluginConfig) }

type pluginOptionFunc func(*pluginConfig)

func (f pluginOptionFunc) applyPlugin(c *pluginConfig) { f(c) }

// WithConfig sets the bytes the guest reads with config_get. kpipe's
// configuration file passes a plugin's config block as a JSON object. The
// default is empty. The slice is copied.
func WithConfig(config []byte) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.config = bytes.Clone(config) })
}

// WithPoolSize bounds the number of instances of the plugin, which is the
// number of calls that run at the same time; further calls wait for a free
// instance. The default is runtime.GOMAXPROCS(0). n must be at least 1.
func WithPoolSize(n int) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if n < 1 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("pool size %d is below 1", n))
		}
		c.poolSize = n
	})
}

// WithMemoryLimitPages limits the linear memory of each instance to n pages
// of 64 KiB; memory.grow beyond it fails in the guest (returns -1), which
// most guests turn into a trap, reported as FaultMemory. The default is
// DefaultMemoryLimitPages (64 MiB); n must be between 1 and 32768 (2 GiB,
// the ABI's maximum). A module whose initial memory exceeds the limit fails
// to load. Each instance has its own limit: a pool of 4 may use 4 times the
// limit.
func WithMemoryLimitPages(n uint32) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if n < 1 || n > maxMemoryPages {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("memory limit of %d pages is outside [1, %d]", n, maxMemoryPages))
		}
		c.memPages = n
	})
}

// WithCallTimeout limits how long one hook call may run; a call that runs
// longer is stopped and reported as FaultTimeout, and its instance replaced.
// 0 turns the limit off. The default is DefaultCallTimeout (1 s), so that an
// endless loop in a plugin cannot stall the stream.
//
// The host enforces the limit by instrumenting the module when it loads it:
// every function entry and loop header counts down a budget and, every few
// thousand checks, tests an interrupt flag that a watchdog goroutine of
// the plugin sets for a call it has seen running for the whole limit. The
// watchdog looks every eighth of the limit, but at least every 100 ms, so a
// call is stopped between the limit and the limit plus two such periods
// after it started (plus the time to its next check; a guest asleep in
// WASI, poll_oneoff with a clock, is woken within 10 ms of the stop and its
// call ends there; a guest blocked in another host function is stopped
// when it returns). Calls pay a
// few nanoseconds and no allocation for this; see BenchmarkCallTimeout and
// RATIONALE.md. Cancelling the context of a call also stops it
// (FaultCanceled), within the same period.
//
// A module the instrumenter does not fully understand (such as one using a
// WebAssembly feature it does not decode) runs instead with wazero's own
// termination checks, which cost about 2 µs and 9 allocations per call and
// slow tight loops 20 to 40 times; the plugin's logger says so at Info
// level when it loads. Modules that export a global named kpipe.interrupt
// are among them.
//
// Creating an instance (instantiating the module, running its start
// function, _initialize and kpipe_init, obtaining the input buffer), at
// Load or when a call needs a new instance, is not charged to the call: it
// has its own limit, the load timeout (WithLoadTimeout), and the call's
// time starts once the instance exists.
//
// With the limit off a call runs as long as the guest wants; cancelling
// its context still stops it (FaultCanceled) if the module could be
// instrumented.
func WithCallTimeout(d time.Duration) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if d < 0 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("call timeout %v is negative", d))
		}
		c.timeout = d
	})
}

// WithLoadTimeout limits each phase of loading the plugin: compiling the
// module (instrumentation included; at least 2 min plus 30 s per MiB of
// module, for compilation takes time in proportion to the module's size
// and a busy machine may stretch it far), and creating each of its instances,
// at Load and whenever a call needs a new one, which is instantiating the
// module and running its WebAssembly start function, _initialize,
// kpipe_init, the first kpipe_buffer and, at Load, kpipe_kinds. A phase
// that overruns it is stopped: Load fails with an error that names the
// plugin, the phase and the limit (LoadFile also names the file), and a
// call that needed the instance fails with a Fault of reason
// FaultInstantiate. Cancelling the context of Load (or of the call) stops
// any phase too, within the watchdog's period (see WithCallTimeout). 0
// turns the limit off, leaving only the context.
//
// The default is ten times the call timeout, but at least
// DefaultMinLoadTimeout (5 s), also when the call timeout is off. Guests
// that cannot be instrumented are stopped by wazero's termination checks
// (see WithCallTimeout), which cover compiled code and WASI sleeps only: a
// guest blocked in another host function is stopped when it returns. The
// one exception is a
// module that cannot be instrumented, with both this limit and the call
// timeout off: it runs unchecked, and nothing stops it.
func WithLoadTimeout(d time.Duration) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if d < 0 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("load timeout %v is negative", d))
		}
		c.loadTimeout, c.loadTimeoutSet = d, true
	})
}

// WithMaxOutputBytes limits the size of a hook's result (a record from
// kpipe_on_send, bytes from kpipe_serialize). A larger result is an invalid
// result (FaultInvalidOutput). The default is DefaultMaxOutputBytes (16 MiB);
// n must be at least 1.
func WithMaxOutputBytes(n int) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if n < 1 || int64(n) > 1<<31 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("output limit of %d bytes is outside [1, 2 GiB]", n))
		}
		c.maxOutput = uint32(n)
	})
}

// WithLogRateLimit bounds how fast the plugin's log lines reach its logger:
// its log calls and the lines it writes to stdout and stderr, all its
// instances together, may come in bursts of burst lines and then at
// perSecond lines per second. Lines beyond that are dropped and counted
// (PluginStats.LogLinesSuppressed), and the logger says how many at Warn
// level, at most once a second while the plugin goes on logging, and when
// an instance is closed. Each line is at most 4096 bytes (a longer log
// message is cut, longer output lines are split), so a plugin that floods
// its output for t seconds puts at most burst + (perSecond + 1) * t + 1
// lines of 4 KiB in the log. The
// defaults are DefaultLogLinesPerSecond (100) and DefaultLogBurst (200);
// perSecond 0 turns the limit off. Lines at levels the logger does not log
// cost nothing from the budget.
func WithLogRateLimit(perSecond float64, burst int) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if perSecond < 0 || burst < 1 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("log rate limit of %g lines/s in bursts of %d: want a rate of at least 0 and a burst of at least 1", perSecond, burst))
		}
		c.logRate, c.logBurst = perSecond, burst
	})
}

// hook identifies a hook export.
type hook uint8

// The per-record hooks come first: numHooks of them, which index the call
// counters. The optional batch hooks (ABI section 5.5) follow; batchOf maps
// a per-record hook to its batch hook.
const (
	hookOnSend hook = iota
	hookOnAck
	hookSerialize
	hookPartition
	hookOnConsume
	hookDeserialize
	numHooks

	hookOnSendBatch hook = iota - 1
	hookOnAckBatch
	hookPartitionBatch
	numAllHooks
)

var hookNames = [numAllHooks]string{abi.ExportOnSend, abi.ExportOnAck, abi.ExportSerialize, abi.ExportPartition,
	abi.ExportOnConsume, abi.ExportDeserialize,
	abi.ExportOnSendBatch, abi.ExportOnAckBatch, abi.ExportPartitionBatch}

var hookKinds = [numAllHooks]plugins.Kind{plugins.KindInterceptor, plugins.KindInterceptor, plugins.KindSerializer, plugins.KindPartitioner,
	plugins.KindConsumeInterceptor, plugins.KindDeserializer,
	plugins.KindInterceptor, plugins.KindInterceptor, plugins.KindPartitioner}

// batchOf is the batch hook of each per-record hook that has one.
var batchOf = [numHooks]hook{hookOnSend: hookOnSendBatch, hookOnAck: hookOnAckBatch, hookPartition: hookPartitionBatch}

// Plugin is a loaded plugin module: a compiled module and a bounded pool of
// its instances. Give a pipeline its typed view of the kind it was loaded
// as (Interceptor, Serializer, Partitioner, or LoadInterceptor and the
// like), which has the hooks of that kind only. The Plugin itself has every
// hook, for tools that drive a module of several kinds (kpipe plugin test);
// calling a hook of a kind the module does not declare returns an error. It
// is safe for concurrent use.
type Plugin struct {
	host    *Host
	name    string
	kinds   plugins.Kind
	config  []byte
	logger  hclog.Logger
	timeout time.Duration
	// createTimeout limits the creation of an instance: the load timeout
	// (WithLoadTimeout); 0 for none.
	createTimeout time.Duration
	maxOutput     uint32
	memLimit      uint64 // bytes
	compiled      wazero.CompiledModule
	rt            wazero.Runtime
	wantsAcks     bool // an interceptor that exports kpipe_on_ack
	// hasBatch says which per-record hooks have their batch export.
	hasBatch [numHooks]bool
	// features are the feature bits (ABI section 8) that the first
	// instance enabled; featuresFixed is set once they are known, after
	// which an instance that enables others fails to be created.
	features      uint64
	featuresFixed bool
	// logLimit is the plugin's budget of log lines (WithLogRateLimit).
	logLimit *logLimiter
	// instrumented says that the module was rewritten with interrupt
	// checks, so that calls run under the plugin's watchdog (watchdog.go)
	// rather than with wazero's termination checks. retired is closed
	// when Close has retired every slot, to stop the watchdog.
	instrumented bool
	retired      chan struct{}

	// The pool: see pool.go.
	slots     []slot
	waiters   atomic.Int32
	wake      chan struct{}
	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	stats struct {
		// One cache line per hook (and none shared with the pool
		// fields above): on_ack calls are counted on another
		// goroutine than the rest (BenchmarkProduce/wasm in package
		// pipeline; RATIONALE.md, "The pool").
		_                 [64]byte
		calls             [numHooks]paddedCounter
		batches           [numHooks]paddedCounter
		errors            [numHooks]atomic.Uint64
		faults            [numFaultReasons]atomic.Uint64
		created, replaced atomic.Uint64
	}
}

// HookCounts holds one counter per hook.
type HookCounts struct {
	OnSend, OnAck, Serialize, Partition uint64
	// OnConsume and Deserialize count the consume-side hooks (ABI v2).
	OnConsume, Deserialize uint64
}

func hookCounts(c *[numHooks]atomic.Uint64) HookCounts {
	return HookCounts{c[hookOnSend].Load(), c[hookOnAck].Load(), c[hookSerialize].Load(), c[hookPartition].Load(),
		c[hookOnConsume].Load(), c[hookDeserialize].Load()}
}

// paddedCounter is a counter alone on its cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

func paddedHookCounts(c *[numHooks]paddedCounter) HookCounts {
	return HookCounts{c[hookOnSend].Load(), c[hookOnAck].Load(), c[hookSerialize].Load(), c[hookPartition].Load(),
		c[hookOnConsume].Load(), c[hookDeserialize].Load()}
}

// PluginStats are a plugin's counters since it was loaded.
type PluginStats struct {
	// Calls counts hook calls, including failed ones, by record: a batch
	// of n records counts n calls of its per-record hook, whether it went
	// to the guest in batch calls or in single ones.
	Calls HookCounts
	// Batches counts the guest calls made through the batch exports (ABI
	// section 5.5), under the per-record hook they stand for (OnSend for
	// kpipe_on_send_batch, and so on); Serialize is always 0. Calls divided
	// by Batches is the mean number of records per batch call.
	Batches HookCounts
	// Errors counts calls that ended with a *GuestError; in batches, the
	// records that got one, and a batch call that failed as a whole with
	// KPIPE_ERROR once (its records are then re-run one at a time, and
	// those that fail alone count again).
	Errors HookCounts
	// Faults counts calls that ended with a *Fault, by reason: a fault of a
	// batch call counts once, whatever the number of its records, and each
	// fault of a record re-run alone after it counts once more. Reasons
	// that never happened are absent.
	Faults map[FaultReason]uint64
	// InstancesCreated counts instances created, including the one created
	// at load time.
	InstancesCreated uint64
	// InstancesReplaced counts instances closed after a fault.
	InstancesReplaced uint64
	// LogLinesSuppressed counts the plugin's log lines (log calls, stdout
	// and stderr lines) dropped by its log rate limit (WithLogRateLimit).
	LogLinesSuppressed uint64
}

// Stats returns a snapshot of the plugin's counters.
func (p *Plugin) Stats() PluginStats {
	s := PluginStats{
		Calls:              paddedHookCounts(&p.stats.calls),
		Batches:            paddedHookCounts(&p.stats.batches),
		Errors:             hookCounts(&p.stats.errors),
		Faults:             map[FaultReason]uint64{},
		InstancesCreated:   p.stats.created.Load(),
		InstancesReplaced:  p.stats.replaced.Load(),
		LogLinesSuppressed: p.logLimit.suppressed.Load(),
	}
	for r := range p.stats.faults {
		if n := p.stats.faults[r].Load(); n > 0 {
			s.Faults[FaultReason(r)] = n
		}
	}
	return s
}

// Name returns the name the plugin was loaded with.
func (p *Plugin) Name() string { return p.name }

// Kinds returns the kinds the module declares (kpipe_kinds).
func (p *Plugin) Kinds() plugins.Kind { return p.kinds }

// WantsAcks reports whether the plugin is an interceptor that exports
// kpipe_on_ack (optional, ABI section 2). If it does not, OnAck returns nil
// without calling into the guest, and a caller may skip building the
// acknowledgement altogether. It implements plugins.AckObserver, so the
// pipeline never calls OnAck of such a plugin.
func (p *Plugin) WantsAcks() bool { return p.wantsAcks }

var _ plugins.AckObserver = (*Plugin)(nil)

// Features returns the feature bits (sdk/ABI.md section 8) that the
// plugin's instances enabled with enable_features: the first instance, at
// Load, fixes them, and an instance that later enables a different set
// fails to be created (FaultInstantiate). Bit 0 (1) is
// KPIPE_FEATURE_PARTITION_KEY, bit 1 (2) KPIPE_FEATURE_ACK_NO_RECORD.
func (p *Plugin) Features() uint64 { return p.features }

// LoadFile reads a module from path and loads it as Load does; errors name
// the file.
func (h *Host) LoadFile(ctx context.Context, name, path string, kind plugins.Kind, opts ...PluginOption) (*Plugin, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: load plugin %q: %w", name, err)
	}
	p, _, err := h.load(ctx, name, wasm, kind, append(opts[:len(opts):len(opts)], WithFile(path)))
	return p, err
}

// WithFile names the file a module was read from, for its load errors
// (LoadFile gives it). Default: none.
func WithFile(path string) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) { c.file = path })
}

// Load compiles and validates a plugin module (sdk/ABI.md sections 3 and 6),
// creates its first instance to fail fast (running _initialize and
// kpipe_init), and returns the plugin. kind is the kind the caller will use
// it as: the module must declare it. kind 0 accepts whatever the module
// declares.
//
// Compilation happens once per module; with a compilation cache (the
// default) a module compiled by an earlier process is not compiled again.
func (h *Host) Load(ctx context.Context, name string, wasm []byte, kind plugins.Kind, opts ...PluginOption) (*Plugin, error) {
	p, _, err := h.load(ctx, name, wasm, kind, opts)
	return p, err
}

// load implements Load and Inspect. The ModuleInfo is non-nil once the
// module compiled, even when err is not nil.
func (h *Host) load(ctx context.Context, name string, wasm []byte, kind plugins.Kind, opts []PluginOption) (_ *Plugin, _ *ModuleInfo, err error) {
	cfg := pluginConfig{
		poolSize:  runtime.GOMAXPROCS(0),
		memPages:  DefaultMemoryLimitPages,
		timeout:   DefaultCallTimeout,
		maxOutput: DefaultMaxOutputBytes,
		logRate:   DefaultLogLinesPerSecond,
		logBurst:  DefaultLogBurst,
	}
	for _, o := range opts {
		o.applyPlugin(&cfg)
	}
	defer func() {
		if err == nil {
			return
		}
		what := fmt.Sprintf("load plugin %q", name)
		if cfg.inspect {
			what = "inspect module"
		}
		if cfg.file != "" {
			what += " from " + cfg.file
		}
		err = fmt.Errorf("wasmhost: %s: %w", what, err)
	}()
	if err := errors.Join(cfg.optionErrs...); err != nil {
		return nil, nil, err
	}
	if kind&^abi.AllKinds != 0 {
		return nil, nil, fmt.Errorf("unknown plugin kind %#x", uint32(kind))
	}
	if err := checkHeader(wasm); err != nil {
		return nil, nil, err
	}
	logger := cfg.logger
	if logger == nil {
		logger = h.logger
	}
	logger = logger.With("plugin", name)
	loadTimeout := cfg.loadTimeout
	if !cfg.loadTimeoutSet {
		loadTimeout = defaultLoadTimeout(cfg.timeout)
	}
	cm, rt, instrumented, err := h.compile(ctx, logger, wasm, cfg, loadTimeout)
	if err != nil {
		return nil, nil, err
	}
	info := describe(cm)
	if err := validateStatic(cm, wasm, info, cfg.memPages); err != nil {
		cm.Close(ctx)
		return nil, info, err
	}

	p := &Plugin{
		host:          h,
		name:          name,
		config:        cfg.config,
		logger:        logger,
		timeout:       cfg.timeout,
		createTimeout: loadTimeout,
		maxOutput:     cfg.maxOutput,
		logLimit:      newLogLimiter(logger, cfg.logRate, cfg.logBurst),
		memLimit:      uint64(cfg.memPages) << 16,
		compiled:      cm,
		rt:            rt,
		instrumented:  instrumented,
		slots:         make([]slot, cfg.poolSize),
		wake:          make(chan struct{}, cfg.poolSize),
		done:          make(chan struct{}),
	}
	if instrumented {
		// The watchdog already guards the calls that initialise the
		// first instance; if Load fails, it ends.
		p.retired = make(chan struct{})
		go p.watch()
		defer func() {
			if err != nil {
				p.closed.Store(true)
				close(p.retired)
			}
		}()
	}
	// The first instance fills slot 0, held until Load returns; the
	// watchdog stops its creation if ctx ends or it overruns the creation
	// limit.
	p.slots[0].held = 1<<slotSeqShift | slotBusy | slotCreating
	if d := ctx.Done(); instrumented && d != nil {
		p.slots[0].done.Store(d)
		p.slots[0].lastDone = d
	}
	p.slots[0].state.Store(p.slots[0].held)
	inst, err := p.newInstance(ctx, &p.slots[0], false)
	if err != nil {
		if cfg.inspect {
			info.InitError = err
			if early := (*earlyInitError)(nil); !errors.As(err, &early) {
				info.Kinds = p.probeKinds(ctx)
			}
		}
		cm.Close(ctx)
		return nil, info, err
	}
	p.features, p.featuresFixed = inst.features, true
	info.Features = inst.features
	// kpipe_kinds is part of loading: it runs under the load timeout.
	inst.creating = true
	kinds, err := inst.declaredKinds(ctx)
	inst.creating = false
	p.slots[0].rehold(0)
	if err == nil {
		info.Kinds = kinds
		err = validateKinds(kinds, kind, info.ABIVersion, cm.ExportedFunctions())
	}
	if err != nil {
		inst.close(ctx)
		cm.Close(ctx)
		return nil, info, err
	}
	p.kinds = kinds
	_, hasOnAck := cm.ExportedFunctions()[abi.ExportOnAck]
	p.wantsAcks = kinds&plugins.KindInterceptor != 0 && hasOnAck
	for _, h := range []hook{hookOnSend, hookOnAck, hookPartition} {
		_, p.hasBatch[h] = cm.ExportedFunctions()[hookNames[batchOf[h]]]
		p.hasBatch[h] = p.hasBatch[h] && !cfg.noBatch
	}
	p.release(inst)
	if err := h.register(p); err != nil {
		inst.close(ctx)
		cm.Close(ctx)
		return nil, info, err
	}
	return p, info, nil
}

// probeKinds asks kpipe_kinds of an instance on which kpipe_init did not
// run, in slot 0, which load holds, after the first instance failed to
// initialise. It returns 0 if even that fails.
func (p *Plugin) probeKinds(ctx context.Context) plugins.Kind {
	s := &p.slots[0]
	s.rehold(slotCreating)
	inst, err := p.newInstance(ctx, s, true)
	if err != nil {
		p.logger.Debug("cannot read the kinds of a module that fails to initialise", "error", err)
		return 0
	}
	defer func() {
		s.inst.Store(nil)
		inst.close(ctx)
	}()
	inst.creating = true
	kinds, err := inst.declaredKinds(ctx)
	if err != nil {
		p.logger.Debug("cannot read the kinds of a module that fails to initialise", "error", err)
		return 0
	}
	return kinds
}

// compile chooses how the plugin's calls and loading are bounded,
// instruments the module if it can, and compiles it on the runtime of that
// mode, all within ctx and, unless loadTimeout is 0, the larger of
// loadTimeout and compileTimeout (compilation takes time in proportion to
// the module). Compilation is Go code that cannot be interrupted, so it
// runs in a goroutine that is left to finish (and close what it compiled)
// if the time runs out first; the Host keeps its runtimes open until it
// finished (Host.compiling). instrumented says
// the module was rewritten for the watchdog (see WithCallTimeout).
func (h *Host) compile(ctx context.Context, logger hclog.Logger, wasm []byte, cfg pluginConfig, loadTimeout time.Duration) (
	_ wazero.CompiledModule, _ wazero.Runtime, instrumented bool, _ error,
) {
	type compiled struct {
		cm           wazero.CompiledModule
		rt           wazero.Runtime
		instrumented bool
		err          error
	}
	res := make(chan compiled, 1)
	// abandon leaves the compilation to finish in the background and
	// closes what it compiled.
	abandon := func() {
		go func() {
			if c := <-res; c.cm != nil {
				c.cm.Close(context.Background())
			}
		}()
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, false, ErrClosed
	}
	h.compiling.Add(1) // under mu, so never after Close began to wait
	h.mu.Unlock()
	go func() {
		defer h.compiling.Done()
		// A panic of the readers and rewriters below, which run on this
		// goroutine where nothing else would recover it, is the module's
		// load error: a module must never crash the process that loads it
		// (an empty table section once made CapTables divide by zero).
		// Every path below sends once, as its last step, so nothing was
		// sent yet.
		defer func() {
			if r := recover(); r != nil {
				res <- compiled{err: fmt.Errorf("compile: reading the module failed: %v", r)}
			}
		}()
		if beforeCompile != nil {
			beforeCompile()
		}
		// Every plugin is instrumented if it can be, so that its loading
		// is bounded and interruptible; one that cannot be falls back to
		// wazero's termination checks, unless it has no limit at all.
		m, code, instrumented := modePlain, wasm, false
		// A module that wazero cannot read is left to its compiler, whose
		// error is the one to report.
		var badCount *instrument.CountError
		if err := instrument.CheckCounts(wasm); errors.As(err, &badCount) {
			res <- compiled{err: fmt.Errorf("compile: %w", err)}
			return
		}
		// A module whose structure would make compilation take long (or
		// allocate much) is refused before it starts: the compilation
		// could not be stopped.
		var tooLarge *instrument.LimitError
		if err := instrument.CheckLimits(wasm); errors.As(err, &tooLarge) {
			res <- compiled{err: fmt.Errorf("compile: refused before compiling: %w", err)}
			return
		}
		// Tables are bounded (MaxTableElements) in every mode. A module
		// whose sections cannot be read is left to the compiler, whose
		// error is the one to report; if it compiles anyway, it is
		// refused below.
		code, tablesErr := instrument.CapTables(code, MaxTableElements)
		var tablesTooLarge *instrument.TablesError
		if errors.As(tablesErr, &tablesTooLarge) {
			res <- compiled{err: fmt.Errorf("tables: %w", tablesErr)}
			return
		}
		if tablesErr != nil {
			code = wasm
		}
		if cfg.contextTimeout && (cfg.timeout > 0 || loadTimeout > 0) {
			m = modeInterruptible
		} else if cfg.plain {
			// Loaded as it is (a benchmark's baseline).
		} else if out, err := instrument.Rewrite(code, instrument.Names{Interrupt: interruptExport, Start: startExport, Stack: stackExport}); err != nil {
			if cfg.timeout > 0 || loadTimeout > 0 {
				logger.Info("module not instrumented for time limits; using wazero's termination checks, which make calls slower",
					"reason", err)
				m = modeInterruptible
			} else {
				logger.Info("module not instrumented, and neither its calls nor its loading have a time limit: nothing can stop it",
					"reason", err)
			}
		} else {
			code, instrumented = out, true
		}
		var c compiled
		c.instrumented = instrumented
		c.rt, c.err = h.runtime(ctx, m)
		if c.err == nil {
			c.cm, c.err = compileModule(ctx, c.rt, code)
			switch {
			case c.err != nil:
				c.err = fmt.Errorf("compile: %w", c.err)
			case tablesErr != nil:
				c.cm.Close(ctx)
				c.cm, c.err = nil, fmt.Errorf("tables: cannot bound the module's tables: %w", tablesErr)
			}
		}
		res <- c
	}()
	var expired <-chan time.Time
	limit := max(loadTimeout, compileTimeout(len(wasm)))
	if loadTimeout > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case c := <-res:
		return c.cm, c.rt, c.instrumented, c.err
	case <-ctx.Done():
		abandon()
		return nil, nil, false, fmt.Errorf("compile: stopped: %w", ctx.Err())
	case <-expired:
		abandon()
		return nil, nil, false, fmt.Errorf("compile: stopped after running longer than its limit of %v: %w",
			limit, context.DeadlineExceeded)
	}
}

// beforeCompile, when a test sets it, runs first on a compilation's
// goroutine.
var beforeCompile func()

// compileModule compiles code on rt, turning a panic of the compiler into
// an error: wazero's compiler panics on some modules that it validated
// (such as a function of 2^28 locals, which CheckLimits refuses first),
// and a module must never crash the process that loads it.
func compileModule(ctx context.Context, rt wazero.Runtime, code []byte) (_ wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the compiler failed on the module: %v", r)
		}
	}()
	return rt.CompileModule(ctx, code)
}

// fault counts, logs and returns a fault.
func (p *Plugin) fault(h hook, reason FaultReason, err error) *Fault {
	p.stats.faults[reason].Add(1)
	f := &Fault{Plugin: p.name, Hook: hookNames[h], Reason: reason, Err: err}
	p.logger.Warn("plugin fault, instance replaced", "hook", f.Hook, "reason", reason.String(), "error", err)
	return f
}
