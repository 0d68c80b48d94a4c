package examples_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
)

// TestConsumeExamples runs the Go example maskdigits and the WAT examples
// mask and filter as consume interceptors on fetched records: the Go one
// with its config (keep_last, drop_header), the two masks on the same
// records with the same result.
func TestConsumeExamples(t *testing.T) {
	ctx := context.Background()
	fetched := func(v string, headers ...string) *kgo.Record {
		r := &kgo.Record{Topic: "payments", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte(v), Timestamp: time.UnixMilli(1)}
		for _, h := range headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h})
		}
		return r
	}
	goMask, _ := goPlugin(t, "maskdigits", plugins.KindConsumeInterceptor, `{"keep_last": 4, "drop_header": "internal"}`)
	tests := []struct {
		r       *kgo.Record
		verdict plugins.Verdict
		want    string
	}{
		{fetched("card 4111111111111111"), plugins.Continue, "card ************1111"},
		{fetched("pin 1234"), plugins.Continue, "pin 1234"},
		{fetched("card 4111111111111111", "internal"), plugins.Drop, "card 4111111111111111"},
	}
	for _, tt := range tests {
		v, err := goMask.ConsumeInterceptor().OnConsume(ctx, tt.r)
		if err != nil || v != tt.verdict || string(tt.r.Value) != tt.want || tt.r.Offset != 7 || tt.r.Partition != 1 {
			t.Errorf("maskdigits: = %v, %v, value %q; want %v, %q", v, err, tt.r.Value, tt.verdict, tt.want)
		}
	}
	if _, _, err := tryLoad(t, plugintest.GoPlugin(t, "examples/plugins/maskdigits"), plugins.KindConsumeInterceptor, `{"keep_last": -1}`); err == nil || !strings.Contains(err.Error(), "keep_last is -1") {
		t.Errorf("maskdigits with keep_last -1: %v", err)
	}

	// The Go example without keep_last and the WAT one mask alike.
	goAll, _ := goPlugin(t, "maskdigits", plugins.KindConsumeInterceptor, "")
	wat := watPlugin(t, "mask", plugins.KindConsumeInterceptor)
	for _, v := range []string{"a1b22c333", "none", "", "0"} {
		a, b := fetched(v), fetched(v)
		if _, err := goAll.OnConsume(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := wat.OnConsume(ctx, b); err != nil {
			t.Fatal(err)
		}
		if string(a.Value) != string(b.Value) || strings.ContainsAny(string(a.Value), "0123456789") {
			t.Errorf("%q: Go %q, WAT %q", v, a.Value, b.Value)
		}
	}
	filter := watPlugin(t, "filter", plugins.KindConsumeInterceptor)
	for _, tt := range []struct {
		v    string
		want string
	}{{"#x", "drop"}, {"?x", "refused by filter"}, {"!x", "fault (trap)"}, {"x", "pass"}} {
		v, err := filter.OnConsume(ctx, fetched(tt.v))
		got := "pass"
		switch {
		case err != nil:
			got = err.Error()
		case v == plugins.Drop:
			got = "drop"
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("filter %q: %s, want %s", tt.v, got, tt.want)
		}
	}
}
