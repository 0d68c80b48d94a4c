package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kpipe/kpipe/internal/topicname"
)

// DefaultPartitions is the partition count of topics that the embedded broker
// creates automatically (on first use) and of topics given without a count.
const DefaultPartitions = 3

// MaxPartitions is the largest partition count ParseTopic takes. The fake
// broker holds every partition in memory from the start: 10000 take about
// 20 MB, while a count such as 100000000 took tens of GB before the
// process could even answer a signal.
const MaxPartitions = 10000

// Topic is a topic to create when the broker starts.
type Topic struct {
	Name       string
	Partitions int32
}

// ParseTopic parses "NAME" or "NAME:PARTITIONS".
func ParseTopic(s string) (Topic, error) {
	name, parts, hasParts := strings.Cut(s, ":")
	if err := topicname.Check(name); err != nil {
		return Topic{}, fmt.Errorf("topic %q: %w", s, err)
	}
	t := Topic{Name: name, Partitions: DefaultPartitions}
	if hasParts {
		n, err := strconv.ParseInt(parts, 10, 32)
		if err != nil || n < 1 || n > MaxPartitions {
			return Topic{}, fmt.Errorf("topic %q: partition count must be a whole number from 1 to %d", s, MaxPartitions)
		}
		t.Partitions = int32(n)
	}
	return t, nil
}

// Config configures Start.
type Config struct {
	// Listen is the HOST:PORT the broker listens on. Empty means
	// 127.0.0.1 on a free port. Clients are told to connect to exactly
	// this address, so it must be reachable from them.
	Listen string
	// Topics are created at start. Other topics are created with
	// DefaultPartitions partitions the first time a client asks for them.
	Topics []Topic
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts a single-node broker. Close it when done.
func Start(cfg Config) (*Broker, error) {
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, fmt.Errorf("embedded broker: listen address %q: %w", listen, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(DefaultPartitions),
		kfake.ClusterID("kpipe-embedded"),
		// kfake always asks for 127.0.0.1:PORT; listen where we were told.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, listen)
		}),
	}
	for _, t := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(t.Partitions, t.Name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, errors.New("embedded broker: expected exactly one listener")
	}
	return &Broker{cluster: c, addr: addrs[0]}, nil
}

// Addr returns the bootstrap address (HOST:PORT) clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker; the records it held are gone.
func (b *Broker) Close() { b.cluster.Close() }
