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
)

// minCreateTimeout is the least time the creation of an instance may take
// when the plugin has a call timeout; see createTimeout. A variable for the
// tests.
var minCreateTimeout = 5 * time.Second

// createTimeout is the limit on creating one instance (instantiation,
// _initialize, kpipe_init, the first kpipe_buffer) of a plugin whose call
// timeout is d: ten times d, but at least minCreateTimeout; none if d is 0.
// Creating an instance is not charged to the call that needs it: a Go guest
// takes milliseconds to initialise its runtime, far more on a loaded
// machine, which would fail calls under a short timeout.
func createTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return max(10*d, minCreateTimeout)
}

// maxMemoryPages is the largest guest memory the ABI allows: 2 GiB, so that
// every slice pointer is below 2^31.
const maxMemoryPages = 32768

// initialBufferSize is the capacity of the input buffer requested from each
// new instance (ABI section 3.1).
const initialBufferSize = 64 << 10

type pluginConfig struct {
	config     []byte
	poolSize   int
	memPages   uint32
	timeout    time.Duration
	maxOutput  uint32
	logger     hclog.Logger
	optionErrs []error
	// inspect makes load read the kinds of a module whose first instance
	// fails to initialise (Inspect).
	inspect bool
	// contextTimeout makes a plugin with a call timeout use wazero's
	// termination checks even if its module could be instrumented (tests
	// and benchmarks of the fallback).
	contextTimeout bool
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
// after it started (plus the time to its next check: a guest blocked in a
// host function, such as a WASI sleep, is stopped when it returns). Calls pay a
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
// Creating an instance (instantiating the module, running _initialize and
// kpipe_init, obtaining the input buffer), at Load or when a call needs a
// new instance, is not charged to the call: it has its own limit of ten
// times the call timeout, but at least 5 s, and the call's time starts once
// the instance exists. A creation that overruns it is stopped and the call
// fails with a Fault of reason FaultInstantiate (Load fails with an error
// naming the plugin and the limit).
//
// With the limit off the context of a call is only used to wait for an
// instance, and creating an instance has no limit either.
func WithCallTimeout(d time.Duration) PluginOption {
	return pluginOptionFunc(func(c *pluginConfig) {
		if d < 0 {
			c.optionErrs = append(c.optionErrs, fmt.Errorf("call timeout %v is negative", d))
		}
		c.timeout = d
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
	numHooks

	hookOnSendBatch hook = iota - 1
	hookOnAckBatch
	hookPartitionBatch
	numAllHooks
)

var hookNames = [numAllHooks]string{abi.ExportOnSend, abi.ExportOnAck, abi.ExportSerialize, abi.ExportPartition,
	abi.ExportOnSendBatch, abi.ExportOnAckBatch, abi.ExportPartitionBatch}

var hookKinds = [numAllHooks]plugins.Kind{plugins.KindInterceptor, plugins.KindInterceptor, plugins.KindSerializer, plugins.KindPartitioner,
	plugins.KindInterceptor, plugins.KindInterceptor, plugins.KindPartitioner}

// batchOf is the batch hook of each per-record hook that has one.
var batchOf = [numHooks]hook{hookOnSend: hookOnSendBatch, hookOnAck: hookOnAckBatch, hookPartition: hookPartitionBatch}

// Plugin is a loaded plugin module: a compiled module and a bounded pool of
// its instances. It implements plugins.Interceptor, plugins.Serializer and
// plugins.Partitioner, and the batch interfaces plugins.BatchInterceptor,
// plugins.BatchPartitioner and plugins.AckBatcher; calling a hook of a kind
// the module does not declare returns an error. It is safe for concurrent
// use.
type Plugin struct {
	host    *Host
	name    string
	kinds   plugins.Kind
	config  []byte
	logger  hclog.Logger
	timeout time.Duration
	// createTimeout limits the creation of an instance (createTimeout).
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
		// goroutine than the rest.
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
}

func hookCounts(c *[numHooks]atomic.Uint64) HookCounts {
	return HookCounts{c[hookOnSend].Load(), c[hookOnAck].Load(), c[hookSerialize].Load(), c[hookPartition].Load()}
}

// paddedCounter is a counter alone on its cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

func paddedHookCounts(c *[numHooks]paddedCounter) HookCounts {
	return HookCounts{c[hookOnSend].Load(), c[hookOnAck].Load(), c[hookSerialize].Load(), c[hookPartition].Load()}
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
	// records that got one.
	Errors HookCounts
	// Faults counts calls that ended with a *Fault, by reason: a fault of a
	// batch call counts once, whatever the number of its records. Reasons
	// that never happened are absent.
	Faults map[FaultReason]uint64
	// InstancesCreated counts instances created, including the one created
	// at load time.
	InstancesCreated uint64
	// InstancesReplaced counts instances closed after a fault.
	InstancesReplaced uint64
}

// Stats returns a snapshot of the plugin's counters.
func (p *Plugin) Stats() PluginStats {
	s := PluginStats{
		Calls:             paddedHookCounts(&p.stats.calls),
		Batches:           paddedHookCounts(&p.stats.batches),
		Errors:            hookCounts(&p.stats.errors),
		Faults:            map[FaultReason]uint64{},
		InstancesCreated:  p.stats.created.Load(),
		InstancesReplaced: p.stats.replaced.Load(),
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
	p, _, err := h.load(ctx, name, wasm, kind, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return p, nil
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
	defer func() {
		if err != nil {
			err = fmt.Errorf("wasmhost: load plugin %q: %w", name, err)
		}
	}()
	cfg := pluginConfig{
		poolSize:  runtime.GOMAXPROCS(0),
		memPages:  DefaultMemoryLimitPages,
		timeout:   DefaultCallTimeout,
		maxOutput: DefaultMaxOutputBytes,
	}
	for _, o := range opts {
		o.applyPlugin(&cfg)
	}
	if err := errors.Join(cfg.optionErrs...); err != nil {
		return nil, nil, err
	}
	if kind&^abi.AllKinds != 0 {
		return nil, nil, fmt.Errorf("unknown plugin kind %#x", uint32(kind))
	}
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return nil, nil, errors.New("not a WebAssembly module (the binary does not start with \\0asm)")
	}
	logger := cfg.logger
	if logger == nil {
		logger = h.logger
	}
	logger = logger.With("plugin", name)
	// Choose how the call timeout is enforced: see WithCallTimeout.
	m, code, instrumented := modePlain, wasm, false
	if cfg.timeout > 0 {
		if cfg.contextTimeout {
			m = modeInterruptible
		} else if out, err := instrument.Rewrite(wasm, interruptExport); err != nil {
			logger.Info("module not instrumented for call timeouts; using wazero's termination checks, which make calls slower",
				"reason", err)
			m = modeInterruptible
		} else {
			code, instrumented = out, true
		}
	}
	rt, err := h.runtime(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	cm, err := rt.CompileModule(ctx, code)
	if err != nil {
		return nil, nil, fmt.Errorf("compile: %w", err)
	}
	info := describe(cm)
	if err := validateStatic(cm, info, cfg.memPages); err != nil {
		cm.Close(ctx)
		return nil, info, err
	}

	p := &Plugin{
		host:          h,
		name:          name,
		config:        cfg.config,
		logger:        logger,
		timeout:       cfg.timeout,
		createTimeout: createTimeout(cfg.timeout),
		maxOutput:     cfg.maxOutput,
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
			info.Kinds = p.probeKinds(ctx)
		}
		cm.Close(ctx)
		return nil, info, err
	}
	p.slots[0].rehold(0)
	p.features, p.featuresFixed = inst.features, true
	info.Features = inst.features
	kinds, err := inst.declaredKinds(ctx)
	if err == nil {
		info.Kinds = kinds
		err = validateKinds(kinds, kind, cm.ExportedFunctions())
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
	s.rehold(0)
	kinds, err := inst.declaredKinds(ctx)
	if err != nil {
		p.logger.Debug("cannot read the kinds of a module that fails to initialise", "error", err)
		return 0
	}
	return kinds
}

// fault counts, logs and returns a fault.
func (p *Plugin) fault(h hook, reason FaultReason, err error) *Fault {
	p.stats.faults[reason].Add(1)
	f := &Fault{Plugin: p.name, Hook: hookNames[h], Reason: reason, Err: err}
	p.logger.Warn("plugin fault, instance replaced", "hook", f.Hook, "reason", reason.String(), "error", err)
	return f
}
