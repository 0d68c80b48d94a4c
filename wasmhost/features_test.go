package wasmhost_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// featuresConfig is the config of the features test module: the feature
// mask its kpipe_init asks for.
func featuresConfig(mask uint64) []byte { return binary.LittleEndian.AppendUint64(nil, mask) }

// loadFeatures loads testdata/features.wat asking for mask.
func loadFeatures(t *testing.T, h *wasmhost.Host, mask uint64, opts ...wasmhost.PluginOption) *wasmhost.Plugin {
	t.Helper()
	opts = append([]wasmhost.PluginOption{wasmhost.WithConfig(featuresConfig(mask))}, opts...)
	return load(t, h, "features", wat(t, "features"), 0, opts...)
}

// guestFeatures asks the features module, through kpipe_on_send, what
// enable_features returns outside kpipe_init (after it tried to enable
// both features there).
func guestFeatures(t *testing.T, p *wasmhost.Plugin) uint64 {
	t.Helper()
	_, err := p.OnSend(context.Background(), modeRecord(0))
	var ge *wasmhost.GuestError
	if !errors.As(err, &ge) || len(ge.Message) != 8 {
		t.Fatalf("OnSend = %v, want a GuestError with 8 bytes of features", err)
	}
	return binary.LittleEndian.Uint64([]byte(ge.Message))
}

