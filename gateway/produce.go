package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/plugins"
)

// defaultProduceTimeout is the time the records of a produce request get
// when the request's timeout_ms is not positive.
const defaultProduceTimeout = 30 * time.Second

var txnMessage = "kpipe gateway: transactions are not supported (the gateway produces every record itself, outside any client transaction); use a non-transactional producer, idempotence is supported"

// partResult is the answer for one partition of a produce request: the
// results of its record batches, or an error found before sending.
type partResult struct {
	results []*batchResult
}

// produce starts a produce request: every record of every batch goes into
// the pipeline now, and p's response is built once they all have an
// outcome.
func (g *Gateway) produce(c *conn, p *pending, req *kmsg.ProduceRequest, throttle int32) {
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultProduceTimeout
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	// What is wrong with the request as a whole, as a broker checks it
	// before its partitions: acks other than -1, 0 and 1, or a
	// transactional id. Every partition is answered with it, and no
	// record is produced.
	var reqCode int16
	var reqMsg string
	switch {
	case req.Acks != -1 && req.Acks != 0 && req.Acks != 1:
		reqCode, reqMsg = codeInvalidRequiredAcks, fmt.Sprintf("kpipe gateway: acks %d: want -1 (all), 0 or 1", req.Acks)
		g.log.Warn("rejected a produce request with invalid acks", "remote", c.st.remote, "client_id", p.h.clientID, "acks", req.Acks)
	case req.TransactionID != nil:
		reqCode, reqMsg = codeTxnIDAuthorizationFailed, txnMessage
		g.log.Warn("rejected a transactional produce request", "remote", c.st.remote, "client_id", p.h.clientID, "transactional_id", *req.TransactionID)
	}
	parts := make([][]partResult, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		parts[ti] = make([]partResult, len(t.Partitions))
		if reqCode != codeNone {
			for pi := range parts[ti] {
				parts[ti][pi].results = []*batchResult{failedResult(reqCode, reqMsg)}
			}
			continue
		}
		if msg := topicError(t.Topic); msg != "" {
			g.log.Warn("rejected a produce to an invalid topic name", "remote", c.st.remote, "error", msg)
			for pi := range parts[ti] {
				parts[ti][pi].results = []*batchResult{failedResult(codeInvalidTopic, msg)}
			}
			continue
		}
		ts := g.topicStats(t.Topic)
		for pi := range t.Partitions {
			pt := &t.Partitions[pi]
			pr := &parts[ti][pi]
			raws, err := splitBatches(pt.Records)
			if err != nil {
				pr.results = []*batchResult{g.badBatch(c, t.Topic, err)}
				continue
			}
			for _, raw := range raws {
				pr.results = append(pr.results, g.produceBatch(ctx, c, p, ts, t.Topic, pt.Partition, raw))
			}
		}
	}
	for ti := range parts {
		for pi := range parts[ti] {
			p.results = append(p.results, parts[ti][pi].results...)
		}
	}
	p.done = func() {
		cancel()
		c.logUnknown(p.h.clientID, req, parts)
	}
	if req.Acks == 0 {
		return
	}
	p.response = func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.ThrottleMillis = throttle
		for ti := range req.Topics {
			t := &req.Topics[ti]
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for pi := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = t.Partitions[pi].Partition
				rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
				// first is the index of a batch's first record
				// among the partition's records.
				first := int32(0)
				for i, br := range parts[ti][pi].results {
					if i == 0 {
						rp.BaseOffset = br.base.Load()
						rp.LogAppendTime = br.appendTime
					}
					if br.code != 0 && rp.ErrorCode == 0 {
						rp.ErrorCode = br.code
						if br.msg != "" {
							msg := br.msg
							rp.ErrorMessage = &msg
						}
					}
					rp.ErrorRecords = appendErrorRecords(rp.ErrorRecords, first, br.failures)
					first += int32(len(br.ok))
				}
				if rp.ErrorCode != 0 {
					rp.BaseOffset = -1
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

// maxUnknownLogged is how many topic partitions a connection gets a log
// line for when it is answered UNKNOWN_TOPIC_OR_PARTITION (see logUnknown).
const maxUnknownLogged = 8

// logUnknown logs the partitions of a produce request, done, that are
// answered UNKNOWN_TOPIC_OR_PARTITION (acks=0 included, which gets no
// answer): a negative partition, one the topic does not have, or a topic
// that does not exist upstream. The client learns it from its answer; the
// operator learns it here, once per topic partition and connection, for at
// most maxUnknownLogged of them, and then in one last line, so that a client
// that produces to ever other partitions cannot flood the log. Run by the
// connection's writer, once the results are in; a result not done (the
// gateway stopped waiting) is skipped.
func (c *conn) logUnknown(clientID string, req *kmsg.ProduceRequest, parts [][]partResult) {
	for ti := range parts {
		for pi := range parts[ti] {
			for _, br := range parts[ti][pi].results {
				if !br.isDone() || br.code != codeUnknownTopicOrPartition {
					continue
				}
				k := laneKey{req.Topics[ti].Topic, req.Topics[ti].Partitions[pi].Partition}
				if c.unknownLogged == nil {
					c.unknownLogged = map[laneKey]bool{}
				}
				switch n := len(c.unknownLogged); {
				case c.unknownLogged[k] || n > maxUnknownLogged:
				case n == maxUnknownLogged:
					c.unknownLogged[k] = true
					c.g.log.Warn("answered more produce requests UNKNOWN_TOPIC_OR_PARTITION; not logging them for this connection any more",
						"remote", c.st.remote, "client_id", clientID, "logged", maxUnknownLogged)
				default:
					c.unknownLogged[k] = true
					c.g.log.Warn("answered a produce to a topic or partition that does not exist UNKNOWN_TOPIC_OR_PARTITION",
						"remote", c.st.remote, "client_id", clientID, "topic", k.topic, "partition", k.partition, "error", br.msg)
				}
				break
			}
		}
	}
}

// appendErrorRecords appends the failed records of a batch whose first
// record is the partition's first-th to the error_records of a response
// (Produce v8+; older versions do not carry them): the index of each record
// that failed and why.
func appendErrorRecords(ers []kmsg.ProduceResponseTopicPartitionErrorRecord, first int32, fs []recordFailure) []kmsg.ProduceResponseTopicPartitionErrorRecord {
	for _, f := range fs {
		er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		er.RelativeOffset = first + f.index
		msg := f.msg
		er.ErrorMessage = &msg
		ers = append(ers, er)
	}
	return ers
}

// recordHeld is what the gateway holds for each record of a batch besides
// its bytes: the record given to the pipeline and its flag in the result.
const recordHeld = int64(unsafe.Sizeof(plugins.Record{})) + 1

// badBatch is the result of a batch that cannot be read.
func (g *Gateway) badBatch(c *conn, topic string, err error) *batchResult {
	return failedResult(g.batchError(c, topic, err))
}

// batchError logs why a batch cannot be read and returns the error code and
// message of its answer.
func (g *Gateway) batchError(c *conn, topic string, err error) (int16, string) {
	g.log.Warn("rejected a record batch", "remote", c.st.remote, "topic", topic, "error", err)
	code := codeCorruptMessage
	switch {
	case errors.Is(err, errMagic):
		code = codeUnsupportedMessageFormat
	case errors.Is(err, errTooLarge):
		code = codeMessageTooLarge
	}
	return code, "kpipe gateway: " + err.Error()
}

// decompress decompresses the records of b into memory p holds. What the
// request's batches decompress to is bounded by the memory limit (p.mem
// holds only that while the request is read).
func (g *Gateway) decompress(p *pending, b *batch) error {
	if err := g.dec.decompress(b, g.memLimit-p.mem); err != nil {
		return err
	}
	if b.buf != nil {
		p.bufs = append(p.bufs, b.buf)
		extra := int64(cap(*b.buf))
		g.mem.add(extra)
		p.mem += extra
	}
	return nil
}

// checkRecords reads every record of b, a batch to be forwarded, and
// returns why one is malformed (see CheckForwardedRecords). What b
// decompresses to is given back at once: the batch goes upstream as it
// came.
func (g *Gateway) checkRecords(p *pending, b *batch) error {
	if err := g.dec.decompress(b, g.memLimit-p.mem); err != nil {
		return err
	}
	err := b.eachRecord(func(int, *kmsg.Record) error { return nil })
	if b.buf != nil {
		g.pools.bytes.put(b.buf)
		b.records, b.buf = nil, nil
	}
	return err
}

// produceBatch sends the records of one record batch into the pipeline and
// returns their result. The memory it takes (decompressed records, the
// records and headers given to the pipeline) is added to p, which owns it
// (see buffers.go): the records point into the request's bytes.
func (g *Gateway) produceBatch(ctx context.Context, c *conn, p *pending, ts *topicStats, topic string, partition int32, raw []byte) *batchResult {
	var b batch
	if err := b.readHeader(raw); err != nil {
		return g.badBatch(c, topic, err)
	}
	keep := g.keepPartition.Load()
	pass, forward := g.fwd.forwardable(&b, raw, keep)
	if !forward {
		if err := g.decompress(p, &b); err != nil {
			return g.badBatch(c, topic, err)
		}
	} else if g.checkForwarded {
		if err := g.checkRecords(p, &b); err != nil {
			return g.badBatch(c, topic, err)
		}
	}
	switch {
	case b.Attributes&attrTransactional != 0:
		return failedResult(codeTxnIDAuthorizationFailed, txnMessage)
	case b.Attributes&attrControl != 0:
		return failedResult(codeInvalidRecord, "kpipe gateway: control batches cannot be produced")
	}
	n := int(b.NumRecords)
	// The records given to the pipeline and their results are held as
	// the request's bytes are: a batch of tiny records takes many times
	// its size in them.
	held := int64(n) * recordHeld
	if p.mem+held > g.memLimit {
		return g.badBatch(c, topic, fmt.Errorf("%w: its %d records take %d bytes in it, over its memory limit of %d with the request's other batches", errTooLarge, n, held, g.memLimit))
	}
	g.mem.add(held)
	p.mem += held
	br := newBatchResult(n, keep)
	br.onDone = ts.settle

	send := br.ok // indexes with ok[i] false are sent
	if b.ProducerID >= 0 {
		v, answer, prev := g.producers.check(seqKey{b.ProducerID, topic, partition}, b.ProducerEpoch, b.FirstSequence, b.NumRecords, br)
		switch v {
		case answered:
			if answer.code == codeNone {
				ts.duplicates.Add(1)
				c.st.duplicates.Add(1)
			}
			return answer
		case sendFailed:
			copy(br.ok, prev.ok)
			br.base.Store(prev.base.Load())
			ts.retried.Add(1)
			if forward && slices.Contains(br.ok, true) {
				// Some records of the first attempt were
				// delivered: only the others may be sent,
				// which takes the record path.
				forward = false
				if err := g.decompress(p, &b); err != nil {
					code, msg := g.batchError(c, topic, err)
					br.fail(code, msg)
					br.expect(0)
					return br
				}
			}
		}
	}
	k := laneKey{topic, partition}
	if forward {
		ts.records.Add(uint64(n))
		ts.bytes.Add(uint64(len(raw)))
		ts.forwarded.Add(uint64(n))
		c.st.records.Add(uint64(n))
		c.st.bytes.Add(uint64(len(raw)))
		if err := g.fwd.enter(ctx, k, &forwarded{ctx: ctx, key: k, raw: raw, n: b.NumRecords, pass: pass, br: br, pid: -1}); err != nil {
			br.settleForwarded(failedAnswer(errorCode(err)))
		}
		return br
	}

	recsBuf := g.pools.records.get(n)
	p.recs = append(p.recs, recsBuf)
	recs := *recsBuf
	br.recs = recs
	// headers holds the headers of every record of the batch, each
	// record's a sub-slice; it is taken from the pool at the first one.
	var headers []plugins.Header
	toSend := 0
	err := b.eachRecord(func(i int, rec *kmsg.Record) error {
		if send[i] {
			return nil
		}
		r := &recs[i]
		r.Topic = topic
		r.Key, r.Value = rec.Key, rec.Value
		if len(rec.Headers) > 0 {
			if headers == nil {
				hb := g.pools.headers.get(n)
				p.headers = append(p.headers, hb)
				headers = (*hb)[:0]
			}
			start := len(headers)
			for _, h := range rec.Headers {
				headers = append(headers, plugins.Header{Key: c.headerKey(h.Key), Value: h.Value})
			}
			r.Headers = headers[start:len(headers):len(headers)]
		}
		r.Timestamp = time.UnixMilli(b.FirstTimestamp + rec.TimestampDelta64)
		if keep {
			r.SetPartition(partition)
		}
		toSend++
		return nil
	})
	if err != nil {
		// Nothing was sent yet: the batch fails whole.
		return g.badBatch(c, topic, err)
	}
	ts.records.Add(uint64(toSend))
	ts.bytes.Add(uint64(len(raw)))
	c.st.records.Add(uint64(toSend))
	c.st.bytes.Add(uint64(len(raw)))
	if g.fwd != nil {
		// The lane orders this batch after the partition's forwarded
		// ones (see forwarder.enter).
		if err := g.fwd.enter(ctx, k, nil); err != nil {
			code, msg := errorCode(err)
			for i := range recs[:n] {
				if !send[i] {
					br.failures = append(br.failures, recordFailure{index: int32(i), msg: msg})
				}
			}
			br.failedN.Add(uint64(toSend))
			br.fail(code, msg)
			br.expect(0)
			return br
		}
		settle := br.onDone
		br.onDone = func(br *batchResult) {
			settle(br)
			g.fwd.leave(k)
		}
	}
	br.expect(toSend)
	// One callback for the batch: a method value made per record would
	// be an allocation per record (BenchmarkGateway).
	rs := c.toSend[:0]
	for i := range recs {
		if !send[i] {
			rs = append(rs, &recs[i])
		}
	}
	g.producer.SendBatch(ctx, rs, br.onResult)
	clear(rs)
	c.toSend = rs[:0]
	return br
}
