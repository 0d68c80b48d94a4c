package kafkasource

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/pipeline"
)

// Delivery is a delivery guarantee.
type Delivery uint8

const (
	// AtLeastOnce commits the consumed offsets once the records they
	// produced were delivered (or filtered, or dead-lettered). After a
	// crash or a rebalance, records delivered since the last commit are
	// produced again: duplicates, never losses.
	AtLeastOnce Delivery = iota
	// ExactlyOnce reads with read_committed isolation and produces every
	// poll's records and commits its offsets in one Kafka transaction
	// (franz-go's GroupTransactSession). A transaction aborted by a
	// rebalance or a failure is retried from the committed offsets, so
	// read_committed readers of the output see each input record's result
	// once. Source and sink are one cluster.
	ExactlyOnce
)

func (d Delivery) String() string {
	if d == ExactlyOnce {
		return "exactly_once"
	}
	return "at_least_once"
}

// Start is where a group with no committed offset for a partition starts
// reading it (Kafka's auto.offset.reset).
type Start uint8

const (
	// StartEarliest reads a partition from its first record.
	StartEarliest Start = iota
	// StartLatest reads only records written after the group joined.
	StartLatest
)

// Option configures a Source.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	brokers          []string
	consumerKgoOpts  []kgo.Opt
	topics           []string
	topicRegex       string
	group            string
	start            Start
	delivery         Delivery
	txnID            string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	deadLetter       string
	deadLetterOpts   []pipeline.Option
	sink             []pipeline.Option
	maxPoll          int
	endTimeout       time.Duration
	logger           hclog.Logger
}

// Brokers are the seed brokers of the source cluster (the consumer's
// bootstrap.servers). With AtLeastOnce they are required and may be another
// cluster than the sink's; with ExactlyOnce records are read through the
// sink's client, from the cluster of the Sink options' pipeline.Brokers,
// and Brokers must not be set. Default: none.
func Brokers(addrs ...string) Option { return optionFunc(func(c *config) { c.brokers = addrs }) }

// Topics are the topics read (the consumer's subscription). Exactly one of
// Topics and TopicRegex is required.
func Topics(topics ...string) Option { return optionFunc(func(c *config) { c.topics = topics }) }

// TopicRegex reads every topic whose name the regular expression matches
// (anywhere in the name, like regexp.MatchString; anchor it with ^ and $),
// except Kafka's internal topics; topics created later are picked up when
// the metadata is refreshed (kgo.ConsumeRegex).
func TopicRegex(re string) Option { return optionFunc(func(c *config) { c.topicRegex = re }) }

// Group is the consumer group (group.id); required. Processes with the same
// group share the partitions of the topics read.
func Group(group string) Option { return optionFunc(func(c *config) { c.group = group }) }

// StartAt is where a partition with no committed offset is read from
// (auto.offset.reset). Default: StartEarliest (Kafka's default is latest;
// a pipeline that starts at the earliest record loses nothing written
// before its first start).
func StartAt(s Start) Option { return optionFunc(func(c *config) { c.start = s }) }

// Guarantee chooses the delivery guarantee. Default: AtLeastOnce.
func Guarantee(d Delivery) Option { return optionFunc(func(c *config) { c.delivery = d }) }

// TransactionalID is the transactional id of an ExactlyOnce source
// (transactional.id). Every process of a group needs its own. A process
// restarted with the id it had aborts its predecessor's open transaction at
// once; with a new id, that transaction holds back read_committed readers
// of the partitions it wrote until the transaction timeout (franz-go's
// 40s) aborts it. Default: "kpipe-GROUP-HOSTNAME-PID-N", N numbering the
// sources of the process.
func TransactionalID(id string) Option { return optionFunc(func(c *config) { c.txnID = id }) }

// MinGroupTimeout and MaxGroupTimeout bound SessionTimeout and
// RebalanceTimeout: franz-go refuses less than 100ms, and the protocol
// carries them as 32-bit milliseconds.
const (
	MinGroupTimeout = 100 * time.Millisecond
	MaxGroupTimeout = math.MaxInt32 * time.Millisecond
)

// defaultHeartbeat is franz-go's heartbeat interval (heartbeat.interval.ms),
// which the source shortens to a third of a SessionTimeout shorter than
// three of them, as Kafka advises.
const defaultHeartbeat = 3 * time.Second

