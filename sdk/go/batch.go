package kpipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// The batch hooks (ABI section 5.5) run the registered plugin's per-record
// methods on many records per call, so that the cost of entering the module
// is paid once per batch instead of once per record. They need nothing from
// the plugin: every plugin built with the SDK has them.
//
// A batch input is count entries back to back, each a fixed prefix ending in
// the u32 size of the encoding that follows it. The framing is checked in
// full before any plugin method runs, so that a malformed batch fails the
// whole call without the plugin having seen part of it. After that, every
// entry behaves as the single-record hook would on its own: a record that
// does not decode, an error and a panic fail that entry alone. Only the
// error message differs: the host has one per call, so the call sets one
// that covers all of its failed entries (batchFailures).

// Batch entry prefixes: the u32 size of kpipe_on_send_batch and
// kpipe_on_ack_batch entries, and the i32 partition count and u32 size of
// kpipe_partition_batch entries.
const (
	sizePrefix      = 4
	partitionPrefix = 4 + 4
)

// checkBatch checks that in holds exactly count entries of prefix bytes, the
// last 4 of which are the u32 size of the encoding that follows.
func checkBatch(in []byte, count int32, prefix int) error {
	if count < 1 {
		return malformed("batch of %d entries", count)
	}
	if int64(count) > int64(len(in)/prefix) {
		return malformed("%d batch entries cannot fit in %d bytes", count, len(in))
	}
	off := 0
	for i := range int(count) {
		if len(in)-off < prefix {
			return malformed("batch entry %d at offset %d needs %d bytes, %d left", i, off, prefix, len(in)-off)
		}
		size := int64(binary.LittleEndian.Uint32(in[off+prefix-4:]))
		off += prefix
		if size > int64(len(in)-off) {
			return malformed("batch entry %d at offset %d needs %d bytes, %d left", i, off, size, len(in)-off)
		}
		off += int(size)
	}
	if off != len(in) {
		return malformed("%d trailing bytes after %d batch entries", len(in)-off, count)
	}
	return nil
}

// putInt64 and putInt32 write v at the start of b, little-endian.
func putInt64(b []byte, v int64) { binary.LittleEndian.PutUint64(b, uint64(v)) }
func putInt32(b []byte, v int32) { binary.LittleEndian.PutUint32(b, uint32(v)) }

// batchResults returns the reused results array, resized to n bytes.
func (rt *runtime) batchResults(n int) []byte {
	if cap(rt.results) < n {
		rt.results = nil // let the old array go before allocating the new one
		rt.results = make([]byte, n)
	}
	rt.results = rt.results[:n]
	return rt.results
}

// batchCursor is where the loop over a batch is: the entry it runs and the
// offset of the entry after it. The loops over entries defer their panic
// recovery once per call rather than once per entry (which cost some 50 ns
// per record in WebAssembly): after a panic, the loop is resumed after the
// entry that panicked.
type batchCursor struct {
	i    int
	next int
}

// entry returns the encoding of the entry at cur.next, whose fixed prefix is
// prefix bytes, and moves cur.next past it. The batch must have passed
// checkBatch.
func (cur *batchCursor) entry(in []byte, prefix int) []byte {
	off := cur.next + prefix
	end := off + int(binary.LittleEndian.Uint32(in[off-4:]))
	cur.next = end
	return in[off:end:end]
}

// onSendBatch implements kpipe_on_send_batch. A non-empty result slice is
// the array of per-record results; otherwise code is the call's result: 0
// when every record is unchanged, KPIPE_ERROR when the call failed.
//
// The records that OnSend changed are encoded one after the other into
// rt.arena, so that all of them stay valid until the next call; the results
// name them by address.
func (rt *runtime) onSendBatch(count, n int32) (results []byte, code int64) {
	defer rt.recover("OnSend", &code)
	if rt.interceptor == nil && rt.viewInterceptor == nil {
		return nil, rt.fail(errors.New("kpipe_on_send_batch called, but no interceptor is registered"))
	}
	in, err := rt.input(n)
	if err == nil {
		err = checkBatch(in, count, sizePrefix)
	}
	if err != nil {
		return nil, rt.fail(err)
	}
	results = rt.batchResults(8 * int(count))
	rt.arena = rt.arena[:0]
	rt.failures.reset()
	le := binary.LittleEndian
	var cur batchCursor
	for cur.i < int(count) {
		var err error
		if rt.viewInterceptor != nil {
			err = rt.sendViewEntries(in, results, &cur)
		} else {
			err = rt.sendEntries(in, results, &cur)
		}
		if err != nil {
			rt.failures.add(err)
			putInt64(results[8*cur.i:], statusError)
			cur.i++
		}
	}
	if rt.failures.n > 0 {
		rt.failMessage(rt.failures.message("records", int(count)))
	}
	changed, unchanged := false, true
	for i := range int(count) {
		res := int64(le.Uint64(results[8*i:]))
		changed = changed || res > 0
		unchanged = unchanged && res == statusOK
	}
	if unchanged {
		return nil, statusOK
	}
	if changed {
		// The arena no longer moves: turn the offsets of the changed
		// records into addresses.
		base := uint64(addressOf(rt.arena)) << 32
		for i := range int(count) {
			if res := int64(le.Uint64(results[8*i:])); res > 0 {
				le.PutUint64(results[8*i:], uint64(res)+base)
			}
		}
	}
	return results, statusOK
}

