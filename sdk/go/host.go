package kpipe

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Level is the level of a log message, with the values of the ABI.
type Level int32

// The log levels.
const (
	LevelTrace Level = 1
	LevelDebug Level = 2
	LevelInfo  Level = 3
	LevelWarn  Level = 4
	LevelError Level = 5
)

// clamp maps levels below LevelTrace to LevelTrace and above LevelError to
// LevelError, the range the ABI defines.
func (l Level) clamp() Level {
	return min(max(l, LevelTrace), LevelError)
}

// String returns the lower-case name of the level.
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	}
	return fmt.Sprintf("level(%d)", int32(l))
}

// hostAPI is what the SDK needs from the host: the kpipe import module under
// wasip1, and a stand-in when the package is compiled natively (for tests).
type hostAPI interface {
	// config copies the config into buf if it fits and returns its length.
	config(buf []byte) int
	logEnabled(l Level) bool
	log(l Level, msg string)
	setError(msg string)
	// enableFeatures asks for the ABI features in mask and returns those
	// enabled.
	enableFeatures(mask uint64) uint64
}

// Config returns the plugin's configuration bytes, which kpipe's
// configuration file gives as a JSON object, or nil if the plugin has none.
// Each call reads them from the host again; decode them once, in Init.
func Config() []byte {
	n := host.config(nil)
	for n > 0 {
		buf := make([]byte, n)
		m := host.config(buf)
		if m <= n {
			return buf[:m]
		}
		n = m // the config changed in between; cannot happen today
	}
	return nil
}

// DecodeConfig decodes the plugin's JSON configuration into v, a pointer, with
// encoding/json. An empty configuration leaves v unchanged. Unknown fields
// are an error, so that a misspelt option fails the plugin at load time
// instead of being ignored.
func DecodeConfig(v any) error {
	cfg := bytes.TrimSpace(Config())
	if len(cfg) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding plugin config: %w", err)
	}
	if rest := bytes.Trim(cfg[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("decoding plugin config: data after the JSON value at offset %d", dec.InputOffset())
	}
	return nil
}

// LogEnabled reports whether a message at level l would be logged. Use it to
// skip building expensive messages.
func LogEnabled(l Level) bool { return host.logEnabled(l) }

// Log logs msg at level l through the host's logger, which adds the plugin's
// name. It costs a call into the host even when the level is disabled; Logf
// checks LogEnabled first.
func Log(l Level, msg string) { host.log(l, msg) }

// Logf formats a message as fmt.Sprintf does and logs it at level l, if that
// level is enabled.
func Logf(l Level, format string, args ...any) {
	if host.logEnabled(l) {
		host.log(l, fmt.Sprintf(format, args...))
	}
}
