package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpipe/kpipe/internal/plugintest"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// exampleWAT returns the bytes of the compiled example module
// examples/plugins/wat/name.wat.
func exampleWAT(tb testing.TB, name string) []byte {
	tb.Helper()
	return readFile(tb, plugintest.WAT(tb, "examples/plugins/wat/"+name+".wat"))
}

// encode returns the ABI encoding of r, to compare records.
func encode(r *plugins.Record) []byte {
	b := make([]byte, abi.RecordSize(r))
	abi.PutRecord(b, r)
	return b
}

// cloneRecord returns a deep copy of r.
func cloneRecord(r *plugins.Record) *plugins.Record {
	c := *r
	c.Key = bytes.Clone(r.Key)
	c.Value = bytes.Clone(r.Value)
	c.Headers = slices.Clone(r.Headers)
	for i := range c.Headers {
		c.Headers[i].Value = bytes.Clone(c.Headers[i].Value)
	}
	return &c
}

func cloneRecords(rs []*plugins.Record) []*plugins.Record {
	c := make([]*plugins.Record, len(rs))
	for i, r := range rs {
		c[i] = cloneRecord(r)
	}
	return c
}

// modeRecords returns one modeRecord per mode, with distinct keys.
func modeRecords(modes ...int32) []*plugins.Record {
	rs := make([]*plugins.Record, len(modes))
	for i, m := range modes {
		rs[i] = modeRecord(m)
		rs[i].Key = fmt.Appendf(nil, "key-%d", i)
	}
	return rs
}

// errText describes an error for comparisons between batch and single
// calls: its type and message, but not the hook, which names the batch
// export in batch calls.
func errText(err error) string {
	var ge *wasmhost.GuestError
	var f *wasmhost.Fault
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ge):
		return "guest error: " + ge.Message
	case errors.As(err, &f):
		return "fault: " + f.Reason.String()
	}
	return "other: " + err.Error()
}

// sendSingly runs OnSend on a copy of each record, one call after the
// other, and returns the copies, verdicts and errors.
func sendSingly(t *testing.T, p *wasmhost.Plugin, rs []*plugins.Record) ([]*plugins.Record, []plugins.Verdict, []error) {
	t.Helper()
	rs = cloneRecords(rs)
	vs := make([]plugins.Verdict, len(rs))
	errs := make([]error, len(rs))
	for i, r := range rs {
		vs[i], errs[i] = p.OnSend(context.Background(), r)
	}
	return rs, vs, errs
}

// sendBatch runs OnSendBatch on a copy of rs.
func sendBatch(t *testing.T, p *wasmhost.Plugin, rs []*plugins.Record) ([]*plugins.Record, []plugins.Verdict, []error) {
	t.Helper()
	rs = cloneRecords(rs)
	vs := make([]plugins.Verdict, len(rs))
	errs := make([]error, len(rs))
	for i := range vs {
		vs[i] = plugins.Verdict(99) // must be overwritten
		errs[i] = errors.New("not set")
	}
	if err := p.OnSendBatch(context.Background(), rs, vs, errs); err != nil {
		t.Fatalf("OnSendBatch: %v", err)
	}
	return rs, vs, errs
}

// sameSends checks that two runs of the same records ended alike.
func sameSends(t *testing.T, what string, wantRs, gotRs []*plugins.Record, wantVs, gotVs []plugins.Verdict, wantErrs, gotErrs []error) {
	t.Helper()
	for i := range wantRs {
		if w, g := errText(wantErrs[i]), errText(gotErrs[i]); w != g {
			t.Errorf("%s: record %d: error %q, want %q (%v)", what, i, g, w, gotErrs[i])
		}
		if wantErrs[i] == nil && wantVs[i] != gotVs[i] {
			t.Errorf("%s: record %d: verdict %v, want %v", what, i, gotVs[i], wantVs[i])
		}
		if !bytes.Equal(encode(wantRs[i]), encode(gotRs[i])) {
			t.Errorf("%s: record %d: %+v, want %+v", what, i, gotRs[i], wantRs[i])
		}
	}
}