// sendEntries runs the entries of in from cur.i on through sendEntry and
// writes their results. A panic stops it with cur on the entry that panicked;
// it returns the panic as an error.
func (rt *runtime) sendEntries(in, results []byte, cur *batchCursor) (err error) {
	defer rt.catch("OnSend", &err)
	for ; 8*cur.i < len(results); cur.i++ {
		res, err := rt.sendEntry(cur.entry(in, sizePrefix))
		if err != nil {
			rt.failures.add(err)
			res = statusError
		}
		putInt64(results[8*cur.i:], res)
	}
	return nil
}

// sendViewEntries is sendEntries for a ViewInterceptor, with the work of
// each record in the loop itself rather than in calls: a call costs tens of
// nanoseconds in Go compiled to WebAssembly (BenchmarkGoGuest in wasmhost,
// noop-view/64).
func (rt *runtime) sendViewEntries(in, results []byte, cur *batchCursor) (err error) {
	defer rt.catch("OnSend", &err)
	v, vi := &rt.view, rt.viewInterceptor
	for ; 8*cur.i < len(results); cur.i++ {
		e := cur.entry(in, sizePrefix)
		res := statusError
		if !v.reset(e, &rt.dec) {
			rt.failures.add(rt.dec.describe(e))
		} else if action, err := vi.OnSendView(v); err != nil {
			rt.failures.add(err)
		} else if action == Unchanged {
			res = statusOK
		} else if action == Drop {
			res = statusDrop
		} else if res, err = rt.viewChanged(action); err != nil {
			rt.failures.add(err)
			res = statusError
		}
		putInt64(results[8*cur.i:], res)
	}
	return nil
}

// viewChanged appends the result of a RecordView on which OnSendView
// returned action, neither Unchanged nor Drop, to rt.arena, and returns its
// (offset << 32) | length there, or statusOK if nothing was changed.
func (rt *runtime) viewChanged(action Action) (int64, error) {
	if action != Changed {
		return 0, fmt.Errorf("OnSendView returned unknown %v", action)
	}
	start := len(rt.arena)
	arena, changed, err := rt.view.appendResult(rt.arena, rt.features&FeatureEdits != 0)
	if err != nil || !changed {
		return statusOK, err
	}
	if len(arena) > math.MaxInt32 {
		return 0, fmt.Errorf("kpipe: the records changed by one batch take more than %d bytes", math.MaxInt32)
	}
	rt.arena = arena
	return int64(start)<<32 | int64(len(arena)-start), nil
}

// sendEntry runs OnSend on the record encoded in in. It returns statusOK,
// statusDrop, or for a changed record its (offset << 32) | length in
// rt.arena, where it was appended. A record that does not decode and an error
// are returned as an error.
func (rt *runtime) sendEntry(in []byte) (int64, error) {
	if err := rt.dec.decodeRecord(in, &rt.rec); err != nil {
		return 0, err
	}
	action, err := rt.interceptor.OnSend(&rt.rec)
	if err != nil {
		return 0, err
	}
	switch action {
	case Unchanged:
		return statusOK, nil
	case Drop:
		return statusDrop, nil
	case Changed:
		start := len(rt.arena)
		arena, err := appendRecord(rt.arena, &rt.rec)
		if err != nil {
			return 0, err
		}
		if len(arena) > math.MaxInt32 {
			return 0, fmt.Errorf("kpipe: the records changed by one batch take more than %d bytes", math.MaxInt32)
		}
		rt.arena = arena
		return int64(start)<<32 | int64(len(arena)-start), nil
	}
	return 0, fmt.Errorf("OnSend returned unknown %v", action)
}

// onAckBatch implements kpipe_on_ack_batch. OnAck is called for every
// acknowledgement of the batch, even after one of them failed; the result
// is KPIPE_ERROR if any failed, which the host applies to every
// acknowledgement of the batch. Its message is the failures' message if all
// of them failed alike, and otherwise says how many failed, and how.
func (rt *runtime) onAckBatch(count, n int32) (code int64) {
	defer rt.recover("OnAck", &code)
	if rt.observer == nil {
		return rt.fail(errors.New("kpipe_on_ack_batch called, but no interceptor with OnAck is registered"))
	}
	in, err := rt.input(n)
	if err == nil {
		err = checkBatch(in, count, sizePrefix)
	}
	if err != nil {
		return rt.fail(err)
	}
	rt.failures.reset()
	var cur batchCursor
	for cur.i < int(count) {
		if err := rt.ackEntries(in, int(count), &cur); err != nil {
			rt.failures.add(err)
			cur.i++
		}
	}
	switch f := &rt.failures; {
	case f.n == 0:
		return statusOK
	case f.n < int(count) && len(f.msgs) == 1 && f.more == 0:
		// Say that the others went well: the host counts the error
		// for each acknowledgement of the call.
		return rt.failMessage(fmt.Sprintf("%d of %d acknowledgements failed: %s", f.n, count, f.msgs[0]))
	}
	return rt.failMessage(rt.failures.message("acknowledgements", int(count)))
}

