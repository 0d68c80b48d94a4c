package gateway

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// batchResult collects the outcomes of the records of one record batch of a
// produce request. It is done when every record sent has an outcome; code
// is then the Kafka error code of the batch (0: every record delivered or
// filtered), and ok says which records were.
type batchResult struct {
	done      chan struct{}
	remaining atomic.Int32

	// recs are the records sent, in batch order; the callback finds a
	// record's index from its address in recs.
	recs []plugins.Record
	// ok[i] is set when record i was delivered or filtered (read only
	// after done).
	ok []bool
	// keepOffset: the records keep the client's partition, so the
	// offset of record 0 is the batch's base offset for the client.
	keepOffset bool
	base       atomic.Int64
	// appendTime is the upstream's log append time of a forwarded
	// batch, -1 if none (read only after done).
	appendTime int64

	// delivered, filtered and failedN count the outcomes, for Stats.
	delivered, filtered, failedN atomic.Uint64

	errOnce sync.Once
	code    int16
	msg     string

	// failures are the records that failed, in batch order once done,
	// for the response's error_records (read only after done).
	failMu   sync.Mutex
	failures []recordFailure

	// onDone runs once when the last outcome is in, before done closes.
	onDone func(*batchResult)
}

// recordFailure is a record of a batch that failed: its index in the batch
// and why.
type recordFailure struct {
	index int32
	msg   string
}

func newBatchResult(n int, keepOffset bool) *batchResult {
	br := &batchResult{done: make(chan struct{}), ok: make([]bool, n), keepOffset: keepOffset, appendTime: -1}
	br.base.Store(-1)
	return br
}

// failed returns a batch result that is already done with code.
func failedResult(code int16, msg string) *batchResult {
	br := &batchResult{done: make(chan struct{}), code: code, msg: msg, appendTime: -1}
	br.base.Store(-1)
	close(br.done)
	return br
}

// isDone reports whether every outcome is in.
func (br *batchResult) isDone() bool {
	select {
	case <-br.done:
		return true
	default:
		return false
	}
}

// allOK reports whether the batch is done without error.
func (br *batchResult) allOK() bool { return br.isDone() && br.code == 0 }

// expect sets how many outcomes will arrive; with none it completes br.
func (br *batchResult) expect(n int) {
	if n == 0 {
		br.finish()
		return
	}
	br.remaining.Store(int32(n))
}

// fail records the batch's error; the first one stays.
func (br *batchResult) fail(code int16, msg string) {
	br.errOnce.Do(func() { br.code, br.msg = code, msg })
}

// onResult is the pipeline callback of every record of the batch.
func (br *batchResult) onResult(r *plugins.Record, res pipeline.Result) {
	i := br.index(r)
	switch res.Outcome {
	case pipeline.Delivered:
		br.delivered.Add(1)
	case pipeline.Filtered:
		br.filtered.Add(1)
	default:
		br.failedN.Add(1)
	}
	if res.Outcome == pipeline.Failed {
		code, msg := errorCode(res.Err)
		br.fail(code, msg)
		if i >= 0 {
			br.failMu.Lock()
			br.failures = append(br.failures, recordFailure{index: int32(i), msg: msg})
			br.failMu.Unlock()
		}
	} else if i >= 0 {
		br.ok[i] = true
		if i == 0 && br.keepOffset && res.Outcome == pipeline.Delivered {
			br.base.Store(res.Offset)
		}
	}
	if br.remaining.Add(-1) == 0 {
		br.finish()
	}
}

// settleForwarded completes a batch forwarded upstream as a whole (see
// forward.go): a code 0 delivered every record, at upstream offsets from
// a.base; otherwise every record failed, and a.failures are the ones the
// upstream named.
func (br *batchResult) settleForwarded(a answer) {
	n := uint64(len(br.ok))
	if a.code == codeNone {
		for i := range br.ok {
			br.ok[i] = true
		}
		br.delivered.Add(n)
		if br.keepOffset {
			br.base.Store(a.base)
		}
		br.appendTime = a.appendTime
	} else {
		br.fail(a.code, a.msg)
		br.failedN.Add(n)
		br.failures = a.failures
	}
	br.finish()
}

func (br *batchResult) finish() {
	// Every callback has found its record: the records, which point into
	// the request's memory, are the request's again (see buffers.go).
	br.recs = nil
	// In batch order (outcomes come in the order the upstream gives
	// them), before anyone reads them.
	slices.SortFunc(br.failures, func(a, b recordFailure) int { return cmp.Compare(a.index, b.index) })
	if br.onDone != nil {
		br.onDone(br)
	}
	close(br.done)
}

// index is r's position in br.recs, or -1 if r is not one of them (nil, for
// a record the pipeline could not take).
func (br *batchResult) index(r *plugins.Record) int {
	if r == nil || len(br.recs) == 0 {
		return -1
	}
	// The records are one slice; the pipeline hands back the pointer it
	// was given. Computing the index from the address saves a closure
	// per record.
	off := uintptr(unsafe.Pointer(r)) - uintptr(unsafe.Pointer(&br.recs[0]))
	i := int(off / unsafe.Sizeof(plugins.Record{}))
	if off%unsafe.Sizeof(plugins.Record{}) != 0 || i >= len(br.recs) {
		return -1
	}
	return i
}
