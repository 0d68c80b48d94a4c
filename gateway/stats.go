package gateway

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of what the gateway has done.
type Stats struct {
	// Connections are the client connections open now.
	Connections []ConnStats
	// Topics are the topics clients produced to since the start.
	Topics []TopicStats
	// MemoryInUse is the bytes of produce requests held now, out of
	// MemoryLimit.
	MemoryInUse, MemoryLimit int64
	// Throttled counts the requests that waited for memory.
	Throttled uint64
	// Unsupported counts the requests of APIs the gateway does not
	// serve.
	Unsupported uint64
}

// ConnStats describes one client connection.
type ConnStats struct {
	Remote string
	// ClientID is the client.id of the connection's first request;
	// Software the client software and version it announced
	// (ApiVersions v3+), e.g. "apache-kafka-java 3.9.0"; User the SASL
	// user it authenticated as (SASLUsers), if any.
	ClientID, Software, User string
	Since                    time.Time
	// Requests counts every request; Records and Bytes the records and
	// record-batch bytes it produced; Duplicates the batches answered
	// from an earlier attempt (idempotent retries).
	Requests, Records, Bytes, Duplicates uint64
}

// TopicStats counts the records produced to one topic through the gateway.
type TopicStats struct {
	Topic string
	// Records and Bytes were received; Delivered, Filtered and Failed
	// are their outcomes upstream.
	Records, Bytes, Delivered, Filtered, Failed uint64
	// Duplicates counts batches answered from an earlier attempt
	// without sending them again; Retried the batches of which only the
	// records that had failed were sent again.
	Duplicates, Retried uint64
	// Forwarded counts the records of Records that went upstream in
	// their client's batch, as it was (ForwardBatches), rather than
	// through the pipeline.
	Forwarded uint64
}

type stats struct {
	throttled, unsupported atomic.Uint64

	mu     sync.Mutex
	conns  map[*connStats]struct{}
	topics sync.Map // string -> *topicStats
	// ntopics counts the topics in topics; topicsFull is set once it
	// reached maxTopicStats.
	ntopics    atomic.Int64
	topicsFull atomic.Bool
}

func newStats() *stats { return &stats{conns: map[*connStats]struct{}{}} }

type connStats struct {
	remote                               string
	since                                time.Time
	clientID, software, user             atomicString
	requests, records, bytes, duplicates atomic.Uint64
}

type topicStats struct {
	records, bytes, delivered, filtered, failed, duplicates, retried, forwarded atomic.Uint64
}

func (s *stats) addConn(remote string) *connStats {
	cs := &connStats{remote: remote, since: time.Now()}
	s.mu.Lock()
	s.conns[cs] = struct{}{}
	s.mu.Unlock()
	return cs
}

func (s *stats) removeConn(cs *connStats) {
	s.mu.Lock()
	delete(s.conns, cs)
	s.mu.Unlock()
}

// maxTopicStats bounds the topics counted by name: a client may produce to
// any number of valid names that exist nowhere (each answered
// UNKNOWN_TOPIC_OR_PARTITION), and each name kept its counters for the
// life of the process, in Stats, the metrics and the stop summary: a
// million names took some 250MB. The topics beyond it are counted
// together as OtherTopics.
const maxTopicStats = 10_000

// OtherTopics is the name under which Stats counts the topics produced to
// after the first 10,000 (not a valid topic name, so it meets none).
const OtherTopics = "(other topics)"

// topicStats returns the counters of the topic name, made at its first
// produce; past maxTopicStats topics, those of OtherTopics, with a
// warning the first time.
func (g *Gateway) topicStats(name string) *topicStats {
	s := g.stats
	if ts, ok := s.topics.Load(name); ok {
		return ts.(*topicStats)
	}
	if s.ntopics.Load() >= maxTopicStats {
		if s.topicsFull.CompareAndSwap(false, true) {
			g.log.Warn("clients produced to more topics than the gateway counts by name; the others are counted together", "max", maxTopicStats, "as", OtherTopics, "topic", name)
		}
		name = OtherTopics
	}
	ts, loaded := s.topics.LoadOrStore(name, &topicStats{})
	if !loaded {
		s.ntopics.Add(1)
	}
	return ts.(*topicStats)
}

// settle counts the outcomes of a batch when its last one is in.
func (ts *topicStats) settle(br *batchResult) {
	ts.delivered.Add(br.delivered.Load())
	ts.filtered.Add(br.filtered.Load())
	ts.failed.Add(br.failedN.Load())
}

// Stats returns a snapshot of the gateway's counters.
func (g *Gateway) Stats() Stats {
	st := Stats{
		MemoryInUse: g.mem.inUse(),
		MemoryLimit: g.memLimit,
		Throttled:   g.stats.throttled.Load(),
		Unsupported: g.stats.unsupported.Load(),
	}
	g.stats.mu.Lock()
	for cs := range g.stats.conns {
		c := ConnStats{
			Remote: cs.remote, Since: cs.since,
			Requests: cs.requests.Load(), Records: cs.records.Load(),
			Bytes: cs.bytes.Load(), Duplicates: cs.duplicates.Load(),
		}
		if p := cs.clientID.Load(); p != nil {
			c.ClientID = *p
		}
		if p := cs.software.Load(); p != nil {
			c.Software = *p
		}
		if p := cs.user.Load(); p != nil {
			c.User = *p
		}
		st.Connections = append(st.Connections, c)
	}
	g.stats.mu.Unlock()
	sort.Slice(st.Connections, func(i, j int) bool { return st.Connections[i].Remote < st.Connections[j].Remote })
	g.stats.topics.Range(func(k, v any) bool {
		ts := v.(*topicStats)
		st.Topics = append(st.Topics, TopicStats{
			Topic: k.(string), Records: ts.records.Load(), Bytes: ts.bytes.Load(),
			Delivered: ts.delivered.Load(), Filtered: ts.filtered.Load(), Failed: ts.failed.Load(),
			Duplicates: ts.duplicates.Load(), Retried: ts.retried.Load(), Forwarded: ts.forwarded.Load(),
		})
		return true
	})
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Topic < st.Topics[j].Topic })
	return st
}
