package wasmhost_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// TestLogMessageEscaped: a message a plugin logs with bytes that are not
// printable text (logbytes.wat) reaches the log escaped: no NUL, no
// terminal escape, no line break of its own.
func TestLogMessageEscaped(t *testing.T) {
	var out bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Warn})
	h := newHost(t)
	ctx := context.Background()
	p := load(t, h, "logbytes", wat(t, "logbytes"), plugins.KindInterceptor, wasmhost.WithLogger(logger))
	if _, err := p.OnSend(ctx, modeRecord(0)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, `a\x00b\x1b[31mred\nx\xff`) {
		t.Errorf("the log does not have the escaped message:\n%q", got)
	}
	if strings.ContainsAny(got, "\x00\x1b") || strings.Count(got, "\n") != 1 {
		t.Errorf("the log has raw control bytes or more than one line:\n%q", got)
	}
}