// TestOnSendBatchEqualsSingle checks that OnSendBatch gives every record
// what OnSend gives it, through kpipe_on_send_batch and through the
// per-record fallback, for records that keep, drop, fail or replace.
func TestOnSendBatchEqualsSingle(t *testing.T) {
	h := newHost(t)
	wasm := wat(t, "batch")
	batched := load(t, h, "batch", wasm, plugins.KindInterceptor)
	single := load(t, h, "single", wasm, plugins.KindInterceptor, wasmhost.WithoutBatchHooks())
	for _, modes := range [][]int32{
		{0},
		{3},
		{0, 1, 2, 3},
		{3, 3, 2, 2, 1, 0, 3},
		{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3},
	} {
		t.Run(fmt.Sprint(modes), func(t *testing.T) {
			rs := modeRecords(modes...)
			wantRs, wantVs, wantErrs := sendSingly(t, single, rs)
			before := batched.Stats()
			gotRs, gotVs, gotErrs := sendBatch(t, batched, rs)
			sameSends(t, "batch export", wantRs, gotRs, wantVs, gotVs, wantErrs, gotErrs)
			after := batched.Stats()
			if n := after.Calls.OnSend - before.Calls.OnSend; n != uint64(len(rs)) {
				t.Errorf("Calls.OnSend grew by %d, want %d", n, len(rs))
			}
			wantBatches := uint64(1)
			if len(rs) == 1 {
				wantBatches = 0 // kpipe_on_send serves a single record
			}
			if n := after.Batches.OnSend - before.Batches.OnSend; n != wantBatches {
				t.Errorf("Batches.OnSend grew by %d, want %d", n, wantBatches)
			}
			gotRs, gotVs, gotErrs = sendBatch(t, single, rs)
			sameSends(t, "per-record fallback", wantRs, gotRs, wantVs, gotVs, wantErrs, gotErrs)
			if n := single.Stats().Batches.OnSend; n != 0 {
				t.Errorf("fallback: Batches.OnSend = %d, want 0", n)
			}
		})
	}
	// The message of a failed record is the batch call's set_error.
	_, _, errs := sendBatch(t, batched, modeRecords(0, 2))
	wantGuestError(t, errs[1], "batch", "kpipe_on_send_batch", "bad record")
}

// TestOnSendBatchNoop runs the example no-op interceptor's batch hook.
func TestOnSendBatchNoop(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "noop", exampleWAT(t, "noop"), plugins.KindInterceptor)
	for _, n := range []int{1, 2, 64, 1000} {
		rs := make([]*plugins.Record, n)
		for i := range rs {
			rs[i] = benchRecord()
			rs[i].Key = fmt.Appendf(nil, "k%d", i)
		}
		gotRs, vs, errs := sendBatch(t, p, rs)
		for i := range rs {
			if errs[i] != nil || vs[i] != plugins.Continue || !bytes.Equal(encode(gotRs[i]), encode(rs[i])) {
				t.Fatalf("n=%d: record %d: verdict %v, error %v, record %+v; want it unchanged", n, i, vs[i], errs[i], gotRs[i])
			}
		}
	}
	s := p.Stats()
	// The batch of 1 goes to kpipe_on_send.
	if s.Calls.OnSend != 1067 || s.Batches.OnSend != 3 {
		t.Errorf("Calls.OnSend = %d, Batches.OnSend = %d; want 1067 and 3", s.Calls.OnSend, s.Batches.OnSend)
	}
}

// TestOnSendBatchWholeCall covers the results of kpipe_on_send_batch that
// apply to every record of the call (a fault, KPIPE_ERROR of the whole
// call): no record is changed by the failed call, and the call is re-run
// one record at a time, so that each record ends exactly as a single call
// leaves it.
func TestOnSendBatchWholeCall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modes  []int32
		fault  wasmhost.FaultReason // 0: no fault
		errMsg string               // with no fault: the GuestError of the whole call, or "" for none
		opts   []wasmhost.PluginOption
	}{
		{"record result above the output limit", []int32{0, 3}, wasmhost.FaultInvalidOutput, "", []wasmhost.PluginOption{wasmhost.WithMaxOutputBytes(16)}},
		{"error", []int32{20, 3, 0}, 0, "whole batch", nil},
		{"unchanged", []int32{23, 1, 2, 3}, 0, "", nil},
		{"array too short", []int32{21, 3, 0}, wasmhost.FaultInvalidOutput, "", nil},
		{"array out of bounds", []int32{22, 3}, wasmhost.FaultInvalidOutput, "", nil},
		{"unknown status", []int32{24, 3}, wasmhost.FaultInvalidOutput, "", nil},
		{"record result unknown status", []int32{3, 0, 4}, wasmhost.FaultInvalidOutput, "", nil},
		{"record result out of bounds", []int32{3, 5, 0}, wasmhost.FaultInvalidOutput, "", nil},
		{"record result does not decode", []int32{3, 7}, wasmhost.FaultInvalidOutput, "", nil},
		{"trap", []int32{3, 1, 6, 2}, wasmhost.FaultTrap, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			p := load(t, h, "batch", wat(t, "batch"), plugins.KindInterceptor, tc.opts...)
			single := load(t, h, "batch", wat(t, "batch"), plugins.KindInterceptor, append(tc.opts, wasmhost.WithoutBatchHooks())...)
			rs := modeRecords(tc.modes...)
			gotRs, vs, errs := sendBatch(t, p, rs)
			wantRs, wantVs, wantErrs := sendBatch(t, single, rs)
			if tc.fault == 0 && tc.errMsg == "" {
				// The whole call succeeded, changing nothing.
				wantRs, wantVs, wantErrs = rs, make([]plugins.Verdict, len(rs)), make([]error, len(rs))
			}
			for i := range rs {
				if errText(errs[i]) != errText(wantErrs[i]) || vs[i] != wantVs[i] {
					t.Errorf("record %d: verdict %v, error %v; want %v, %v as with a single call", i, vs[i], errs[i], wantVs[i], wantErrs[i])
				}
				if !bytes.Equal(encode(gotRs[i]), encode(wantRs[i])) {
					t.Errorf("record %d: %+v, want %+v as with a single call", i, gotRs[i], wantRs[i])
				}
			}
			s, ss := p.Stats(), single.Stats()
			if s.Batches.OnSend != 1 {
				t.Errorf("Batches.OnSend = %d, want 1", s.Batches.OnSend)
			}
			// The failed batch call counts one fault (or error), then
			// the re-run counts what single calls count.
			wantFaults := ss.Faults[tc.fault]
			if tc.fault != 0 {
				wantFaults++
			}
			if tc.fault != 0 && s.Faults[tc.fault] != wantFaults || s.InstancesReplaced != ss.InstancesReplaced+map[bool]uint64{true: 1}[tc.fault != 0] {
				t.Errorf("Faults = %v, InstancesReplaced = %d; want %d faults, %d replaced", s.Faults, s.InstancesReplaced, wantFaults, ss.InstancesReplaced+1)
			}
			if tc.errMsg != "" && s.Errors.OnSend != ss.Errors.OnSend+1 {
				t.Errorf("Errors.OnSend = %d, want %d (the batch call's, then one per record that fails alone)", s.Errors.OnSend, ss.Errors.OnSend+1)
			}
			// The plugin keeps working after the fault.
			_, vs, errs = sendBatch(t, p, modeRecords(1, 0))
			if errs[0] != nil || errs[1] != nil || vs[0] != plugins.Drop || vs[1] != plugins.Continue {
				t.Errorf("after: %v, %v, errors %v, %v; want Drop, Continue and no errors", vs[0], vs[1], errs[0], errs[1])
			}
		})
	}
}

