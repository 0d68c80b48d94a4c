package wasmhost

import (
	"context"
	"fmt"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost/internal/abi"
)

// Compile-time checks that Plugin implements the batch interfaces.
var (
	_ plugins.BatchInterceptor = (*Plugin)(nil)
	_ plugins.BatchPartitioner = (*Plugin)(nil)
	_ plugins.AckBatcher       = (*Plugin)(nil)
	_ plugins.Closer           = (*Plugin)(nil)
)

// batchChunk bounds the input of one batch call: a batch whose encoding is
// larger is split into several calls, so that a batch of large records
// does not make every instance keep an input buffer of its whole size. A
// single entry larger than batchChunk goes alone in its call. A variable
// for the tests.
var batchChunk = 1 << 20

// chunk returns the end j of the chunk of rs that starts at i, whose
// entries have a header of hdr bytes and an encoding of size(r) bytes, and
// the size of the chunk's encoding. If the entry of rs[i] alone is larger
// than the ABI allows, it returns i+1 and -1, and the batch call takes
// nothing (returns i): the record goes to the single-record hook, whose
// input has no header (and which refuses it if it is too large even so).
func chunk(rs []*plugins.Record, i, hdr int, size func(*plugins.Record) int) (j, total int) {
	for j = i; j < len(rs); j++ {
		n := hdr + size(rs[j])
		if n > abi.MaxSize {
			if j == i {
				return i + 1, -1
			}
			break
		}
		if j > i && total+n > batchChunk {
			break
		}
		total += n
	}
	return j, total
}

// maxRerunFaults bounds the re-run of failed batch calls (see batchLoop):
// once this many records of one batch faulted in their own calls, the
// records of the batch not re-run yet fail with the error of the batch call
// without being run again.
const maxRerunFaults = 8

// batchLoop runs a batch of count records of hook h on a single pool
// instance: step handles the batch from record i on, on inst, and returns
// where it stopped and its error; with single it must handle record i
// alone, with the per-record hook. A *Fault makes batchLoop discard the
// instance and go on with a fresh one.
//
// A batch call that fails as a whole (step returns an error for more than
// one record: a fault, or KPIPE_ERROR of the whole call) does not decide the
// fate of its records: batchLoop runs them again one at a time, on a
// healthy instance, so that exactly the records whose own call fails get an
// error. The extra time this costs is bounded: a re-run makes at most one
// call per record of the failed batch call, and stops calling after
// maxRerunFaults faults in one batch (each costs at most the call timeout
// and the creation of an instance); the records not re-run then keep the
// batch call's error.
//
// If no fresh instance can be had, fail(i, err) is told that everything
// from record i on failed with err. batchLoop returns an error only if no
// instance could be had at all.
func (p *Plugin) batchLoop(ctx context.Context, h hook, count int,
	step func(inst *instance, i int, single bool) (int, error), fail func(i int, err error)) error {
	if err := p.checkKind(h); err != nil {
		return err
	}
	if count == 0 {
		return nil
	}
	p.stats.calls[h].Add(uint64(count))
	inst, err := p.acquire(ctx, h)
	if err != nil {
		return err
	}
	rerunTo, faults := 0, 0 // records before rerunTo are re-run one at a time
	var batchErr error
	for i := 0; i < count; {
		if inst == nil {
			if ctx.Err() != nil {
				// A canceled call faulted: do not create an
				// instance per remaining call only to stop it.
				fail(i, fmt.Errorf("wasmhost: plugin %q: %s: %w", p.name, hookNames[h], ctx.Err()))
				return nil
			}
			if inst, err = p.acquire(ctx, h); err != nil {
				fail(i, err)
				return nil
			}
		}
		single := i < rerunTo
		if single && faults >= maxRerunFaults {
			// Out of re-run budget: the rest keep the error of
			// the batch call.
			for ; i < rerunTo; i++ {
				fail(i, batchErr)
			}
			continue
		}
		start := i
		var stepErr error
		i, stepErr = step(inst, i, single)
		if isFault(stepErr) {
			p.discard(inst)
			inst = nil
			if single {
				faults++
			}
		}
		if stepErr != nil && !single && i-start > 1 {
			rerunTo, i, batchErr = i, start, stepErr
		}
	}
	if inst != nil {
		p.release(inst)
	}
	return nil
}

