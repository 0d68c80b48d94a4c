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

// blockingBatchIC is a batch interceptor whose calls return only when
// their context ends, as a plugin without a call timeout that never
// finishes.
type blockingBatchIC struct{ entered chan struct{} }

func (b *blockingBatchIC) OnSend(ctx context.Context, r *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}

func (b *blockingBatchIC) OnSendBatch(ctx context.Context, rs []*plugins.Record, _ []plugins.Verdict, _ []error) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func (b *blockingBatchIC) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }

// A stage batch stuck in a plugin call that ends only with its context
// holds up Close no longer than Close's own context: Close ends the
// producer's context, which the batched calls use, and every record gets
// its callback. (Before, Close returned only when the call did.)
func TestStageBatchBlockedPlugin(t *testing.T) {
	e := setup(t, 1)
	ic := &blockingBatchIC{entered: make(chan struct{}, 1)}
	p := e.producer(t, pipeline.StageBatch(2, time.Millisecond),
		pipeline.Interceptor("stuck", ic), pipeline.Logger(hclog.NewNullLogger()))
	col := newCollector()
	vs := values(4, "v")
	cbs := make([]func(*plugins.Record, pipeline.Result), len(vs))
	for i, v := range vs {
		cbs[i] = col.cb(t, v)
	}
	ctx := ctxT(t)
	go func() {
		// The sends after the first batch wait for it.
		for i, v := range vs {
			p.Send(ctx, rec("", v), cbs[i])
		}
	}()
	select {
	case <-ic.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the stage batch never called the plugin")
	}
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := p.Close(short)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return 5s after its context ended")
	}
	for v, res := range col.wait(t) {
		if res.Outcome == pipeline.Delivered {
			t.Errorf("%s: %+v, want it not delivered", v, res)
		}
	}
}