// TestOnSendBatchFaultInChunks splits a batch into calls of two records and
// faults the second call: the first call's results stay, the second call's
// records are re-run one at a time (record 2 traps alone, record 3 goes
// through), and the third call runs on a fresh instance.
func TestOnSendBatchFaultInChunks(t *testing.T) {
	rs := modeRecords(3, 1, 6, 3, 3, 2)
	defer wasmhost.SetBatchChunk(2 * (4 + abi.RecordSize(rs[0])))()
	h := newHost(t)
	p := load(t, h, "batch", wat(t, "batch"), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
	gotRs, vs, errs := sendBatch(t, p, rs)
	if errs[0] != nil || gotRs[0].HasPartition || errs[1] != nil || vs[1] != plugins.Drop {
		t.Errorf("first call: records %+v, %v (%v, %v); want the partition cleared and a drop", gotRs[0], errs[0], vs[1], errs[1])
	}
	wantFault(t, errs[2], "batch", "kpipe_on_send", wasmhost.FaultTrap)
	if !bytes.Equal(encode(gotRs[2]), encode(rs[2])) {
		t.Errorf("record 2, which faulted, changed")
	}
	if errs[3] != nil || gotRs[3].HasPartition {
		t.Errorf("record 3, re-run alone: %+v, %v; want its partition cleared", gotRs[3], errs[3])
	}
	if errs[4] != nil || gotRs[4].HasPartition {
		t.Errorf("third call: record 4 %+v, %v; want its partition cleared", gotRs[4], errs[4])
	}
	wantGuestError(t, errs[5], "batch", "kpipe_on_send_batch", "bad record")
	s := p.Stats()
	if s.Batches.OnSend != 3 || s.InstancesCreated != 3 || s.InstancesReplaced != 2 || s.Faults[wasmhost.FaultTrap] != 2 {
		t.Errorf("Batches.OnSend = %d, InstancesCreated = %d, InstancesReplaced = %d, Faults %v; want 3, 3, 2 and 2 traps",
			s.Batches.OnSend, s.InstancesCreated, s.InstancesReplaced, s.Faults)
	}
}

// TestOnSendBatchFallbackFault runs a batch through a module without batch
// exports (faulty.wat) that traps on the fourth record: the records before
// keep their results, the fourth gets the fault, and the rest run on a
// fresh instance.
func TestOnSendBatchFallbackFault(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
	// faulty.wat: 12 clears the partition flag, 10 drops, 7 fails, 1 traps.
	rs := modeRecords(12, 10, 7, 1, 12, 0)
	gotRs, vs, errs := sendBatch(t, p, rs)
	if errs[0] != nil || gotRs[0].HasPartition {
		t.Errorf("record 0: %+v, %v; want its partition cleared", gotRs[0], errs[0])
	}
	if errs[1] != nil || vs[1] != plugins.Drop {
		t.Errorf("record 1: %v, %v; want a drop", vs[1], errs[1])
	}
	wantGuestError(t, errs[2], "faulty", "kpipe_on_send", "bad record")
	wantFault(t, errs[3], "faulty", "kpipe_on_send", wasmhost.FaultTrap)
	if !bytes.Equal(encode(gotRs[3]), encode(rs[3])) {
		t.Error("the record whose call trapped changed")
	}
	if errs[4] != nil || gotRs[4].HasPartition || errs[5] != nil || vs[5] != plugins.Continue {
		t.Errorf("records after the fault: %+v, %v, %v, %v; want the partition cleared, then unchanged", gotRs[4], errs[4], vs[5], errs[5])
	}
	s := p.Stats()
	if s.Calls.OnSend != 6 || s.Batches.OnSend != 0 || s.InstancesCreated != 2 || s.InstancesReplaced != 1 {
		t.Errorf("stats %+v; want 6 calls, no batch calls, 2 instances created, 1 replaced", s)
	}
}

// keyhashRecords returns records with n different keys, among them a null
// and an empty key, and keys of every length from 0 to 40 bytes.
func keyhashRecords(n int) []*plugins.Record {
	rs := make([]*plugins.Record, n)
	for i := range rs {
		rs[i] = &plugins.Record{Topic: "t" + strconv.Itoa(i%5), Value: []byte("v")}
		switch {
		case i == 0:
			rs[i].Key = nil
		case i < 42:
			rs[i].Key = bytes.Repeat([]byte{byte('a' + i%26)}, i-1)
		default:
			rs[i].Key = fmt.Appendf(nil, "key-%d-%x", i, i*7919)
		}
	}
	return rs
}

// TestPartitionBatchKeyhash checks that the example keyhash partitioner's
// kpipe_partition_batch places every record where its kpipe_partition
// does, for many keys, partition counts (including invalid ones, which
// fail a record alone) and batch sizes, in one call or split in several.
func TestPartitionBatchKeyhash(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "keyhash", exampleWAT(t, "keyhash"), plugins.KindPartitioner)
	ctx := context.Background()
	rs := keyhashRecords(600)
	counts := []int32{1, 2, 3, 7, 12, 64, 1000, 0, -1}
	numPartitions := make([]int32, len(rs))
	for i := range numPartitions {
		numPartitions[i] = counts[(i/3)%len(counts)]
	}
	wantParts := make([]int32, len(rs))
	wantErrs := make([]error, len(rs))
	for i, r := range rs {
		wantParts[i], wantErrs[i] = p.Partition(ctx, r, numPartitions[i])
	}
	for _, tc := range []struct {
		name  string
		size  int // records per PartitionBatch
		chunk int // 0: the default
	}{
		{"1", 1, 0}, {"16", 16, 0}, {"64", 64, 0}, {"all", len(rs), 0},
		{"all in calls of 50 bytes", len(rs), 50}, {"all, each larger than a call", len(rs), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chunk > 0 {
				defer wasmhost.SetBatchChunk(tc.chunk)()
			}
			before := p.Stats()
			parts := make([]int32, len(rs))
			errs := make([]error, len(rs))
			for i := 0; i < len(rs); i += tc.size {
				j := min(i+tc.size, len(rs))
				if err := p.PartitionBatch(ctx, rs[i:j], numPartitions[i:j], parts[i:j], errs[i:j]); err != nil {
					t.Fatalf("PartitionBatch: %v", err)
				}
			}
			for i := range rs {
				if parts[i] != wantParts[i] || errText(errs[i]) != errText(wantErrs[i]) {
					t.Errorf("record %d (key %q, %d partitions): %d, %v; want %d, %v",
						i, rs[i].Key, numPartitions[i], parts[i], errs[i], wantParts[i], wantErrs[i])
				}
			}
			after := p.Stats()
			batches := after.Batches.Partition - before.Batches.Partition
			// One batch call per PartitionBatch, except for a single
			// record, which kpipe_partition serves.
			var wantBatches uint64
			if tc.size > 1 {
				wantBatches = uint64(len(rs) / tc.size)
				if len(rs)%tc.size > 1 {
					wantBatches++
				}
			}
			if tc.chunk == 1 {
				// One call per record, the last one alone through
				// kpipe_partition.
				if batches != uint64(len(rs)-1) {
					t.Errorf("%d batch calls, want one per record but the last", batches)
				}
			} else if tc.chunk > 0 {
				if batches < uint64(len(rs))/5 {
					t.Errorf("%d batch calls; want the batch split into many", batches)
				}
			} else if batches != wantBatches {
				t.Errorf("%d batch calls, want %d", batches, wantBatches)
			}
			if n := after.Calls.Partition - before.Calls.Partition; n != uint64(len(rs)) {
				t.Errorf("Calls.Partition grew by %d, want %d", n, len(rs))
			}
		})
	}
	if s := p.Stats(); s.InstancesReplaced != 0 {
		t.Errorf("InstancesReplaced = %d, want 0", s.InstancesReplaced)
	}
}

