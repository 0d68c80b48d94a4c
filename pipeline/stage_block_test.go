package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// A stage batch blocked on the client's full buffer (a broker that does
// not answer) holds up neither Flush nor Close past their contexts, as
// records blocked in Send do not without stage batching: Flush returns
// ctx's error, Close fails the records and every callback runs once.
func TestStageBatchBlockedBuffer(t *testing.T) {
	for _, op := range []string{"flush", "close"} {
		t.Run(op, func(t *testing.T) {
			e, release := stalledEnv(t)
			p := e.producer(t, pipeline.MaxBufferedRecords(2), pipeline.StageBatch(2, time.Millisecond),
				pipeline.Interceptor("ic", &batchIC{}), pipeline.Logger(hclog.NewNullLogger()))
			ctx := ctxT(t)
			col := newCollector()
			// The first two records fill the client's buffer; the run
			// of the next batch blocks in the client, holding up the
			// sender.
			vs := values(6, "v")
			cbs := make([]func(*plugins.Record, pipeline.Result), len(vs))
			for i, v := range vs {
				cbs[i] = col.cb(t, v)
			}
			go func() {
				for i, v := range vs {
					p.Send(ctx, rec("", v), cbs[i])
				}
			}()
			time.Sleep(100 * time.Millisecond)
			short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				var err error
				if op == "flush" {
					err = p.Flush(short)
				} else {
					_, err = p.Close(short)
				}
				errc <- err
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: err = %v, want a deadline error", op, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("%s did not return 5s after its context ended", op)
				release()
				<-errc
			}
			if op == "flush" {
				release()
			}
			if op == "close" {
				for v, res := range col.wait(t) {
					if res.Outcome != pipeline.Failed {
						t.Errorf("%s: %+v", v, res)
					}
				}
			}
		})
	}
}
