package config

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/kafkasource"
	"github.com/kpipe/kpipe/pipeline"
)

// Delivery guarantees of a Kafka source (the source block's delivery).
const (
	// AtLeastOnce commits the consumed offsets after the records they
	// produced were delivered: after a crash or a rebalance, records
	// delivered since the last commit are produced again.
	AtLeastOnce = "at_least_once"
	// ExactlyOnce produces the records and commits the consumed offsets
	// in one Kafka transaction: read_committed readers of the output see
	// every input record's result once.
	ExactlyOnce = "exactly_once"
)

// Start positions of a Kafka source: where a group with no committed offset
// for a partition starts reading it (auto.offset.reset).
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Source is a pipeline's source "kafka" block: the pipeline reads records
// from Kafka topics through a consumer group, runs them through its plugins
// and produces them to its topic (see package kafkasource).
type Source struct {
	// Brokers are the source cluster's bootstrap brokers
	// (bootstrap.servers of the consumer); empty means the kafka block's,
	// the sink's.
	Brokers []string
	// Topics are the topics read; TopicRegex, if set instead, is a regular
	// expression: every topic whose name it matches (anywhere in the name,
	// as Go's regexp.MatchString; anchor with ^ and $) is read, Kafka's
	// internal topics excepted.
	Topics     []string
	TopicRegex string
	// Group is the consumer group (group.id). Processes with the same
	// group share the partitions.
	Group string
	// Start is StartEarliest (the default) or StartLatest: where a
	// partition with no committed offset is read from (auto.offset.reset).
	Start string
	// Delivery is AtLeastOnce (the default) or ExactlyOnce.
	Delivery string
	// TransactionalID is the transactional id of an exactly_once pipeline
	// (transactional.id); "" lets kafkasource derive one per process.
	TransactionalID string
	// SessionTimeout (session.timeout.ms) and RebalanceTimeout
	// (rebalance.timeout.ms, Kafka's max.poll.interval.ms) of the group
	// member; 0 keeps franz-go's defaults, 45s and 60s.
	SessionTimeout, RebalanceTimeout time.Duration
	// MaxPollRecords caps the records of one poll, which are produced and
	// committed together; 0 keeps kafkasource's default (10,000).
	MaxPollRecords int
	// DeadLetterTopic is the dead_letter block's topic: records that fail
	// go there with headers saying why. "" means none: a failed record
	// stops its partition.
	DeadLetterTopic string
	// TLS and SASL are the source block's own tls and sasl blocks, for a
	// source cluster (Brokers) secured otherwise than the kafka block's;
	// nil: the kafka block's apply (Config.SourceClientOptions).
	TLS  *TLS
	SASL *SASL
	// DefRange is the position of the block header, for diagnostics.
	DefRange hcl.Range
}

var sourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "brokers"},
		{Name: "topics"},
		{Name: "topic_regex"},
		{Name: "group", Required: true},
		{Name: "start"},
		{Name: "delivery"},
		{Name: "transactional_id"},
		{Name: "session_timeout"},
		{Name: "rebalance_timeout"},
		{Name: "max_poll_records"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "dead_letter"},
		{Type: "tls"},
		{Type: "sasl"},
	},
}

var deadLetterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "topic", Required: true},
	},
}

// sourceRanges are the positions of a source block's attributes, for the
// rules checkSource applies once the whole file is read.
type sourceRanges struct {
	brokers, topics, delivery, transactionalID, deadLetter *hcl.Range
}

