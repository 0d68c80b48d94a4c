package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kpipe/kpipe/plugins"
)

// A Trial runs records through the stages of a chain (interceptors,
// serializers, partitioner, acknowledgements) with the Producer's own code,
// but without a Kafka client: a record that would go to the client is
// partitioned as the client would have it partitioned, and acknowledged as
// delivered. It is how `kpipe plugin test` exercises plugins exactly as a
// pipeline does, batch hooks included.
type Trial struct {
	p *Producer
	// offset is the offset of the next record delivered: records a Trial
	// delivers are acknowledged with offsets 0, 1, 2, ... in the order of
	// its runs, as if they were appended to one partition.
	offset int64
}

// TrialResult is what happened to one record of a Trial.
type TrialResult struct {
	// Outcome is Delivered for a record that would have gone to the
	// client, else Filtered or Failed, with Err.
	Outcome Outcome
	Err     error
	// Partition is the partition the record would have gone to, or -1.
	Partition int32
	// Offset is the offset the record was acknowledged with (see Run), or
	// -1 if it was not delivered.
	Offset int64
	// Record is the record as the stages left it (serialized key and
	// value, final topic and headers).
	Record *plugins.Record
}

// NewTrial returns a Trial of the chain opts describe (chain options only,
// as for Swap). batch is the stage batch size: 1 runs each record alone
// (per-record plugin calls), more runs up to batch records through each
// batch hook at once. The Trial owns the plugins: Close closes them.
func NewTrial(batch int, log hclog.Logger, opts ...Option) (*Trial, error) {
	cc := defaultChainConfig()
	for i, o := range opts {
		co, ok := o.(chainOption)
		if !ok {
			return nil, fmt.Errorf("pipeline: trial: option %d (%T) is not a chain option", i+1, o)
		}
		co(&cc)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Producer{log: log, idle: make(chan struct{}, 1), topics: map[string]*topicPartitioner{}}
	p.life, p.stopLife = context.WithCancel(context.Background())
	if batch > 1 {
		p.stage = newStager(p, batch, time.Hour)
		p.acks.timer = time.AfterFunc(time.Hour, p.flushAcks)
		p.acks.timer.Stop()
	}
	ch, err := p.newChain(cc, 1)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("pipeline: trial: %w", err)
	}
	p.initChains(ch)
	return &Trial{p: p}, nil
}

// errTrialPartition is the client error a record whose partitioner failed
// it gets in a Trial; its outcome reports the partitioner's reason.
var errTrialPartition = errors.New("no partition")

// Run runs rs through the chain, as a Producer would with the Trial's batch
// size, for topics of partitions partitions, and returns one result per
// record. The records are changed in place, as Send changes them. Records
// delivered are acknowledged with the next offsets of the Trial, in order.
func (t *Trial) Run(ctx context.Context, rs []*plugins.Record, partitions int32) []TrialResult {
	p := t.p
	out := make([]TrialResult, len(rs))
	es := make([]*envelope, 0, len(rs))
	partitioner := func(topic string) *topicPartitioner {
		tp := p.topics[topic]
		if tp == nil {
			// What the client knows once it has the topic's metadata.
			tp = kgoPartitioner{p}.ForTopic(topic).(*topicPartitioner)
			tp.n.Store(partitions)
		}
		return tp
	}
	for i, r := range rs {
		if r.Topic != "" {
			partitioner(r.Topic)
		}
		i := i
		e := new(envelope)
		e.open(ctx, r, func(r *plugins.Record, res Result) {
			out[i] = TrialResult{Outcome: res.Outcome, Err: res.Err, Partition: res.Partition, Offset: res.Offset, Record: r}
		})
		e.ch = p.enter()
		es = append(es, e)
	}
	var survivors []*envelope
	if b := p.stage; b != nil {
		b.procMu.Lock()
		for w := es; len(w) > 0; {
			c := min(len(w), b.max)
			survivors = append(survivors, p.run(w[0].ch, w[:c], b)...)
			w = w[c:]
		}
		done := b.done
		b.done = nil
		b.procMu.Unlock()
		for _, d := range done {
			p.complete(d.e, d.o, d.err)
		}
	} else {
		for _, e := range es {
			one := [1]*envelope{e}
			survivors = append(survivors, p.run(e.ch, one[:], nil)...)
		}
	}
	for _, e := range survivors {
		kr := &e.kr
		part := partitioner(kr.Topic).Partition(kr, int(partitions))
		if part < 0 {
			p.finish(e, errTrialPartition, false)
			continue
		}
		kr.Partition, kr.Offset = int32(part), t.offset
		t.offset++
		p.finish(e, nil, true)
	}
	p.flushAcks()
	return out
}

// Stats returns the counters of the Trial's plugins, as Producer.Stats.
func (t *Trial) Stats() Stats { return t.p.Stats() }

// Close closes the Trial's plugins.
func (t *Trial) Close(ctx context.Context) error {
	t.p.stop()
	return t.p.closeLive(ctx)
}
