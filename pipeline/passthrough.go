package pipeline

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Passthrough is what a record batch encoded elsewhere (a Kafka client's,
// as kpipe gateway receives them) must be written with when it goes to the
// cluster as it is instead of through Send: the producer's settings that
// shape what reaches the broker, and the client to send it with.
type Passthrough struct {
	// Client is the producer's franz-go client. A produce request sent
	// through one of its brokers (kgo.Client.Broker) is written with
	// the producer's acks: franz-go sets them on every produce request.
	Client *kgo.Client
	// Acks is the producer's acks (Acks).
	Acks AckLevel
	// Codec is the producer's compression (Compression, its first
	// choice). NoCompression means the producer compresses nothing, and a
	// batch may keep the codec its own producer chose.
	Codec Codec
	// BatchMaxBytes is the largest batch the producer writes
	// (BatchMaxBytes); the producer would split a larger one.
	BatchMaxBytes int32
	// RequestTimeout is how long a broker may take to answer a produce
	// request (RequestTimeout).
	RequestTimeout time.Duration
}

// Passthrough reports whether the current chain passes a record that has
// its partition set (plugins.Record.SetPartition) to the cluster as it is:
// no interceptor, keys and values sent as they are (no serializer, or the
// built-in bytes one), and the built-in default partitioner, which keeps a
// partition that is set. If so it returns the settings that a batch of
// such records written past the chain must keep. The answer is the
// current chain's: a Swap changes it for what is sent after it.
func (p *Producer) Passthrough() (Passthrough, bool) {
	ch := p.current()
	if len(ch.ics) > 0 || ch.keySer != nil || ch.valSer != nil || ch.part.p != nil || p.txn {
		return Passthrough{}, false
	}
	return p.pass, true
}
