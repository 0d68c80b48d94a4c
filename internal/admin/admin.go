package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kpipe/kpipe/pipeline"
)

// Pipeline is what the admin endpoint needs from a running pipeline. Its
// methods are called concurrently, from the endpoint's request goroutines.
type Pipeline interface {
	// Snapshot returns the pipeline's counters and chain as they are now.
	Snapshot() Snapshot
	// Reload reloads the pipeline's configuration and returns the version
	// of the chain that serves now. It fails with a *ReloadError when the
	// new configuration was rejected; the running chain then keeps
	// serving.
	Reload(ctx context.Context) (version uint64, err error)
	// Ready reports whether the pipeline can produce: its producer reached
	// a broker.
	Ready() bool
}

// Snapshot is a pipeline's state at one moment.
type Snapshot struct {
	// Read counts the records the pipeline took in; Delivered, Filtered
	// and Failed count them by outcome (a record that could not even be
	// decoded is read and failed).
	Read, Delivered, Filtered, Failed uint64
	// InFlight counts the records sent whose outcome is not known yet.
	InFlight int64
	// ChainVersion is the version of the chain that serves now (1 for the
	// first).
	ChainVersion uint64
	// Chain describes the plugins of the current chain, in chain order.
	Chain []PluginInfo
	// Stats are the per plugin and hook counters (pipeline.Stats.Plugins).
	Stats []pipeline.PluginStats
	// Partitions counts delivered records per topic and partition.
	Partitions []PartitionCount
	// Reloads counts the reloads and remembers the last rejection.
	Reloads ReloadStats
	// LogLinesSuppressed counts, per plugin name, the log lines (log
	// calls, stdout and stderr lines) its log rate limit dropped
	// (wasmhost.Host.LogLinesSuppressed); plugins with none are absent.
	LogLinesSuppressed map[string]uint64
	// Batches counts the record batches the producer wrote
	// (pipeline.Stats.Batches).
	Batches pipeline.BatchStats
}

// PluginInfo describes one plugin of the current chain.
type PluginInfo struct {
	// Name is the plugin's name in logs and statistics.
	Name string `json:"name"`
	// Kind is "interceptor", "serializer" or "partitioner".
	Kind string `json:"kind"`
	// Role is where the chain uses it: "interceptor", "key_serializer",
	// "value_serializer" or "partitioner".
	Role string `json:"role"`
	// Module is the path of its WASM module, or "" for a builtin.
	Module string `json:"module,omitempty"`
	// Builtin is the name of the built-in plugin, or "" for a module.
	Builtin string `json:"builtin,omitempty"`
	// SHA256 is the hex SHA-256 of the module, "" for a builtin.
	SHA256 string `json:"sha256,omitempty"`
	// Policy is what happens to a record when the plugin fails.
	Policy string `json:"policy"`
}

// PartitionCount is the number of records delivered to one partition.
type PartitionCount struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Delivered uint64 `json:"delivered"`
}

// ReloadStats counts reloads.
type ReloadStats struct {
	// OK counts reloads that swapped in a new chain or found nothing to
	// change; Rejected those that were refused.
	OK       uint64 `json:"ok"`
	Rejected uint64 `json:"rejected"`
	// LastError is the diagnostics of the last rejected reload, one
	// FILE:LINE:COL line each, and LastErrorAt its time; empty if none was
	// rejected since the last successful one.
	LastError   []string  `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ErrNotStarted is what Pipeline.Reload returns before the pipeline has
// started (its producer has not reached a broker yet): nothing was
// rejected, the request came too early, and the endpoint answers 503
// Service Unavailable with Retry-After.
var ErrNotStarted = errors.New("the pipeline has not started yet")

// ReloadError is a rejected reload: the new configuration, one of its
// modules, or the change it asks for could not be applied. The running
// chain keeps serving.
type ReloadError struct {
	// Diagnostics are the reasons, one per line, each starting with
	// FILE:LINE:COL where there is a position.
	Diagnostics []string
}

func (e *ReloadError) Error() string {
	return "reload rejected: " + strings.Join(e.Diagnostics, "; ")
}

// AsReloadError returns err's *ReloadError, or one holding err's text.
func AsReloadError(err error) *ReloadError {
	var re *ReloadError
	if errors.As(err, &re) {
		return re
	}
	return &ReloadError{Diagnostics: []string{err.Error()}}
}
