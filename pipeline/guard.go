package pipeline

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/plugins"
)

// ErrPluginFailed is wrapped by the error of a record failed by a plugin
// under the FailRecord policy (see OnFailure); the error names the plugin
// and the hook. Serializer failures wrap ErrSerialize instead.
var ErrPluginFailed = errors.New("plugin failed")

// PluginError is the error of a record a plugin failed: under the
// FailRecord policy (it wraps ErrPluginFailed) or in a serializer (it wraps
// ErrSerialize). It says which plugin, in which hook, and why, for callers
// that report failures by field (kafkasource's dead-letter headers).
type PluginError struct {
	// Kind is the plugin's kind, Plugin its name and Hook the hook that
	// failed.
	Kind   plugins.Kind
	Plugin string
	Hook   Hook
	// Err is why: the plugin's error, or ErrBypassed.
	Err error
	// sentinel is ErrPluginFailed or ErrSerialize; msg is Error's text.
	sentinel error
	msg      string
}

func (e *PluginError) Error() string { return e.msg }

// Unwrap returns the sentinel (ErrPluginFailed or ErrSerialize) and Err.
func (e *PluginError) Unwrap() []error { return []error{e.sentinel, e.Err} }

// ErrBypassed is wrapped by the error a record gets under FailRecord or
// DropRecord when the plugin's circuit breaker is open (see CircuitBreaker).
var ErrBypassed = errors.New("circuit breaker open, plugin bypassed")

// A gate guards one hook of one plugin of a chain: every call of the hook
// goes through it. It is the one place that turns a panic into an error,
// counts calls, failures and bypasses, samples latencies, logs failures and
// feeds the circuit breaker.
type gate struct {
	log    hclog.Logger
	name   string
	kind   plugins.Kind
	hook   Hook
	policy FailurePolicy
	st     *hookStats // shared by the gates of one plugin name and hook
	br     breaker
}

// call runs f, one call of the plugin serving n records (1 for a
// per-record hook), counting n calls. A panic in f is returned as an error.
// The closure does not escape: it costs no allocation.
func (g *gate) call(n int, f func() error) (err error) {
	t := g.st.startN(n)
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("panic: %v", x)
		}
		g.st.endN(t, n)
	}()
	return f()
}

// allow reports whether the breaker lets a call serving n records through;
// if not, the n records are counted as bypassed.
func (g *gate) allow(n int) bool {
	if g.br.allow() {
		return true
	}
	g.st.bypasses.Add(uint64(n))
	return false
}

// ok notes one record the plugin served.
func (g *gate) ok() { g.br.success() }

// failed notes one record the plugin failed on with err: it is counted,
// logged (at most once a second per plugin and hook; Stats has the exact
// count) and fed to the breaker.
func (g *gate) failed(err error) {
	n := g.st.failures.Add(1)
	if g.st.shouldLog() {
		g.log.Warn("plugin failed", "plugin", g.name, "hook", string(g.hook), "error", err,
			"on_failure", g.policy.String(), "failures", n)
	}
	if d := g.br.failure(); d > 0 {
		g.log.Error("plugin keeps failing; bypassing it", "plugin", g.name, "hook", string(g.hook),
			"error", err, "cooldown", d, "on_failure", g.policy.String())
	}
}

// recordError is the error of a record the plugin failed (err) or was
// bypassed on (err nil) under FailRecord or DropRecord: it names the plugin
// and the hook.
func (g *gate) recordError(err error) error {
	if err == nil {
		err = ErrBypassed
	}
	if g.policy == DropRecord {
		return fmt.Errorf("%w: %s %q failed at %s and its on_failure is drop: %w", ErrFiltered, kindName(g.kind), g.name, g.hook, err)
	}
	return &PluginError{Kind: g.kind, Plugin: g.name, Hook: g.hook, Err: err, sentinel: ErrPluginFailed,
		msg: fmt.Sprintf("%v: %s %q: %s: %v", ErrPluginFailed, kindName(g.kind), g.name, g.hook, err)}
}

func kindName(k plugins.Kind) string {
	switch k {
	case plugins.KindInterceptor:
		return "interceptor"
	case plugins.KindSerializer:
		return "serializer"
	case plugins.KindConsumeInterceptor:
		return "consume interceptor"
	case plugins.KindDeserializer:
		return "deserializer"
	}
	return "partitioner"
}
