package wasmhost

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// instanceKey is the context key under which a call carries its instance, so
// that host functions know whose config, logger and error message to use.
type instanceKey struct{}

// hostFunc is one function of the kpipe host module.
type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      api.GoModuleFunc
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFuncs is the kpipe host module (ABI section 6). Every function uses
// wazero's stack-based calling convention, which does not allocate.
var hostFuncs = []hostFunc{
	{abi.FuncConfigGet, []api.ValueType{i32, i32}, []api.ValueType{i32}, configGet},
	{abi.FuncLogEnabled, []api.ValueType{i32}, []api.ValueType{i32}, logEnabled},
	{abi.FuncLog, []api.ValueType{i32, i32, i32}, nil, logMessage},
	{abi.FuncSetError, []api.ValueType{i32, i32}, nil, setError},
	{abi.FuncEnableFeatures, []api.ValueType{i64}, []api.ValueType{i64}, enableFeatures},
}

// hostFuncByName indexes hostFuncs for import validation.
var hostFuncByName = func() map[string]*hostFunc {
	m := make(map[string]*hostFunc, len(hostFuncs))
	for i := range hostFuncs {
		m[hostFuncs[i].name] = &hostFuncs[i]
	}
	return m
}()

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.HostModule)
	for _, f := range hostFuncs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// hostTrap is the panic value of a host function that rejects its
// arguments; wazero turns it into a trap of the calling hook.
type hostTrap struct {
	fn  string
	msg string
}

func (t *hostTrap) Error() string { return "kpipe." + t.fn + ": " + t.msg }

// callerInstance returns the instance that made the host call.
func callerInstance(ctx context.Context, fn string) *instance {
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	if inst == nil {
		panic(&hostTrap{fn, "called outside a kpipe call"})
	}
	return inst
}

// guestBytes returns the guest memory [ptr, ptr+n), or traps if it is not
// inside memory.
func guestBytes(mod api.Module, fn string, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(&hostTrap{fn, fmt.Sprintf("range [%d, %d) is outside guest memory of %d bytes",
			ptr, uint64(ptr)+uint64(n), mod.Memory().Size())})
	}
	return b
}

// configGet: config_get(buf, limit) -> len. Writes the config to buf if it
// fits in limit; the whole [buf, buf+limit) range must be in memory.
func configGet(ctx context.Context, mod api.Module, stack []uint64) {
	inst := callerInstance(ctx, abi.FuncConfigGet)
	buf, limit := uint32(stack[0]), uint32(stack[1])
	cfg := inst.p.config
	if limit > 0 {
		dst := guestBytes(mod, abi.FuncConfigGet, buf, limit)
		if len(cfg) <= len(dst) {
			copy(dst, cfg)
		}
	}
	stack[0] = uint64(uint32(len(cfg)))
}

// logLevel maps an ABI log level to hclog's; levels outside 1..5 are
// clamped.
func logLevel(l uint32) hclog.Level {
	switch int32(l) {
	case 1:
		return hclog.Trace
	case 2:
		return hclog.Debug
	case 3:
		return hclog.Info
	case 4:
		return hclog.Warn
	}
	if int32(l) < 1 {
		return hclog.Trace
	}
	return hclog.Error
}

func levelEnabled(l hclog.Logger, lvl hclog.Level) bool {
	switch lvl {
	case hclog.Trace:
		return l.IsTrace()
	case hclog.Debug:
		return l.IsDebug()
	case hclog.Info:
		return l.IsInfo()
	case hclog.Warn:
		return l.IsWarn()
	}
	return l.IsError()
}

// logEnabled: log_enabled(level) -> 0 or 1.
func logEnabled(ctx context.Context, _ api.Module, stack []uint64) {
	inst := callerInstance(ctx, abi.FuncLogEnabled)
	var r uint64
	if levelEnabled(inst.p.logger, logLevel(uint32(stack[0]))) {
		r = 1
	}
	stack[0] = r
}

// logMessage: log(level, ptr, len). A message longer than maxLogLine is
// cut, and messages beyond the plugin's log budget are suppressed.
func logMessage(ctx context.Context, mod api.Module, stack []uint64) {
	inst := callerInstance(ctx, abi.FuncLog)
	msg := guestBytes(mod, abi.FuncLog, uint32(stack[1]), uint32(stack[2]))
	lvl := logLevel(uint32(stack[0]))
	if !levelEnabled(inst.p.logger, lvl) || !inst.p.logLimit.allow() {
		return
	}
	if len(msg) > maxLogLine {
		inst.p.logger.Log(lvl, logText(msg[:maxLogLine]), "cut_bytes", len(msg)-maxLogLine)
		return
	}
	inst.p.logger.Log(lvl, logText(msg))
}

// setError: set_error(ptr, len). Keeps at most abi.MaxErrorMessage bytes.
func setError(ctx context.Context, mod api.Module, stack []uint64) {
	inst := callerInstance(ctx, abi.FuncSetError)
	msg := guestBytes(mod, abi.FuncSetError, uint32(stack[0]), uint32(stack[1]))
	if len(msg) > abi.MaxErrorMessage {
		msg = msg[:abi.MaxErrorMessage]
	}
	inst.errMsg = append(inst.errMsg[:0], msg...)
	inst.errSet = true
}

// enableFeatures: enable_features(mask) -> enabled (ABI section 8). While
// the instance runs _initialize or kpipe_init it enables the known bits of
// mask, adding to those of earlier calls, and returns them. Later calls
// change nothing and return the bits of mask that are enabled, so
// enable_features(-1) reads the instance's set.
func enableFeatures(ctx context.Context, _ api.Module, stack []uint64) {
	inst := callerInstance(ctx, abi.FuncEnableFeatures)
	mask := stack[0]
	if inst.negotiating {
		inst.features |= mask & abi.KnownFeatures
	}
	stack[0] = mask & inst.features
}