// TestPartitionBatchResults covers the results of kpipe_partition_batch
// record by record (batch.wat returns the record's partition field) and
// for the whole call.
func TestPartitionBatchResults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []int32 // what the guest returns for each record
		fault   wasmhost.FaultReason
	}{
		{"partitions", []int32{0, 5, 9, 3}, 0},
		{"default, error, out of range", []int32{-4, 1, -2, 10, 7, -2}, 0},
		{"unknown status", []int32{1, 2, -9}, wasmhost.FaultInvalidOutput},
		{"array too short", []int32{98, 1}, wasmhost.FaultInvalidOutput},
		{"trap", []int32{99, 1}, wasmhost.FaultTrap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			p := load(t, h, "batch", wat(t, "batch"), plugins.KindPartitioner)
			single := load(t, h, "single", wat(t, "batch"), plugins.KindPartitioner, wasmhost.WithoutBatchHooks())
			rs := modeRecords(tc.results...)
			nps := make([]int32, len(rs))
			for i := range nps {
				nps[i] = 10
			}
			parts := make([]int32, len(rs))
			errs := make([]error, len(rs))
			if err := p.PartitionBatch(context.Background(), rs, nps, parts, errs); err != nil {
				t.Fatalf("PartitionBatch: %v", err)
			}
			if tc.fault != 0 {
				// The failed batch call is re-run one record at a
				// time: each record gets what a single call gives.
				if s := p.Stats(); s.Faults[tc.fault] < 1 || s.Batches.Partition != 1 {
					t.Errorf("Faults = %v, Batches.Partition = %d; want a %v fault of the batch call", s.Faults, s.Batches.Partition, tc.fault)
				}
			}
			for i, r := range rs {
				want, wantErr := single.Partition(context.Background(), r, nps[i])
				if parts[i] != want || errText(errs[i]) != errText(wantErr) {
					t.Errorf("record %d: %d, %v; want %d, %v", i, parts[i], errs[i], want, wantErr)
				}
			}
			if s, ss := p.Stats(), single.Stats(); tc.fault == 0 && s.Errors.Partition != ss.Errors.Partition {
				t.Errorf("Errors.Partition = %d, want %d as with single calls", s.Errors.Partition, ss.Errors.Partition)
			}
		})
	}
}

