package gateway

import (
	"context"
	"errors"
	"time"

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
	parts := make([][]partResult, len(req.Topics))
	for ti := range req.Topics {
		t := &req.Topics[ti]
		ts := g.stats.topic(t.Topic)
		parts[ti] = make([]partResult, len(t.Partitions))
		for pi := range t.Partitions {
			pt := &t.Partitions[pi]
			pr := &parts[ti][pi]
			if req.TransactionID != nil {
				pr.results = []*batchResult{failedResult(codeTxnIDAuthorizationFailed, txnMessage)}
				continue
			}
			raws, err := splitBatches(pt.Records)
			if err != nil {
				pr.results = []*batchResult{g.badBatch(c, t.Topic, err)}
				continue
			}
			for _, raw := range raws {
				br, extra := g.produceBatch(ctx, c, ts, t.Topic, pt.Partition, raw)
				p.mem += extra
				pr.results = append(pr.results, br)
			}
		}
	}
	for ti := range parts {
		for pi := range parts[ti] {
			p.results = append(p.results, parts[ti][pi].results...)
		}
	}
	p.done = cancel
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
				for i, br := range parts[ti][pi].results {
					if i == 0 {
						rp.BaseOffset = br.base.Load()
					}
					if br.code != 0 && rp.ErrorCode == 0 {
						rp.ErrorCode = br.code
						if br.msg != "" {
							msg := br.msg
							rp.ErrorMessage = &msg
						}
					}
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

// badBatch is the result of a batch that cannot be read.
func (g *Gateway) badBatch(c *conn, topic string, err error) *batchResult {
	g.log.Warn("rejected a record batch", "remote", c.st.remote, "topic", topic, "error", err)
	code := codeCorruptMessage
	switch {
	case errors.Is(err, errMagic):
		code = codeUnsupportedMessageFormat
	case errors.Is(err, errTooLarge):
		code = codeMessageTooLarge
	}
	return failedResult(code, "kpipe gateway: "+err.Error())
}

// produceBatch sends the records of one record batch into the pipeline and
// returns their result, and the bytes of decompressed records it holds
// beyond the request itself.
func (g *Gateway) produceBatch(ctx context.Context, c *conn, ts *topicStats, topic string, partition int32, raw []byte) (*batchResult, int64) {
	b, err := g.dec.parseBatch(raw)
	if err != nil {
		return g.badBatch(c, topic, err), 0
	}
	var extra int64
	if b.Attributes&codecMask != codecNone {
		extra = int64(len(b.records))
		g.mem.add(extra)
	}
	switch {
	case b.Attributes&attrTransactional != 0:
		return failedResult(codeTxnIDAuthorizationFailed, txnMessage), extra
	case b.Attributes&attrControl != 0:
		return failedResult(codeInvalidRecord, "kpipe gateway: control batches cannot be produced"), extra
	}
	n := int(b.NumRecords)
	br := newBatchResult(n, g.keepPartition)
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
			return answer, extra
		case sendFailed:
			copy(br.ok, prev.ok)
			br.base.Store(prev.base.Load())
			ts.retried.Add(1)
		}
	}

	recs := make([]plugins.Record, n)
	br.recs = recs
	var headers []plugins.Header
	toSend := 0
	err = b.eachRecord(func(i int, rec *kmsg.Record) error {
		if send[i] {
			return nil
		}
		r := &recs[i]
		r.Topic = topic
		r.Key, r.Value = rec.Key, rec.Value
		if len(rec.Headers) > 0 {
			start := len(headers)
			for _, h := range rec.Headers {
				headers = append(headers, plugins.Header{Key: h.Key, Value: h.Value})
			}
			r.Headers = headers[start:len(headers):len(headers)]
		}
		r.Timestamp = time.UnixMilli(b.FirstTimestamp + rec.TimestampDelta64)
		if g.keepPartition {
			r.SetPartition(partition)
		}
		toSend++
		return nil
	})
	if err != nil {
		// Nothing was sent yet: the batch fails whole.
		return g.badBatch(c, topic, err), extra
	}
	ts.records.Add(uint64(toSend))
	ts.bytes.Add(uint64(len(raw)))
	c.st.records.Add(uint64(toSend))
	c.st.bytes.Add(uint64(len(raw)))
	br.expect(toSend)
	for i := range recs {
		if !send[i] {
			g.producer.Send(ctx, &recs[i], br.onResult)
		}
	}
	return br, extra
}
