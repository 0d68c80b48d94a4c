package kgolog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		level hclog.Level
		want  kgo.LogLevel
	}{
		{hclog.Trace, kgo.LogLevelDebug},
		{hclog.Debug, kgo.LogLevelDebug},
		{hclog.Info, kgo.LogLevelWarn},
		{hclog.Warn, kgo.LogLevelWarn},
		{hclog.Error, kgo.LogLevelError},
		{hclog.Off, kgo.LogLevelNone},
	} {
		l := New(hclog.New(&hclog.LoggerOptions{Level: tc.level, Output: &bytes.Buffer{}}))
		if got := l.Level(); got != tc.want {
			t.Errorf("hclog %s: kgo level %v, want %v", tc.level, got, tc.want)
		}
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	l := New(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &buf}))
	l.Log(kgo.LogLevelError, "broken", "broker", 1)
	l.Log(kgo.LogLevelDebug, "detail")
	out := buf.String()
	for _, want := range []string{"[ERROR] broken: broker=1", "[DEBUG] detail"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output %q lacks %q", out, want)
		}
	}
}