// OnSendBatch implements plugins.BatchInterceptor. With the optional export
// kpipe_on_send_batch (ABI 5.5) it encodes the records into the input
// buffer and makes one call per 1 MiB of input; it checks every result of
// the call before it changes any record. Without it, or for a single
// record (which kpipe_on_send serves at less cost), it calls kpipe_on_send
// for each record. Either way the whole batch runs on one instance taken
// from the pool once.
//
// Each record gets what OnSend would have returned for it. A KPIPE_ERROR
// result of the whole batch call gives each of its records the same
// *GuestError; a fault of a batch call (a trap, a timeout, an invalid
// result) gives each of its records the same *Fault, and leaves them
// unchanged. Records before a fault keep their results; those after it run
// on a fresh instance. OnSendBatch returns an error, and sets no errs[i],
// only when no instance could be had at all.
func (p *Plugin) OnSendBatch(ctx context.Context, rs []*plugins.Record, verdicts []plugins.Verdict, errs []error) error {
	const h = hookOnSend
	verdicts, errs = verdicts[:len(rs)], errs[:len(rs)]
	for i := range rs {
		verdicts[i], errs[i] = plugins.Continue, nil
	}
	step := func(inst *instance, i int, single bool) (int, error) {
		if !single && p.hasBatch[h] && len(rs)-i > 1 {
			if j, err := inst.onSendBatch(ctx, rs, i, verdicts, errs); j > i {
				return j, err
			}
		}
		n := abi.RecordSize(rs[i])
		if err := p.checkSize(h, n); err != nil {
			errs[i] = err
			return i + 1, nil
		}
		verdicts[i], errs[i] = inst.onSend(ctx, rs[i], n)
		return i + 1, errs[i]
	}
	return p.batchLoop(ctx, h, len(rs), step, func(i int, err error) {
		for ; i < len(rs); i++ {
			verdicts[i], errs[i] = plugins.Continue, err
		}
	})
}

// onSendBatch makes one kpipe_on_send_batch call for the records of rs from
// i on that fit in one chunk, and returns the end of the chunk, or i if
// rs[i] is too large for a batch entry. The error is the call's *Fault, if
// any (then each record of the chunk has it).
func (inst *instance) onSendBatch(ctx context.Context, rs []*plugins.Record, i int, verdicts []plugins.Verdict, errs []error) (int, error) {
	const h, hb = hookOnSend, hookOnSendBatch
	p := inst.p
	j, total := chunk(rs, i, abi.EntryHeader, abi.RecordSize)
	if total < 0 {
		return i, nil // for the single-record hook: see chunk
	}
	count := j - i
	fail := func(err error) (int, error) {
		for k := i; k < j; k++ {
			verdicts[k], errs[k] = plugins.Continue, err
		}
		return j, err
	}
	in, f := inst.input(ctx, hb, total)
	if f != nil {
		return fail(f)
	}
	off := 0
	for _, r := range rs[i:j] {
		n := abi.PutRecord(in[off+abi.EntryHeader:], r)
		abi.PutEntryHeader(in[off:], n)
		off += abi.EntryHeader + n
	}
	p.stats.batches[h].Add(1)
	inst.stack[0], inst.stack[1] = uint64(count), uint64(total)
	res, f := inst.call(ctx, hb)
	if f != nil {
		return fail(f)
	}
	switch {
	case res == 0:
		return j, nil
	case res == abi.StatusError:
		return fail(inst.guestErrorOf(hb, h))
	}
	results, f := inst.results(hb, res, abi.OnSendResultSize, count)
	if f != nil {
		return fail(f)
	}
	// Check every result before changing any record.
	for k := range count {
		switch v := abi.OnSendResult(results, k); {
		case v == 0 || v == abi.StatusDrop || v == abi.StatusError:
		case v < 0:
			return fail(p.fault(hb, FaultInvalidOutput, fmt.Errorf("record %d of %d: result %d is not a status code of %s", k, count, v, hookNames[h])))
		default:
			out, err := inst.outputBytes(v)
			if err == nil {
				err = p.validateSendResult(out)
			}
			if err != nil {
				return fail(p.fault(hb, FaultInvalidOutput, fmt.Errorf("record %d of %d: %w", k, count, err)))
			}
		}
	}
	var ge *GuestError // one for every record that failed: the call has one message
	for k := range count {
		switch v := abi.OnSendResult(results, k); v {
		case 0:
		case abi.StatusDrop:
			verdicts[i+k] = plugins.Drop
		case abi.StatusError:
			if ge == nil {
				ge = inst.guestErrorOf(hb, h)
			} else {
				p.stats.errors[h].Add(1)
			}
			errs[i+k] = ge
		default:
			out, _ := inst.outputBytes(v)
			if err := inst.decodeSendResult(out, rs[i+k]); err != nil {
				// Cannot happen: the record was validated above.
				errs[i+k] = p.fault(hb, FaultInvalidOutput, fmt.Errorf("record %d of %d: %w", k, count, err))
				return j, errs[i+k]
			}
		}
	}
	return j, nil
}

