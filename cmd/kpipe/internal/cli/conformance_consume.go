package cli

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// The conformance checks of the consume-side kinds (ABI v2): the test
// records as a consumer fetches them, with a partition, an offset and a
// timestamp.

// consumeKindNames are the consume-side kinds, as kpipe plugin inspect and
// conformance name them.
var consumeKindNames = []struct {
	kind plugins.Kind
	name string
}{
	{plugins.KindConsumeInterceptor, "consume-interceptor"},
	{plugins.KindDeserializer, "deserializer"},
}

// fetchedRecords returns fresh copies of the conformance records as fetched
// records: record i in partition i%3 at offset 1000+i, with a timestamp.
func fetchedRecords() []*kgo.Record {
	trs := conformanceRecords()
	out := make([]*kgo.Record, len(trs))
	for i, tr := range trs {
		r := tr.rec
		ts := r.Timestamp
		if ts.IsZero() {
			ts = time.UnixMilli(1_700_000_000_000 + int64(i))
		}
		out[i] = &kgo.Record{Topic: r.Topic, Partition: int32(i % 3), Offset: 1000 + int64(i),
			Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: ts}
	}
	return out
}

// formatFetched describes a fetched record as formatRecord does.
func formatFetched(r *kgo.Record) string {
	pr := plugins.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	pr.SetPartition(r.Partition)
	return formatRecord(&pr)
}

// consumeResults runs OnConsume on fresh fetched records, one call each.
func consumeResults(ctx context.Context, p *wasmhost.Plugin) (results []string, errs []error) {
	for _, r := range fetchedRecords() {
		v, err := p.OnConsume(ctx, r)
		results = append(results, consumeResult(v, err, r))
		errs = append(errs, err)
	}
	return results, errs
}

func consumeResult(v plugins.Verdict, err error, r *kgo.Record) string {
	switch {
	case err != nil:
		return outcome(err)
	case v == plugins.Drop:
		return "drop"
	}
	return "continue " + formatFetched(r)
}

func conformConsumeInterceptor(ctx context.Context, rep *conformanceReport, load func(plugins.Kind) (*wasmhost.Plugin, error)) error {
	a, err := load(plugins.KindConsumeInterceptor)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	want, errs := consumeResults(ctx, a)
	problems, reported := hookProblems(errs)
	rep.check("on_consume", problems, summary(len(want), reported))

	// The host's batch path (one instance for many records) must give
	// the records what single calls give them.
	rs := fetchedRecords()
	vs := make([]plugins.Verdict, len(rs))
	errs = make([]error, len(rs))
	if err := a.OnConsumeBatch(ctx, rs, vs, errs); err != nil {
		rep.check("batch", []string{"OnConsumeBatch: " + oneLine(err)}, "")
	} else {
		got := make([]string, len(rs))
		for i := range rs {
			got[i] = consumeResult(vs[i], errs[i], rs[i])
		}
		rep.check("batch", compareResults("kpipe_on_consume in a batch", got, want), "records in one batch get what single calls give them")
	}

	c, err := load(plugins.KindConsumeInterceptor)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	got, _ := consumeResults(ctx, c)
	rep.check("determinism", compareResults("a second instance", got, want), "a second instance gives the same on_consume results")
	return nil
}

// deserializerCheck runs Deserialize on fresh fetched records.
var deserializerCheck = codecCheck{
	kind: plugins.KindDeserializer, hook: "deserialize", does: "deserializes",
	calls: func(ctx context.Context, p *wasmhost.Plugin) []codecCall {
		var calls []codecCall
		for _, r := range fetchedRecords() {
			calls = append(calls, codecCall{r.Key, r.Value, func(t plugins.Target) ([]byte, error) { return p.Deserialize(ctx, t, r) }})
		}
		return calls
	},
}