// TestBatchKindErrors checks that a batch call of a kind the plugin does not
// have fails as a whole.
func TestBatchKindErrors(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	part := load(t, h, "keyhash", exampleWAT(t, "keyhash"), plugins.KindPartitioner)
	rs := modeRecords(0)
	err := part.OnSendBatch(ctx, rs, make([]plugins.Verdict, 1), make([]error, 1))
	if err == nil || !strings.Contains(err.Error(), "kpipe_on_send: the plugin is not a interceptor") {
		t.Errorf("OnSendBatch of a partitioner: %v, want an error", err)
	}
	if err := part.OnAckBatch(ctx, rs[:1], make([]plugins.Ack, 1), make([]error, 1)); err == nil {
		t.Errorf("OnAckBatch of a partitioner: %v, want an error", err)
	}
	icpt := load(t, h, "noop", exampleWAT(t, "noop"), plugins.KindInterceptor)
	if err := icpt.PartitionBatch(ctx, rs, []int32{3}, make([]int32, 1), make([]error, 1)); err == nil {
		t.Error("PartitionBatch of an interceptor: nil error")
	}
}

// TestLoadBatchExports checks the load-time checks of the batch exports.
func TestLoadBatchExports(t *testing.T) {
	h := newHost(t)
	for _, tc := range []struct {
		module, want string
	}{
		{"mistyped_batch", "export kpipe_on_send_batch has type (i32) -> i64, want (i32, i32) -> i64"},
		{"ack_batch_only", "exports kpipe_on_ack_batch without kpipe_on_ack"},
	} {
		t.Run(tc.module, func(t *testing.T) {
			_, err := h.Load(context.Background(), tc.module, wat(t, tc.module), plugins.KindInterceptor)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

var (
	ackLine   = regexp.MustCompile(`\back (-?\d+)`)
	batchLine = regexp.MustCompile(`\bbatch (\d+)`)
)

// guestAcks returns the offsets of the acknowledgements batch.wat logged,
// in order, and the sizes of the batch calls it logged.
func guestAcks(t *testing.T, log string) (offsets []int64, batches []int) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if m := ackLine.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			offsets = append(offsets, n)
		}
		if m := batchLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			batches = append(batches, n)
		}
	}
	return offsets, batches
}