// TestEnableFeatures checks that a guest gets exactly the known features
// it asks for in kpipe_init, that they are the plugin's (Features, Inspect),
// and that enable_features outside kpipe_init changes nothing.
func TestEnableFeatures(t *testing.T) {
	h := newHost(t)
	for _, tc := range []struct {
		ask, want uint64
	}{
		{0, 0},
		{abi.FeaturePartitionKey, abi.FeaturePartitionKey},
		{abi.FeatureAckNoRecord, abi.FeatureAckNoRecord},
		{abi.KnownFeatures, abi.KnownFeatures},
		{1<<5 | abi.FeatureAckNoRecord, abi.FeatureAckNoRecord},
		{1 << 40, 0},
		{^uint64(0), abi.KnownFeatures},
	} {
		t.Run(fmt.Sprintf("%#x", tc.ask), func(t *testing.T) {
			p := loadFeatures(t, h, tc.ask)
			if got := p.Features(); got != tc.want {
				t.Errorf("Features() = %#x, want %#x", got, tc.want)
			}
			// The module asks enable_features(3) in kpipe_on_send: too
			// late to change anything.
			if got := guestFeatures(t, p); got != tc.want {
				t.Errorf("enable_features(-1) after kpipe_init = %#x, want %#x", got, tc.want)
			}
			if got := p.Features(); got != tc.want {
				t.Errorf("Features() after a call = %#x, want %#x", got, tc.want)
			}
			info, err := h.Inspect(context.Background(), wat(t, "features"), wasmhost.WithConfig(featuresConfig(tc.ask)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Features != tc.want {
				t.Errorf("Inspect: Features = %#x, want %#x", info.Features, tc.want)
			}
		})
	}
	// The examples ask for the feature they use.
	for _, tc := range []struct {
		name string
		kind plugins.Kind
		want uint64
	}{{"keyhash", plugins.KindPartitioner, abi.FeaturePartitionKey}, {"noop", plugins.KindInterceptor, abi.FeatureAckNoRecord}} {
		if got := load(t, h, tc.name, exampleWAT(t, tc.name), tc.kind).Features(); got != tc.want {
			t.Errorf("example %s: Features() = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// TestFeaturesFixedByFirstInstance checks that an instance created after
// Load that enables other features than the first one fails to be created,
// with a message that names both sets, and that one enabling the same
// known features (whatever unknown bits it asks for) is fine.
func TestFeaturesFixedByFirstInstance(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	p := loadFeatures(t, h, abi.FeaturePartitionKey, wasmhost.WithPoolSize(1))
	// newInstance makes the instance trap, so that the next call needs a
	// new one, asking for mask.
	newInstance := func(mask uint64) error {
		p.SetConfig(featuresConfig(mask))
		_, err := p.OnSend(ctx, modeRecord(1))
		wantFault(t, err, "features", abi.ExportOnSend, wasmhost.FaultTrap)
		_, err = p.OnSend(ctx, modeRecord(0))
		return err
	}
	err := newInstance(abi.FeatureAckNoRecord)
	wantFault(t, err, "features", abi.ExportOnSend, wasmhost.FaultInstantiate)
	for _, want := range []string{"0x2 (ACK_NO_RECORD)", "0x1 (PARTITION_KEY)", "first instance"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// The next call tries again, with the same set and an unknown bit.
	p.SetConfig(featuresConfig(abi.FeaturePartitionKey | 1<<9))
	if got := guestFeatures(t, p); got != abi.FeaturePartitionKey {
		t.Errorf("features of the new instance = %#x, want %#x", got, abi.FeaturePartitionKey)
	}
	if err := newInstance(0); !isFaultReason(err, wasmhost.FaultInstantiate) {
		t.Errorf("new instance without features: error %v, want a FaultInstantiate", err)
	}
	if got := p.Features(); got != abi.FeaturePartitionKey {
		t.Errorf("Features() = %#x, want %#x", got, abi.FeaturePartitionKey)
	}
}

func isFaultReason(err error, reason wasmhost.FaultReason) bool {
	var f *wasmhost.Fault
	return errors.As(err, &f) && f.Reason == reason
}

// featuresPartition is the partition the features module chooses for key.
func featuresPartition(key []byte, n int32) int32 {
	if key == nil {
		return plugins.DefaultPartition
	}
	sum := uint32(len(key))
	for _, b := range key {
		sum += uint32(b)
	}
	return int32(sum % uint32(n))
}

// TestFeaturePartitionKey checks that a partitioner gets the same
// partitions whether the host passes it records or, with
// KPIPE_FEATURE_PARTITION_KEY, keys (null and empty ones included), one at
// a time or in batches, split into several calls or not.
func TestFeaturePartitionKey(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	rs := keyhashRecords(300)
	if rs[0].Key != nil || rs[1].Key == nil || len(rs[1].Key) != 0 {
		t.Fatal("keyhashRecords no longer starts with a null and an empty key")
	}
	nps := make([]int32, len(rs))
	for i := range nps {
		nps[i] = int32(1 + i%13)
	}
	for _, tc := range []struct {
		name string
		mask uint64
		opts []wasmhost.PluginOption
	}{
		{"records", 0, nil},
		{"keys", abi.FeaturePartitionKey, nil},
		{"records without batch hooks", 0, []wasmhost.PluginOption{wasmhost.WithoutBatchHooks()}},
		{"keys without batch hooks", abi.FeaturePartitionKey, []wasmhost.PluginOption{wasmhost.WithoutBatchHooks()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadFeatures(t, h, tc.mask, tc.opts...)
			for i, r := range rs {
				got, err := p.Partition(ctx, r, nps[i])
				if want := featuresPartition(r.Key, nps[i]); got != want || err != nil {
					t.Fatalf("Partition(key %q, %d) = %d, %v; want %d", r.Key, nps[i], got, err, want)
				}
			}
			for _, chunk := range []int{0, 40} {
				if chunk > 0 {
					defer wasmhost.SetBatchChunk(chunk)()
				}
				parts := make([]int32, len(rs))
				errs := make([]error, len(rs))
				if err := p.PartitionBatch(ctx, rs, nps, parts, errs); err != nil {
					t.Fatal(err)
				}
				for i, r := range rs {
					if want := featuresPartition(r.Key, nps[i]); parts[i] != want || errs[i] != nil {
						t.Fatalf("chunk %d: PartitionBatch: record %d (key %q, %d partitions) = %d, %v; want %d",
							chunk, i, r.Key, nps[i], parts[i], errs[i], want)
					}
				}
			}
		})
	}
}

// ackCase is an acknowledgement and the record it is for.
type ackCase struct {
	r   plugins.Record
	ack plugins.Ack
}

func ackCases() []ackCase {
	delivered := plugins.Record{Topic: "orders", Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100),
		Headers: []plugins.Header{{Key: "h", Value: []byte("x")}}, Timestamp: time.UnixMilli(1_700_000_000_123)}
	delivered.SetPartition(3)
	zero := plugins.Record{Topic: "t", Timestamp: time.UnixMilli(0)}
	zero.SetPartition(0)
	return []ackCase{
		{delivered, plugins.Ack{Offset: 42}},
		{plugins.Record{Topic: "orders", Value: []byte("v")}, plugins.Ack{Offset: -1, Err: errors.New("delivery failed")}},
		{zero, plugins.Ack{Offset: 0}},
	}
}

// wantAckEncoding returns what the host must pass for c: the lean
// acknowledgement, written here by hand, or the full one.
func wantAckEncoding(c ackCase, lean bool) []byte {
	var errText string
	if c.ack.Err != nil {
		errText = c.ack.Err.Error()
	}
	if !lean {
		b := make([]byte, abi.AckSize(errText, &c.r))
		abi.PutAck(b, c.ack.Offset, errText, &c.r)
		return b
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(c.ack.Offset))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(errText)))
	b = append(b, errText...)
	partition, ts := int32(-1), int64(-1)
	if c.r.HasPartition {
		partition = c.r.Partition
	}
	if !c.r.Timestamp.IsZero() {
		ts = c.r.Timestamp.UnixMilli()
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(partition))
	return binary.LittleEndian.AppendUint64(b, uint64(ts))
}

// TestFeatureAckNoRecord checks that with KPIPE_FEATURE_ACK_NO_RECORD the
// host passes acknowledgements without their records (offset, error,
// partition, timestamp), one at a time and in batches, and that the guest
// sees as many as without the feature. The features module echoes its
// input as its error message.
func TestFeatureAckNoRecord(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	cases := ackCases()
	for _, tc := range []struct {
		name    string
		mask    uint64
		noBatch bool
	}{
		{"full", 0, false}, {"lean", abi.FeatureAckNoRecord, false},
		{"full without batch hooks", 0, true}, {"lean without batch hooks", abi.FeatureAckNoRecord, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lean := tc.mask != 0
			var opts []wasmhost.PluginOption
			if tc.noBatch {
				opts = append(opts, wasmhost.WithoutBatchHooks())
			}
			p := loadFeatures(t, h, tc.mask, opts...)
			var rs []*plugins.Record
			var acks []plugins.Ack
			var wants [][]byte
			for i, c := range cases {
				want := wantAckEncoding(c, lean)
				err := p.OnAck(ctx, &c.r, c.ack)
				var ge *wasmhost.GuestError
				if !errors.As(err, &ge) || ge.Message != string(want) {
					t.Fatalf("ack %d: OnAck = %v, want the guest to echo %x", i, err, want)
				}
				rs, acks, wants = append(rs, &c.r), append(acks, c.ack), append(wants, want)
			}
			errs := make([]error, len(rs))
			if err := p.OnAckBatch(ctx, rs, acks, errs); err != nil {
				t.Fatal(err)
			}
			// The guest fails every call: a batch call fails as a
			// whole and is re-run one acknowledgement at a time, so
			// each gets the echo of its own encoding.
			for i, err := range errs {
				var ge *wasmhost.GuestError
				if !errors.As(err, &ge) || ge.Message != string(wants[i]) {
					t.Fatalf("OnAckBatch: ack %d got %v, want the guest to echo %x", i, err, wants[i])
				}
			}
			wantBatches, wantErrors := uint64(1), uint64(2*len(cases)+1)
			if tc.noBatch {
				wantBatches, wantErrors = 0, uint64(2*len(cases))
			}
			if s := p.Stats(); s.Batches.OnAck != wantBatches || s.Errors.OnAck != wantErrors {
				t.Errorf("Stats: %d OnAck batch calls, %d errors; want %d and %d", s.Batches.OnAck, s.Errors.OnAck, wantBatches, wantErrors)
			}
			if s, wantN := p.Stats(), uint64(2*len(cases)); s.Calls.OnAck != wantN {
				t.Errorf("Stats: %d OnAck calls, want %d", s.Calls.OnAck, wantN)
			}
		})
	}
}