// SessionTimeout is how long the group coordinator waits for a member's
// heartbeat before it gives the member's partitions to others
// (session.timeout.ms): how long the partitions of a killed process stand
// still. From MinGroupTimeout to MaxGroupTimeout; the broker bounds it
// further (group.min.session.timeout.ms, 6s by default). The member
// heartbeats every 3s, or every third of a session timeout under 9s.
// Default: franz-go's, 45s.
func SessionTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.sessionTimeout = d })
}

// RebalanceTimeout is how long members have to rejoin the group in a
// rebalance (rebalance.timeout.ms; Kafka's max.poll.interval.ms); a member
// that has not rejoined by then, such as a killed one, is removed. From
// MinGroupTimeout to MaxGroupTimeout. Default: franz-go's, 60s.
func RebalanceTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.rebalanceTimeout = d })
}

// DeadLetter sends records that fail (a plugin under on_failure "fail", a
// serializer, or the produce itself) to topic, with the record's input key,
// value and headers and headers saying why (see the package
// documentation), instead of stopping their partition. opts are the
// settings of the dead-letter producer (pipeline.Brokers of the sink
// cluster, at least); it has no plugins. With ExactlyOnce there is no
// separate producer and opts are not used: the dead-letter records are
// produced in the source's transaction. Default: no dead-letter topic.
func DeadLetter(topic string, opts ...pipeline.Option) Option {
	return optionFunc(func(c *config) { c.deadLetter, c.deadLetterOpts = topic, opts })
}

// Sink holds the options of the pipeline.Producer the records go through:
// its Kafka settings (pipeline.Brokers is required), default topic (the
// output topic) and plugins. The Source creates the Producer and owns it.
func Sink(opts ...pipeline.Option) Option {
	return optionFunc(func(c *config) { c.sink = append(c.sink, opts...) })
}

// MaxPollRecords caps the records one poll returns, which are produced
// together and committed together (in one transaction with ExactlyOnce).
// Larger polls spread the commit's cost over more records; smaller ones
// redo less after an abort. Default: 10,000 (Kafka's max.poll.records is
// 500; a commit per 500 records costs a transaction's round trips too
// often).
func MaxPollRecords(n int) Option { return optionFunc(func(c *config) { c.maxPoll = n }) }

// EndTimeout bounds each end of a transaction (ExactlyOnce): a commit or an
// abort, which Run carries through under this bound even when its context
// has ended, since a transaction left open holds back the group's next
// reader of its partitions (see Run). An end that fails is followed by one
// abort under the same bound. Default: 10s.
func EndTimeout(d time.Duration) Option { return optionFunc(func(c *config) { c.endTimeout = d }) }

// ConsumerKgoOptions passes options to the source's own consumer client,
// after the ones the source derives (an escape hatch, as
// pipeline.KgoOptions is for the sink: TLS, SASL, metadata settings). With
// ExactlyOnce the source reads through the sink's client, whose options
// come from Sink, and these are not used. Default: none.
func ConsumerKgoOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.consumerKgoOpts = append(c.consumerKgoOpts, opts...) })
}

// Logger is where the source logs (partitions stopped, aborted
// transactions, rebalances). Default: hclog.Default() named "kpipe".
func Logger(l hclog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// Reads reports whether a source that reads topics, or the topics that
// topicRegex matches (as TopicRegex says), reads topic.
func Reads(topic string, topics []string, topicRegex string) bool {
	if slices.Contains(topics, topic) {
		return true
	}
	if topicRegex == "" {
		return false
	}
	re, err := regexp.Compile(topicRegex)
	return err == nil && re.MatchString(topic)
}

// CheckOutput says why topic cannot be the output topic of a source that
// reads topics, or the topics that topicRegex matches, and sends failed
// records to the dead-letter topic deadLetter ("" for none); it returns nil
// if topic can be, and for "". A topic the source reads would read every
// record again, and the dead-letter topic would mix failed records with
// good ones. New checks the sink's DefaultTopic with it; the config package
// checks a pipeline's topic, and kpipe run a --topic that replaces it.
func CheckOutput(topic string, topics []string, topicRegex, deadLetter string) error {
	switch {
	case topic == "":
		return nil
	case slices.Contains(topics, topic):
		return fmt.Errorf("topics includes %q, the pipeline's topic: every record would be read again", topic)
	case Reads(topic, topics, topicRegex):
		return fmt.Errorf("topic_regex %q matches %q, the pipeline's topic: every record would be read again", topicRegex, topic)
	case topic == deadLetter:
		return fmt.Errorf("%q is the dead-letter topic: the pipeline's topic must be another", topic)
	}
	return nil
}
