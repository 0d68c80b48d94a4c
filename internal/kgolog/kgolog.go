// Package kgolog passes franz-go's log lines to a go-hclog logger, so that
// the Kafka client logs through the same logger, format and level as the
// rest of kpipe.
package kgolog

import (
	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// New returns a kgo.Logger writing to l. franz-go logs every request at its
// info level, which is debug detail for kpipe's users: at hclog's info level
// only franz-go's warnings and errors come through.
func New(l hclog.Logger) kgo.Logger { return logger{l} }

type logger struct{ l hclog.Logger }

func (k logger) Level() kgo.LogLevel {
	switch {
	case k.l.IsDebug() || k.l.IsTrace():
		return kgo.LogLevelDebug
	case k.l.IsInfo(), k.l.IsWarn():
		return kgo.LogLevelWarn
	case k.l.IsError():
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, keyvals...)
	case kgo.LogLevelInfo:
		k.l.Info(msg, keyvals...)
	default:
		k.l.Debug(msg, keyvals...)
	}
}
