package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// TestPassthrough: only a chain without interceptor, serializer or
// partitioner plugin passes records as they are, and a Swap changes the
// answer; the settings are the producer's.
func TestPassthrough(t *testing.T) {
	e := setup(t, 1)
	p := e.producer(t, pipeline.Acks(pipeline.AcksLeader), pipeline.Compression(pipeline.LZ4),
		pipeline.BatchMaxBytes(50_000), pipeline.RequestTimeout(7*time.Second))
	pass, ok := p.Passthrough()
	if !ok {
		t.Fatal("a chain without plugins: Passthrough false")
	}
	if pass.Client == nil || pass.Acks != pipeline.AcksLeader || pass.Codec != pipeline.LZ4 || pass.BatchMaxBytes != 50_000 || pass.RequestTimeout != 7*time.Second {
		t.Fatalf("Passthrough settings %+v", pass)
	}
	ser, err := plugins.NewSerializer(plugins.SerializerString, nil)
	if err != nil {
		t.Fatal(err)
	}
	part, err := plugins.NewPartitioner(plugins.PartitionerMurmur2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []pipeline.Option
		want bool
	}{
		{"interceptor", []pipeline.Option{pipeline.Interceptor("ic", nopIC{})}, false},
		{"key serializer", []pipeline.Option{pipeline.KeySerializer("s", ser)}, false},
		{"value serializer", []pipeline.Option{pipeline.ValueSerializer("s", ser)}, false},
		{"partitioner", []pipeline.Option{pipeline.Partitioner("murmur2", part)}, false},
		{"built-in defaults", []pipeline.Option{pipeline.Partitioner(plugins.PartitionerDefault, nil), pipeline.CircuitBreaker(3, time.Second)}, true},
	} {
		if _, err := p.Swap(context.Background(), tc.opts...); err != nil {
			t.Fatalf("%s: Swap: %v", tc.name, err)
		}
		if _, got := p.Passthrough(); got != tc.want {
			t.Errorf("%s: Passthrough %v, want %v", tc.name, got, tc.want)
		}
	}
}

type nopIC struct{}

func (nopIC) OnSend(context.Context, *plugins.Record) (plugins.Verdict, error) {
	return plugins.Continue, nil
}
func (nopIC) OnAck(context.Context, *plugins.Record, plugins.Ack) error { return nil }
