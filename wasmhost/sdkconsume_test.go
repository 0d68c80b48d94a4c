package wasmhost_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// sdkConsumeLanguages are the directories of build/sdk-examples with a
// consume-side mask example (examples/plugins/<lang>/mask).
var sdkConsumeLanguages = []string{"c", "c-wasi", "rust", "assemblyscript"}

// TestSDKConsumeExamples loads each SDK's mask example as a consume
// interceptor and runs it on every consumed vector (sdk/testdata/consumed):
// the record must come back as results/mask_digits says, with its topic,
// partition and offset unchanged, alone and in a batch. Each asks for
// KPIPE_FEATURE_EDITS, so this also checks the host's edit path on the
// consume side.
func TestSDKConsumeExamples(t *testing.T) {
	ctx := context.Background()
	for _, lang := range sdkConsumeLanguages {
		t.Run(lang, func(t *testing.T) {
			h := newHost(t)
			p := load(t, h, lang+"-mask", readFile(t, sdkExample(t, lang, "mask")), plugins.KindConsumeInterceptor)
			if p.Features()&abi.FeatureEdits == 0 {
				t.Errorf("the mask example does not ask for KPIPE_FEATURE_EDITS")
			}
			var rs []*kgo.Record
			var wants []plugins.Record
			for _, name := range strings.Fields(string(vector(t, "records.txt"))) {
				in := vector(t, "consumed/"+name+".bin")
				var rec, want plugins.Record
				if err := abi.DecodeRecord(in[8:], &rec); err != nil {
					t.Fatalf("consumed/%s.bin: %v", name, err)
				}
				if err := abi.DecodeRecord(vector(t, "results/mask_digits/"+name+".bin"), &want); err != nil {
					t.Fatalf("results/mask_digits/%s.bin: %v", name, err)
				}
				rs = append(rs, &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: int64(binary.LittleEndian.Uint64(in)),
					Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp})
				wants = append(wants, want)
			}
			check := func(how string, i int, r *kgo.Record, offset int64) {
				w := wants[i]
				if !bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) || !bytes.Equal(r.Key, w.Key) ||
					fmt.Sprint(r.Headers) != fmt.Sprint(w.Headers) || r.Topic != w.Topic || r.Partition != w.Partition || r.Offset != offset {
					t.Errorf("%s record %d: got %s[%d]@%d value %.40q, want %s[%d]@%d value %.40q",
						how, i, r.Topic, r.Partition, r.Offset, r.Value, w.Topic, w.Partition, offset, w.Value)
				}
			}
			batch := make([]*kgo.Record, len(rs))
			for i, r := range rs {
				c := *r
				batch[i] = &c
				if _, err := p.OnConsume(ctx, r); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				check("single", i, r, batch[i].Offset)
			}
			verdicts, errs := make([]plugins.Verdict, len(batch)), make([]error, len(batch))
			if err := p.OnConsumeBatch(ctx, batch, verdicts, errs); err != nil {
				t.Fatal(err)
			}
			for i, r := range batch {
				if errs[i] != nil {
					t.Fatalf("batch record %d: %v", i, errs[i])
				}
				check("batch", i, r, rs[i].Offset)
			}
		})
	}
}
