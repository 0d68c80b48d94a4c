package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// abiV1Kinds are the producer-side kinds, which plugin test's --batch
// compares.
const abiV1Kinds = plugins.KindInterceptor | plugins.KindSerializer | plugins.KindPartitioner

// testConsumed runs the consume-side hooks of p (the kinds of ABI v2 that
// kinds has) on record n of plugin test's input as a consumer would fetch
// it: in its partition (0 if it names none), at offset n-1, with its
// timestamp (now if it has none). It prints what each hook did and calls
// fail for each hook that failed.
func testConsumed(ctx context.Context, w io.Writer, p *wasmhost.Plugin, kinds plugins.Kind, r *plugins.Record, n int, fail func(string, error)) {
	if kinds&(plugins.KindDeserializer|plugins.KindConsumeInterceptor) == 0 {
		return
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: int64(n - 1), Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: ts}
	if kinds&plugins.KindDeserializer != 0 {
		// Both fields from the record as fetched, as a pipeline.Consumer
		// deserializes them.
		key, value := kr.Key, kr.Value
		for _, target := range []plugins.Target{plugins.TargetKey, plugins.TargetValue} {
			hook := "deserialize " + target.String()
			data, dst := key, &kr.Key
			if target == plugins.TargetValue {
				data, dst = value, &kr.Value
			}
			if data == nil {
				fmt.Fprintf(w, "  %-16s null, not called\n", hook+":")
				continue
			}
			out, err := p.Deserialize(ctx, target, &kgo.Record{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset,
				Key: key, Value: value, Headers: kr.Headers, Timestamp: kr.Timestamp})
			if err != nil {
				fail(hook, err)
				return // the record failed: no interceptor sees it
			}
			*dst = out
			fmt.Fprintf(w, "  %-16s %s\n", hook+":", formatData(out))
		}
	}
	if kinds&plugins.KindConsumeInterceptor != 0 {
		before := formatFetched(kr)
		v, err := p.OnConsume(ctx, kr)
		switch {
		case err != nil:
			fail("on_consume", err)
		case v == plugins.Drop:
			fmt.Fprintf(w, "  %-16s drop\n", "on_consume:")
		case formatFetched(kr) == before:
			fmt.Fprintf(w, "  %-16s continue, unchanged (offset %d)\n", "on_consume:", kr.Offset)
		default:
			fmt.Fprintf(w, "  %-16s continue, now %s\n", "on_consume:", formatFetched(kr))
		}
	}
}