// results returns the array of count results of size bytes each named by
// the slice result res of batch hook hb, checking its length and bounds.
// The plugin's output limit does not apply: the host chose the size.
func (inst *instance) results(hb hook, res int64, size, count int) ([]byte, *Fault) {
	ptr, n, ok := abi.SplitSlice(res)
	if !ok {
		return nil, inst.p.fault(hb, FaultInvalidOutput, fmt.Errorf("result %d is neither a status code of %s nor a slice", res, hookNames[hb]))
	}
	if int(n) != size*count {
		return nil, inst.p.fault(hb, FaultInvalidOutput, fmt.Errorf("result array of %d bytes for %d records, want %d", n, count, size*count))
	}
	b, ok := inst.memory.read(ptr, n)
	if !ok {
		return nil, inst.p.fault(hb, FaultInvalidOutput, fmt.Errorf("result array [%d, %d) is outside guest memory of %d bytes", ptr, uint64(ptr)+uint64(n), len(inst.memory.buf)))
	}
	return b, nil
}

// PartitionBatch implements plugins.BatchPartitioner. With the optional
// export kpipe_partition_batch (ABI 5.5) it encodes the records (only
// their keys with KPIPE_FEATURE_PARTITION_KEY, ABI 8) into the
// input buffer and makes one call per 1 MiB of input, checking every
// result before it sets any partition; without it, or for a single record,
// it calls kpipe_partition for each record. Either way the whole batch runs on one
// instance taken from the pool once.
//
// Each record gets what Partition would have returned for it; a
// KPIPE_ERROR of the whole call, or a fault, gives each record of the call
// DefaultPartition and the same error, as OnSendBatch does.
func (p *Plugin) PartitionBatch(ctx context.Context, rs []*plugins.Record, numPartitions []int32, parts []int32, errs []error) error {
	const h = hookPartition
	parts, errs = parts[:len(rs)], errs[:len(rs)]
	for i := range rs {
		parts[i], errs[i] = plugins.DefaultPartition, nil
	}
	step := func(inst *instance, i int, single bool) (int, error) {
		if !single && p.hasBatch[h] && len(rs)-i > 1 {
			if j, err := inst.partitionBatch(ctx, rs, numPartitions, i, parts, errs); j > i {
				return j, err
			}
		}
		n := p.partitionSize(rs[i])
		if err := p.checkSize(h, n); err != nil {
			errs[i] = err
			return i + 1, nil
		}
		parts[i], errs[i] = inst.partition(ctx, rs[i], n, numPartitions[i])
		return i + 1, errs[i]
	}
	return p.batchLoop(ctx, h, len(rs), step, func(i int, err error) {
		for ; i < len(rs); i++ {
			parts[i], errs[i] = plugins.DefaultPartition, err
		}
	})
}

// partitionBatch makes one kpipe_partition_batch call for the records of rs
// from i on that fit in one chunk, and returns the end of the chunk, or i
// if rs[i] is too large for a batch entry. The error is the call's *Fault,
// if any (then each record of the chunk has it).
func (inst *instance) partitionBatch(ctx context.Context, rs []*plugins.Record, numPartitions []int32, i int, parts []int32, errs []error) (int, error) {
	const h, hb = hookPartition, hookPartitionBatch
	p := inst.p
	j, total := chunk(rs, i, abi.PartitionEntryHeader, p.partitionSize)
	if total < 0 {
		return i, nil // for the single-record hook: see chunk
	}
	count := j - i
	fail := func(err error) (int, error) {
		for k := i; k < j; k++ {
			parts[k], errs[k] = plugins.DefaultPartition, err
		}
		return j, err
	}
	in, f := inst.input(ctx, hb, total)
	if f != nil {
		return fail(f)
	}
	off := 0
	for k, r := range rs[i:j] {
		n := p.putPartitionInput(in[off+abi.PartitionEntryHeader:], r)
		abi.PutPartitionEntryHeader(in[off:], numPartitions[i+k], n)
		off += abi.PartitionEntryHeader + n
	}
	p.stats.batches[h].Add(1)
	inst.stack[0], inst.stack[1] = uint64(count), uint64(total)
	res, f := inst.call(ctx, hb)
	if f != nil {
		return fail(f)
	}
	if res == abi.StatusError {
		return fail(inst.guestErrorOf(hb, h))
	}
	results, f := inst.results(hb, res, abi.PartitionResultSize, count)
	if f != nil {
		return fail(f)
	}
	// Check every result before setting any partition.
	for k := range count {
		v := abi.PartitionResult(results, k)
		if v < 0 && v != abi.StatusError && v != abi.StatusDefaultPartition {
			return fail(p.fault(hb, FaultInvalidOutput, fmt.Errorf("record %d of %d: result %d is not a partition or a status code of %s", k, count, v, hookNames[h])))
		}
	}
	var ge *GuestError // one for every KPIPE_ERROR: the call has one message
	for k := range count {
		v := abi.PartitionResult(results, k)
		if v == abi.StatusError && ge != nil {
			p.stats.errors[h].Add(1)
			parts[i+k], errs[i+k] = plugins.DefaultPartition, ge
			continue
		}
		// No fault is possible here: the results were checked above.
		parts[i+k], errs[i+k] = inst.partitionResult(hb, h, v, numPartitions[i+k])
		if v == abi.StatusError {
			ge = errs[i+k].(*GuestError)
		}
	}
	return j, nil
}
