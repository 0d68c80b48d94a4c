package cli

import (
	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger sends franz-go's logs to hclog.
type kgoLogger struct{ l hclog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	switch {
	case k.l.IsDebug() || k.l.IsTrace():
		return kgo.LogLevelDebug
	case k.l.IsInfo():
		return kgo.LogLevelInfo
	case k.l.IsWarn():
		return kgo.LogLevelWarn
	case k.l.IsError():
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, keyvals...)
	case kgo.LogLevelInfo:
		k.l.Info(msg, keyvals...)
	case kgo.LogLevelDebug:
		k.l.Debug(msg, keyvals...)
	}
}