// ackEntries runs OnAck on the entries of in from cur.i on. A panic stops it
// with cur on the entry that panicked; it returns the panic as an error.
func (rt *runtime) ackEntries(in []byte, count int, cur *batchCursor) (err error) {
	defer rt.catch("OnAck", &err)
	for ; cur.i < count; cur.i++ {
		err := rt.decodeAckInput(cur.entry(in, sizePrefix))
		if err == nil {
			err = rt.observer.OnAck(&rt.rec, rt.ack)
		}
		if err != nil {
			rt.failures.add(err)
		}
	}
	return nil
}

// partitionBatch implements kpipe_partition_batch. A non-empty result slice
// is the array of per-record results; otherwise code is KPIPE_ERROR.
func (rt *runtime) partitionBatch(count, n int32) (results []byte, code int64) {
	defer rt.recover("Partition", &code)
	if rt.partitioner == nil {
		return nil, rt.fail(errors.New("kpipe_partition_batch called, but no partitioner is registered"))
	}
	in, err := rt.input(n)
	if err == nil {
		err = checkBatch(in, count, partitionPrefix)
	}
	if err != nil {
		return nil, rt.fail(err)
	}
	results = rt.batchResults(4 * int(count))
	rt.failures.reset()
	var cur batchCursor
	for cur.i < int(count) {
		if err := rt.partitionEntries(in, results, &cur); err != nil {
			rt.failures.add(err)
			putInt32(results[4*cur.i:], int32(statusError))
			cur.i++
		}
	}
	if rt.failures.n > 0 {
		rt.failMessage(rt.failures.message("records", int(count)))
	}
	return results, statusOK
}

// partitionEntries runs the entries of in from cur.i on through
// partitionEntry and writes their results. A panic stops it with cur on the
// entry that panicked; it returns the panic as an error.
func (rt *runtime) partitionEntries(in, results []byte, cur *batchCursor) (err error) {
	defer rt.catch("Partition", &err)
	for ; 4*cur.i < len(results); cur.i++ {
		numPartitions := int32(binary.LittleEndian.Uint32(in[cur.next:]))
		p, err := rt.partitionEntry(numPartitions, cur.entry(in, partitionPrefix))
		if err != nil {
			rt.failures.add(err)
			p = int32(statusError)
		}
		putInt32(results[4*cur.i:], p)
	}
	return nil
}

// partitionEntry runs Partition on the record encoded in in, and returns a
// partition in [0, numPartitions) or statusDefaultPartition. Anything else
// is returned as an error.
func (rt *runtime) partitionEntry(numPartitions int32, in []byte) (int32, error) {
	if numPartitions <= 0 {
		return 0, malformed("partition count %d is not positive", numPartitions)
	}
	if err := rt.decodePartitionInput(in); err != nil {
		return 0, err
	}
	p, err := rt.partitioner.Partition(&rt.rec, numPartitions)
	switch {
	case err != nil:
		return 0, err
	case p == DefaultPartition:
		return int32(statusDefaultPartition), nil
	case p < 0 || p >= numPartitions:
		return 0, fmt.Errorf("partition %d out of range [0, %d)", p, numPartitions)
	}
	return p, nil
}

// maxFailureMessages is how many different messages a batch's error message
// quotes.
const maxFailureMessages = 4

// batchFailures gathers the failures of the records of one batch call. The
// host gives every record that failed the call's last set_error message, so
// the SDK sets one message per call, which names every way in which records
// failed rather than only the last.
type batchFailures struct {
	n      int      // failures
	msgs   []string // different messages, in the order they came
	counts []int    // failures with msgs[i]
	more   int      // failures whose message did not fit in msgs
}

// reset forgets the previous call's failures, keeping the slices.
func (f *batchFailures) reset() {
	clear(f.msgs)
	f.n, f.msgs, f.counts, f.more = 0, f.msgs[:0], f.counts[:0], 0
}

// add counts err.
func (f *batchFailures) add(err error) {
	msg := err.Error() // first: a plugin's Error method may panic
	f.n++
	for i := range f.msgs {
		if f.msgs[i] == msg {
			f.counts[i]++
			return
		}
	}
	if len(f.msgs) == maxFailureMessages {
		f.more++
		return
	}
	f.msgs = append(f.msgs, msg)
	f.counts = append(f.counts, 1)
}

// message returns the error message of a batch of count entries (what says
// what they are) with failures: the failures' message if they all had the
// same, and otherwise how many failed and with which messages.
func (f *batchFailures) message(what string, count int) string {
	if len(f.msgs) == 1 && f.more == 0 {
		return f.msgs[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d %s failed: ", f.n, count, what)
	for i, msg := range f.msgs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%d)", msg, f.counts[i])
		if b.Len() > maxErrorLen {
			break
		}
	}
	if f.more > 0 {
		fmt.Fprintf(&b, "; %d more with other messages", f.more)
	}
	return b.String()
}
