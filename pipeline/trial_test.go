package pipeline_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// A Trial runs records through the Producer's stages without a client:
// filtered records end there, the others are partitioned and acknowledged
// with the Trial's next offsets, across runs, and OnAck gets the same
// offsets.
func TestTrialOutcomesAndOffsets(t *testing.T) {
	var acked []int64
	ic := interceptorFunc{
		send: func(_ context.Context, r *plugins.Record) (plugins.Verdict, error) {
			if string(r.Value) == "drop" {
				return plugins.Drop, nil
			}
			r.Value = append(r.Value, '!')
			return plugins.Continue, nil
		},
		ack: func(_ context.Context, _ *plugins.Record, a plugins.Ack) error {
			acked = append(acked, a.Offset)
			return nil
		},
	}
	for _, batch := range []int{1, 4} {
		acked = nil
		tr, err := pipeline.NewTrial(batch, nil, pipeline.Interceptor("ic", ic),
			pipeline.Partitioner("p", partitionerFunc(func(context.Context, *plugins.Record, int32) (int32, error) { return 2, nil })))
		if err != nil {
			t.Fatal(err)
		}
		var got []pipeline.TrialResult
		for _, vals := range [][]string{{"a", "drop"}, {"b"}} {
			var rs []*plugins.Record
			for _, v := range vals {
				rs = append(rs, &plugins.Record{Topic: "t", Value: []byte(v)})
			}
			got = append(got, tr.Run(context.Background(), rs, 3)...)
		}
		want := []struct {
			o      pipeline.Outcome
			value  string
			offset int64
		}{{pipeline.Delivered, "a!", 0}, {pipeline.Filtered, "drop", -1}, {pipeline.Delivered, "b!", 1}}
		for i, w := range want {
			g := got[i]
			if g.Outcome != w.o || string(g.Record.Value) != w.value || g.Offset != w.offset ||
				w.o == pipeline.Delivered && g.Partition != 2 || w.o == pipeline.Filtered && !errors.Is(g.Err, pipeline.ErrFiltered) {
				t.Errorf("batch %d, record %d: %+v (value %q), want %v %q offset %d", batch, i, g, g.Record.Value, w.o, w.value, w.offset)
			}
		}
		if len(acked) != 2 || acked[0] != 0 || acked[1] != 1 {
			t.Errorf("batch %d: OnAck offsets %v, want [0 1]", batch, acked)
		}
		if err := tr.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