// brokerList decodes a list of bootstrap broker addresses (brokers in the
// kafka and source blocks); empty items are skipped.
func (d *decoder) brokerList(attr *hcl.Attribute) ([]string, bool) {
	list, ok := d.stringList(attr)
	if !ok {
		return nil, false
	}
	var out []string
	for _, b := range list {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if err := checkBroker(b); err != nil {
			d.errorf(attr.Expr.Range(), "Invalid broker address", "%s.", err)
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

func (d *decoder) source(b *hcl.Block) (*Source, *sourceRanges) {
	s := &Source{Start: StartEarliest, Delivery: AtLeastOnce, DefRange: b.DefRange}
	rg := &sourceRanges{}
	if b.Labels[0] != "kafka" {
		d.errorf(b.LabelRanges[0], "Invalid source type",
			`The only source type is "kafka" (source "kafka" { ... }), not %q.`, b.Labels[0])
		return nil, nil
	}
	content, diags := b.Body.Content(sourceSchema)
	d.diags = append(d.diags, diags...)
	a := content.Attributes
	at := func(attr *hcl.Attribute) *hcl.Range { r := attr.Expr.Range(); return &r }

	if attr, ok := a["brokers"]; ok {
		rg.brokers = at(attr)
		if list, ok := d.brokerList(attr); ok {
			if len(list) == 0 {
				d.errorf(attr.Expr.Range(), "Invalid brokers", "brokers must name at least one HOST:PORT; remove it to read from the kafka block's brokers.")
			}
			s.Brokers = list
		}
	}
	topics, hasTopics := a["topics"]
	regex, hasRegex := a["topic_regex"]
	switch {
	case hasTopics && hasRegex:
		d.errorf(regex.Range, "Conflicting topics",
			"A kafka source reads either topics or topic_regex, not both (topics is at %s).", topics.Range)
	case !hasTopics && !hasRegex:
		d.errorf(b.DefRange, "Missing topics",
			`A kafka source needs topics = ["..."] or topic_regex = "...".`)
	case hasTopics:
		rg.topics = at(topics)
		if list, ok := d.stringList(topics); ok {
			for _, t := range list {
				if t = strings.TrimSpace(t); t == "" {
					d.errorf(topics.Expr.Range(), "Invalid topics", "topics must not contain an empty name.")
					break
				}
				s.Topics = append(s.Topics, t)
			}
			if len(list) == 0 {
				d.errorf(topics.Expr.Range(), "Invalid topics", "topics must name at least one topic.")
			}
		}
	case hasRegex:
		if str, ok := d.string(regex); ok {
			if _, err := regexp.Compile(str); err != nil || str == "" {
				msg := "must not be empty"
				if err != nil {
					msg = err.Error()
				}
				d.errorf(regex.Expr.Range(), "Invalid topic_regex", "topic_regex is not a regular expression: %s.", msg)
			} else {
				s.TopicRegex = str
			}
		}
	}
	if attr, ok := a["group"]; ok {
		if str, ok := d.string(attr); ok {
			if strings.TrimSpace(str) == "" {
				d.errorf(attr.Expr.Range(), "Invalid group", "group must not be empty: processes with the same group share the partitions.")
			}
			s.Group = str
		}
	}
	if attr, ok := a["start"]; ok {
		if str, ok := d.string(attr); ok {
			if d.oneOf(attr, str, StartEarliest, StartLatest) {
				s.Start = str
			}
		}
	}
	if attr, ok := a["delivery"]; ok {
		rg.delivery = at(attr)
		if str, ok := d.string(attr); ok {
			if d.oneOf(attr, str, ExactlyOnce, AtLeastOnce) {
				s.Delivery = str
			}
		}
	}
	if attr, ok := a["transactional_id"]; ok {
		rg.transactionalID = at(attr)
		if str, ok := d.string(attr); ok {
			if str == "" {
				d.errorf(attr.Expr.Range(), "Invalid transactional_id", "transactional_id must not be empty; remove it to have one derived per process.")
			}
			s.TransactionalID = str
		}
	}
	if attr, ok := a["session_timeout"]; ok {
		s.SessionTimeout = d.groupTimeout(attr)
	}
	if attr, ok := a["rebalance_timeout"]; ok {
		s.RebalanceTimeout = d.groupTimeout(attr)
	}
	if attr, ok := a["max_poll_records"]; ok {
		s.MaxPollRecords, _ = d.int(attr, 1, 1<<20)
	}
	var first *hcl.Block
	var security hcl.Blocks
	for _, blk := range content.Blocks {
		if blk.Type != "dead_letter" {
			security = append(security, blk)
			continue
		}
		if first != nil {
			d.errorf(blk.DefRange, "Duplicate dead_letter block",
				"A source has at most one dead_letter block; the first one is at %s.", first.DefRange)
			continue
		}
		first = blk
		c, diags := blk.Body.Content(deadLetterSchema)
		d.diags = append(d.diags, diags...)
		if attr, ok := c.Attributes["topic"]; ok {
			rg.deadLetter = at(attr)
			if str, ok := d.string(attr); ok {
				if strings.TrimSpace(str) == "" {
					d.errorf(attr.Expr.Range(), "Invalid dead_letter topic", "topic must not be empty.")
				}
				s.DeadLetterTopic = str
			}
		}
	}
	s.TLS, s.SASL = d.security("source", security)
	if len(security) > 0 && len(s.Brokers) == 0 {
		d.errorf(security[0].DefRange, "Security of the kafka block's cluster",
			"The source reads the kafka block's brokers, whose tls and sasl blocks apply to it: move this block into the kafka block, or set the source's brokers (another cluster).")
	}
	return s, rg
}

// groupTimeout decodes session_timeout or rebalance_timeout, within the
// bounds of kafkasource (0 if it is not a duration within them).
func (d *decoder) groupTimeout(attr *hcl.Attribute) time.Duration {
	v, ok := d.duration(attr, false)
	if ok && (v < kafkasource.MinGroupTimeout || v > kafkasource.MaxGroupTimeout) {
		d.errorf(attr.Expr.Range(), "Invalid duration", "%s must be from %v to %v, got %v.",
			attr.Name, kafkasource.MinGroupTimeout, kafkasource.MaxGroupTimeout, v)
		return 0
	}
	return v
}

// Reads reports whether the source reads topic: it is one of Topics, or
// TopicRegex matches it (kafkasource.Reads).
func (s *Source) Reads(topic string) bool {
	return kafkasource.Reads(topic, s.Topics, s.TopicRegex)
}

// CheckOutput says why topic cannot be the output topic of the source's
// pipeline, or returns nil: a topic the source reads would read every
// record again, and the dead-letter topic would mix failed records with
// good ones. The rule is kafkasource.CheckOutput, which kafkasource.New
// applies too. The configuration's own topic is checked when it is loaded;
// kpipe run checks a --topic that replaces it.
func (s *Source) CheckOutput(topic string) error {
	return kafkasource.CheckOutput(topic, s.Topics, s.TopicRegex, s.DeadLetterTopic)
}

// checkKafkaForSources reports the kafka block's transactional_id once when
// a pipeline (first, the first of them) reads Kafka.
func (d *decoder) checkKafkaForSources(first *Pipeline) {
	if attr := d.kafkaAttrs["transactional_id"]; attr != nil {
		d.errorf(attr.Expr.Range(), "transactional_id with a kafka source",
			"The kafka block's transactional_id is for pipelines fed by a file or stdin (one transaction per run); pipeline %q reads Kafka (source at %s), whose transactions are chosen by the source's delivery = \"exactly_once\".", first.Name, first.Source.DefRange)
	}
}

// checkSource applies the rules that tie a pipeline's kafka source to the
// rest of the file (the kafka block may come after the pipeline).
func (d *decoder) checkSource(cfg *Config, p *Pipeline, rg *sourceRanges) {
	s := p.Source
	if p.Topic == "" {
		d.errorf(s.DefRange, "Missing topic",
			`A pipeline with a kafka source needs topic = "...", the topic it writes to (a plugin may still send a record elsewhere).`)
	}
	if p.Topic != "" && s.Reads(p.Topic) {
		// The dead-letter topic is reported at its block below.
		r := s.DefRange
		if rg.topics != nil && slices.Contains(s.Topics, p.Topic) {
			r = *rg.topics
		}
		d.errorf(r, "Pipeline reads its own output", "%s.", s.CheckOutput(p.Topic))
	}
	if dl := s.DeadLetterTopic; dl != "" && rg.deadLetter != nil {
		if dl == p.Topic || s.Reads(dl) {
			d.errorf(*rg.deadLetter, "Invalid dead_letter topic",
				"The dead-letter topic %q must be neither the pipeline's topic nor a topic it reads.", dl)
		}
	}
	ka := d.kafkaAttrs
	if s.Delivery != ExactlyOnce {
		if rg.transactionalID != nil {
			d.errorf(*rg.transactionalID, "transactional_id needs exactly_once",
				`A source's transactional_id is used only with delivery = "exactly_once".`)
		}
		return
	}
	if len(s.Brokers) > 0 && !sameBrokers(s.Brokers, cfg.Kafka.Brokers) {
		d.errorf(*rg.brokers, "exactly_once needs one cluster",
			"With delivery = \"exactly_once\" the consumed offsets are committed in the transaction that writes the output, so the source must read from the kafka block's cluster: remove the source's brokers, or use delivery = \"at_least_once\" (at %s).", *rg.delivery)
	}
	if attr := ka["acks"]; attr != nil && cfg.Kafka.Acks != "" && cfg.Kafka.Acks != "all" {
		d.errorf(attr.Expr.Range(), "exactly_once needs acks = \"all\"",
			"Transactions (delivery = \"exactly_once\" at %s) need acks = \"all\", not %q.", *rg.delivery, cfg.Kafka.Acks)
	}
	if attr := ka["idempotence"]; attr != nil && cfg.Kafka.Idempotence != nil && !*cfg.Kafka.Idempotence {
		d.errorf(attr.Expr.Range(), "exactly_once needs idempotence",
			"Transactions (delivery = \"exactly_once\" at %s) need idempotent writes; remove idempotence = false.", *rg.delivery)
	}
}

// sameBrokers reports whether two broker lists name the same addresses.
func sameBrokers(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// Options returns the pipeline options of the kafka block's settings that
// are set (no plugins): the settings of a producer that runs no pipeline,
// such as a kafka source's dead-letter producer.
func (k *Kafka) Options() ([]pipeline.Option, error) { return k.kafkaOptions() }