// ackBatch calls OnAckBatch with one record, reused (the caller may reuse
// records once the call returned), per acknowledgement of acks.
func ackBatch(p *wasmhost.Plugin, r *plugins.Record, acks []plugins.Ack) ([]error, error) {
	rs := make([]*plugins.Record, len(acks))
	for i := range rs {
		rs[i] = r
	}
	errs := make([]error, len(acks))
	return errs, p.OnAckBatch(context.Background(), rs, acks, errs)
}

// TestOnAckBatch checks that OnAckBatch delivers exactly the
// acknowledgements it is given, in order, through kpipe_on_ack_batch or
// through kpipe_on_ack, and that a failed batch call costs exactly the
// acknowledgements whose own call fails.
func TestOnAckBatch(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        []wasmhost.PluginOption
		wantBatches []int // nil: per-record calls
		chunk       int   // the batch input limit; 0: the default
	}{
		{"batch export", nil, []int{4, 4, 2}, 0},
		{"batch export, one call per acknowledgement", nil, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1},
		{"per-record fallback", []wasmhost.PluginOption{wasmhost.WithoutBatchHooks()}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chunk > 0 {
				defer wasmhost.SetBatchChunk(tc.chunk)()
			}
			var logs logBuffer
			h := newHost(t)
			// The guest logs every acknowledgement: no log rate limit.
			opts := append([]wasmhost.PluginOption{wasmhost.WithLogger(newLogger(&logs)), wasmhost.WithLogRateLimit(0, 1)}, tc.opts...)
			p := load(t, h, "batch", wat(t, "batch"), plugins.KindInterceptor, opts...)
			r := modeRecord(0)
			for _, batch := range [][]int64{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}} {
				var acks []plugins.Ack
				for _, o := range batch {
					acks = append(acks, plugins.Ack{Offset: o})
				}
				r.Value = fmt.Appendf(r.Value[:0], "value %d", batch[0]) // the record is reused
				errs, err := ackBatch(p, r, acks)
				if err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
					t.Fatalf("OnAckBatch %v: %v, %v", batch, err, errs)
				}
			}
			offsets, batches := guestAcks(t, logs.String())
			if want := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(offsets, want) {
				t.Errorf("the guest saw acknowledgements %v, want %v", offsets, want)
			}
			if !slices.Equal(batches, tc.wantBatches) {
				t.Errorf("the guest saw batches of %v, want %v", batches, tc.wantBatches)
			}
			s := p.Stats()
			if s.Calls.OnAck != 10 || s.Batches.OnAck != uint64(len(tc.wantBatches)) {
				t.Errorf("Calls.OnAck = %d, Batches.OnAck = %d; want 10 and %d", s.Calls.OnAck, s.Batches.OnAck, len(tc.wantBatches))
			}

			// A failed acknowledgement fails its own call: the batch
			// call that fails as a whole is re-run one at a time.
			errs, err := ackBatch(p, r, []plugins.Ack{{Offset: 10}, {Offset: -7, Err: errors.New("broker said no")}})
			if err != nil || errs[0] != nil {
				t.Errorf("OnAckBatch: %v, errs %v; want only the second acknowledgement to fail", err, errs)
			}
			hook := "kpipe_on_ack"
			if tc.chunk == 1 {
				hook = "kpipe_on_ack_batch" // a batch call of one: its failure is its record's
			}
			wantGuestError(t, errs[1], "batch", hook, "bad ack")
		})
	}
}

// TestOnAckBatchNotWanted checks that an interceptor without kpipe_on_ack
// is never given acknowledgements.
func TestOnAckBatchNotWanted(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "sendonly", wat(t, "sendonly"), plugins.KindInterceptor)
	for range 3 {
		if errs, err := ackBatch(p, modeRecord(0), make([]plugins.Ack, 2)); err != nil || errs[0] != nil || errs[1] != nil {
			t.Fatalf("OnAckBatch = %v, %v; want nothing", errs, err)
		}
	}
	if s := p.Stats(); s.Calls.OnAck != 0 {
		t.Errorf("Calls.OnAck = %d, want 0", s.Calls.OnAck)
	}
}

// TestOnAckBatchConcurrent delivers acknowledgements from several
// goroutines at once: every acknowledgement reaches the guest once. Run it
// with -race.
func TestOnAckBatchConcurrent(t *testing.T) {
	var logs logBuffer
	h := newHost(t)
	p := load(t, h, "batch", wat(t, "batch"), plugins.KindInterceptor,
		wasmhost.WithLogger(newLogger(&logs)), wasmhost.WithPoolSize(2),
		wasmhost.WithLogRateLimit(0, 1)) // the guest logs every acknowledgement
	const goroutines, perGoroutine, batch = 4, 248, 8
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := modeRecord(0)
			for i := 0; i < perGoroutine; i += batch {
				acks := make([]plugins.Ack, batch)
				for k := range acks {
					acks[k].Offset = int64(g*perGoroutine + i + k)
				}
				if errs, err := ackBatch(p, r, acks); err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
					t.Error(err, errs)
				}
			}
		}()
	}
	wg.Wait()
	offsets, _ := guestAcks(t, logs.String())
	slices.Sort(offsets)
	for i, o := range offsets {
		if o != int64(i) {
			t.Fatalf("the guest saw %d acknowledgements, the %dth sorted is %d; want each of 0..%d once",
				len(offsets), i, o, goroutines*perGoroutine-1)
		}
	}
	if len(offsets) != goroutines*perGoroutine {
		t.Errorf("the guest saw %d acknowledgements, want %d", len(offsets), goroutines*perGoroutine)
	}
}

