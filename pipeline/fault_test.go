package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/internal/testbroker"
	"github.com/kpipe/kpipe/pipeline"
)

// stalledEnv is a kfake cluster whose produce requests are held until
// release is called (or the test ends): a broker that does not answer.
func stalledEnv(t *testing.T) (e *env, release func()) {
	t.Helper()
	c, brokers := testbroker.Fake(t)
	e = &env{brokers: brokers, topic: testbroker.CreateTopic(t, brokers, 1), log: new(logBuffer)}
	gate := make(chan struct{})
	released := false
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-gate })
		return nil, nil, false
	})
	return e, release
}

// Close gives up when its context ends and reports what was not delivered;
// every callback still runs once.
func TestCloseTimeout(t *testing.T) {
	e, _ := stalledEnv(t)
	p := e.producer(t)
	col := newCollector()
	ctx := ctxT(t)
	for _, v := range values(20, "v") {
		p.Send(ctx, rec("", v), col.cb(t, v))
	}
	cctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := p.Close(cctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close err = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v", took)
	}
	if rep.Undelivered != 20 || rep.Delivered != 0 || rep.Failed != 20 {
		t.Errorf("report %+v, want 20 undelivered", rep)
	}
	for v, res := range col.wait(t) {
		if res.Outcome != pipeline.Failed || !errors.Is(res.Err, pipeline.ErrClosed) {
			t.Errorf("%s: %+v", v, res)
		}
	}
}

// A Send blocked on a full buffer fails when its context ends.
func TestBufferFullCancel(t *testing.T) {
	e, release := stalledEnv(t)
	p := e.producer(t, pipeline.MaxBufferedRecords(2), pipeline.Logger(hclog.NewNullLogger()))
	ctx := ctxT(t)
	col := newCollector()
	p.Send(ctx, rec("", "a"), col.cb(t, "a"))
	p.Send(ctx, rec("", "b"), col.cb(t, "b"))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	p.Send(short, rec("", "blocked"), col.cb(t, "blocked"))
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("Send returned after %v with a full buffer", took)
	}
	release()
	res := col.wait(t)
	if r := res["blocked"]; r.Outcome != pipeline.Failed || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("blocked record: %+v", r)
	}
	for _, v := range []string{"a", "b"} {
		if res[v].Outcome != pipeline.Delivered {
			t.Errorf("%s: %+v", v, res[v])
		}
	}
	if got := e.read(t, 2); got[0].value != "a" || got[1].value != "b" {
		t.Errorf("read back %+v", got)
	}
}