// TestBatchAllocs checks that batch calls that change nothing allocate
// nothing, through the batch exports and through the per-record fallback.
func TestBatchAllocs(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	noop := load(t, h, "noop", exampleWAT(t, "noop"), plugins.KindInterceptor, wasmhost.WithCallTimeout(0))
	fallback := load(t, h, "fallback", wat(t, "noop"), plugins.KindInterceptor)
	keyhash := load(t, h, "keyhash", exampleWAT(t, "keyhash"), plugins.KindPartitioner)
	acks := load(t, h, "acks", exampleWAT(t, "noop"), plugins.KindInterceptor)
	rs := keyhashRecords(64)[1:]
	vs := make([]plugins.Verdict, len(rs))
	errs := make([]error, len(rs))
	nps := make([]int32, len(rs))
	for i := range nps {
		nps[i] = 12
	}
	parts := make([]int32, len(rs))
	ackList := make([]plugins.Ack, len(rs))
	for i := range ackList {
		ackList[i].Offset = 1
	}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"OnSendBatch", func() { _ = noop.OnSendBatch(ctx, rs, vs, errs) }},
		{"OnSendBatch fallback", func() { _ = fallback.OnSendBatch(ctx, rs, vs, errs) }},
		{"PartitionBatch", func() { _ = keyhash.PartitionBatch(ctx, rs, nps, parts, errs) }},
		{"OnAckBatch", func() { _ = acks.OnAckBatch(ctx, rs[:20], ackList[:20], errs[:20]) }},
	} {
		tc.f() // warm up: buffers, instances
		if n := testing.AllocsPerRun(50, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
}

// TestBatchCanceled cancels the context of a batch whose first call runs
// for ever: that call is stopped (FaultCanceled), and the records after it
// fail with the context's error, without an instance created for each.
func TestBatchCanceled(t *testing.T) {
	h := newHost(t)
	p := load(t, h, "faulty", wat(t, "faulty"), plugins.KindInterceptor, wasmhost.WithPoolSize(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// faulty.wat: 2 loops for ever.
	rs := modeRecords(2, 0, 0)
	errs := make([]error, len(rs))
	if err := p.OnSendBatch(ctx, rs, make([]plugins.Verdict, len(rs)), errs); err != nil {
		t.Fatalf("OnSendBatch: %v", err)
	}
	wantFault(t, errs[0], "faulty", "kpipe_on_send", wasmhost.FaultCanceled)
	for _, err := range errs[1:] {
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"faulty"`) {
			t.Errorf("error %v, want the plugin's name and context.Canceled", err)
		}
	}
	if s := p.Stats(); s.InstancesCreated != 1 || s.InstancesReplaced != 1 {
		t.Errorf("InstancesCreated = %d, InstancesReplaced = %d; want 1 and 1", s.InstancesCreated, s.InstancesReplaced)
	}
}

// errKind is errText without the message.
func errKind(err error) string {
	s, _, _ := strings.Cut(errText(err), ":")
	return s
}

// TestBatchGoSDKGuest runs the batch hooks of a Go SDK guest (sdk/go)
// against its per-record hooks: the host and the SDK must agree on the
// batch encodings and results (ABI 5.5).
func TestBatchGoSDKGuest(t *testing.T) {
	h := newHost(t)
	wasm := goGuest(t, goSDKGuest)
	p := load(t, h, "sdk", wasm, plugins.KindInterceptor|plugins.KindPartitioner, wasmhost.WithPoolSize(1))
	// sdkguest: 0 unchanged, 1 panic, 2 error, 4 changed, 8 drop.
	rs := modeRecords(0, 4, 2, 8, 1, 4, 0)
	wantRs, wantVs, wantErrs := sendSingly(t, p, rs)
	gotRs, gotVs, gotErrs := sendBatch(t, p, rs)
	for i := range rs {
		if errKind(gotErrs[i]) != errKind(wantErrs[i]) || wantErrs[i] == nil && gotVs[i] != wantVs[i] ||
			!bytes.Equal(encode(gotRs[i]), encode(wantRs[i])) {
			t.Errorf("record %d: %v, %v, %+v; want %v, %v, %+v", i, gotVs[i], gotErrs[i], gotRs[i], wantVs[i], wantErrs[i], wantRs[i])
		}
	}
	if s := p.Stats(); s.Batches.OnSend != 1 || s.InstancesReplaced != 0 {
		t.Errorf("Batches.OnSend = %d, InstancesReplaced = %d; want 1 and 0", s.Batches.OnSend, s.InstancesReplaced)
	}

	keys := keyhashRecords(100)
	nps := make([]int32, len(keys))
	for i := range nps {
		nps[i] = int32(1 + i%7)
	}
	parts := make([]int32, len(keys))
	errs := make([]error, len(keys))
	if err := p.PartitionBatch(context.Background(), keys, nps, parts, errs); err != nil {
		t.Fatal(err)
	}
	for i, r := range keys {
		want, wantErr := p.Partition(context.Background(), r, nps[i])
		if parts[i] != want || errKind(errs[i]) != errKind(wantErr) {
			t.Errorf("partition of record %d: %d, %v; want %d, %v", i, parts[i], errs[i], want, wantErr)
		}
	}
	if s := p.Stats(); s.Batches.Partition != 1 {
		t.Errorf("Batches.Partition = %d, want 1", s.Batches.Partition)
	}

	// sdkguest's OnAck fails with a description of the acknowledgement:
	// the batch call fails as a whole and is re-run one acknowledgement
	// at a time, so that each gets the message of its own call.
	r := modeRecord(0)
	errs2, err := ackBatch(p, r, []plugins.Ack{{Offset: 5}, {Offset: 6}})
	if err != nil {
		t.Fatal(err)
	}
	wantGuestError(t, errs2[0], "sdk", "kpipe_on_ack", "ack offset=5")
	wantGuestError(t, errs2[1], "sdk", "kpipe_on_ack", "ack offset=6")
	if s := p.Stats(); s.Batches.OnAck != 1 {
		t.Errorf("Batches.OnAck = %d, want 1 (the failed batch call)", s.Batches.OnAck)
	}
}

// TestBatchFaultsCostTheirRecordsOnly runs 20,000 records through the batch
// hook of a WAT guest and of a Go guest, in batches of 64, where exactly 1%
// of the records make the guest fault (a trap, an exit). A faulting batch
// call is re-run one record at a time on a healthy instance: exactly those
// 200 records fail, unchanged, and every other record gets the change.
func TestBatchFaultsCostTheirRecordsOnly(t *testing.T) {
	for _, g := range []struct {
		name        string
		wasm        func(testing.TB) []byte
		change, bad int32
		changed     func(r *plugins.Record) bool
		reason      wasmhost.FaultReason
	}{
		// batch.wat: 3 clears the partition flag, 6 traps.
		{"wat", func(tb testing.TB) []byte { return wat(tb, "batch") }, 3, 6,
			func(r *plugins.Record) bool { return !r.HasPartition }, wasmhost.FaultTrap},
		// sdkguest: 4 upper-cases the value, 10 exits.
		{"go", func(tb testing.TB) []byte { return goGuest(tb, goSDKGuest) }, 4, 10,
			func(r *plugins.Record) bool { return string(r.Value) == "HELLO" }, wasmhost.FaultExit},
	} {
		t.Run(g.name, func(t *testing.T) {
			h := newHost(t)
			var logs logBuffer
			p := load(t, h, "one-percent", g.wasm(t), plugins.KindInterceptor, wasmhost.WithPoolSize(1),
				wasmhost.WithLogger(newLogger(&logs)))
			const n, batch = 20000, 64
			modes := make([]int32, n)
			for i := range modes {
				modes[i] = g.change
				if i%100 == 37 {
					modes[i] = g.bad
				}
			}
			rs := modeRecords(modes...)
			vs, errs := make([]plugins.Verdict, n), make([]error, n)
			start := time.Now()
			for i := 0; i < n; i += batch {
				j := min(i+batch, n)
				if err := p.OnSendBatch(context.Background(), rs[i:j], vs[i:j], errs[i:j]); err != nil {
					t.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			unchanged, failed := 0, 0
			for i, r := range rs {
				if !g.changed(r) {
					unchanged++
				}
				if errs[i] != nil {
					failed++
					if modes[i] != g.bad {
						t.Fatalf("record %d (mode %d) failed: %v", i, modes[i], errs[i])
					}
					wantFault(t, errs[i], "one-percent", "kpipe_on_send", g.reason)
				}
			}
			s := p.Stats()
			t.Logf("%d records, %d unchanged, %d failed, %v; faults %v, %d instances created, %d batch calls",
				n, unchanged, failed, elapsed, s.Faults, s.InstancesCreated, s.Batches.OnSend)
			if unchanged != 200 || failed != 200 {
				t.Errorf("%d records unchanged, %d failed; want exactly 200 of each", unchanged, failed)
			}
			if s.Calls.OnSend != n {
				t.Errorf("Calls.OnSend = %d, want %d", s.Calls.OnSend, n)
			}
		})
	}
}
