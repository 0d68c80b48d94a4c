package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
)

// Sender is what the gateway needs of a pipeline: *pipeline.Producer.
// The records of one record batch of a request are sent together, so that
// plugins that take batches are called once for many of them
// (pipeline.Producer.SendBatch).
type Sender interface {
	SendBatch(ctx context.Context, rs []*plugins.Record, cb func(*plugins.Record, pipeline.Result))
}

// Option configures a Gateway.
type Option interface{ apply(*Gateway) }

type optionFunc func(*Gateway)

func (f optionFunc) apply(g *Gateway) { f(g) }

// Advertise is the address the gateway gives clients as every partition's
// leader (the advertised.listeners of a broker). Default: the address of
// the listener given to Serve; a listener on an unspecified address
// (0.0.0.0, ::) needs Advertise.
func Advertise(host string, port int32) Option {
	return optionFunc(func(g *Gateway) { g.host, g.port = host, port })
}

// NodeID is the broker id the gateway advertises (broker.id). Default: a
// hash of the advertised address, so that gateways side by side have
// distinct ids.
func NodeID(id int32) Option {
	return optionFunc(func(g *Gateway) { g.nodeID, g.nodeIDSet = id, true })
}

// MemoryLimit bounds the bytes of produce requests held at once, as read
// and decompressed, from the moment a request is read until its records
// all have an outcome upstream. A client whose request does not fit waits,
// unread, and its response carries the wait as throttle_time_ms. Default:
// 256MiB.
func MemoryLimit(n int64) Option { return optionFunc(func(g *Gateway) { g.memLimit = n }) }

// KeepPartition makes every record go to the partition its client chose
// (plugins.Record.SetPartition), which is right when the pipeline has no
// partitioner of its own. With false, the pipeline's partitioner decides
// and the client is told offset -1 (unknown) for its batches. Default:
// true.
func KeepPartition(keep bool) Option {
	return optionFunc(func(g *Gateway) { g.keepPartition.Store(keep) })
}

// SetKeepPartition changes KeepPartition for the batches read from now on,
// for a pipeline whose partitioner was added or removed by a reload.
func (g *Gateway) SetKeepPartition(keep bool) { g.keepPartition.Store(keep) }

// MaxRequestSize is the largest request the gateway reads
// (socket.request.max.bytes); a larger one closes the connection. Default:
// 100MiB.
func MaxRequestSize(n int32) Option { return optionFunc(func(g *Gateway) { g.maxRequest = n }) }

// Logger receives the gateway's logs. Default: none.
func Logger(l hclog.Logger) Option { return optionFunc(func(g *Gateway) { g.log = l }) }

// Gateway is a Kafka-protocol endpoint for producers: it answers the
// requests a producer makes as if it were the cluster, and sends every
// record it receives through a pipeline to the upstream cluster. See the
// package documentation.
type Gateway struct {
	producer Sender
	upstream kmsg.Requestor

	host          string
	port          int32
	nodeID        int32
	nodeIDSet     bool
	memLimit      int64
	keepPartition atomic.Bool
	forwardOn     bool
	// forwardMin: see ForwardMinRecords.
	forwardMin int32
	// checkForwarded: see CheckForwardedRecords.
	checkForwarded bool
	maxRequest     int32
	log            hclog.Logger
	// sasl holds the users clients authenticate as; nil: no
	// authentication (see SASLUsers).
	sasl *saslUsers

	dec       *decompressor
	pools     *pools
	mem       *memory
	producers *producers
	stats     *stats
	fwd       *forwarder // nil: every batch takes the record path

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	closing   bool
	connWG    sync.WaitGroup
	// stopRead is closed when the gateway stops reading requests;
	// stopWrite when it gives up answering the ones it has.
	stopRead, stopWrite chan struct{}
	stopOnce            sync.Once
	// reading ends when the gateway stops reading: a reader waiting for
	// memory gives up.
	reading     context.Context
	stopReading context.CancelFunc
}

// New returns a gateway that sends records with producer and asks upstream
// (a *kgo.Client of the same cluster) for metadata.
func New(producer Sender, upstream kmsg.Requestor, opts ...Option) (*Gateway, error) {
	g := &Gateway{
		producer:   producer,
		upstream:   upstream,
		memLimit:   256 << 20,
		maxRequest: 100 << 20,
		forwardMin: 1,
		log:        hclog.NewNullLogger(),
		producers:  newProducers(),
		stats:      newStats(),
		conns:      map[*conn]struct{}{},
		stopRead:   make(chan struct{}),
		stopWrite:  make(chan struct{}),
	}
	g.keepPartition.Store(true)
	g.reading, g.stopReading = context.WithCancel(context.Background())
	for _, o := range opts {
		o.apply(g)
	}
	if g.memLimit <= 0 {
		return nil, fmt.Errorf("gateway: memory limit %d: want more than 0", g.memLimit)
	}
	// The free lists keep what a quarter of the limit holds, at most
	// 64MiB: enough for the requests of a steady stream to reuse.
	g.pools = newPools(min(g.memLimit/4, 64<<20))
	var err error
	if g.dec, err = newDecompressor(min(int64(g.maxRequest)*4, g.memLimit), g.pools.bytes); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.mem = newMemory(g.memLimit)
	g.producers.max = int(max(g.memLimit/producerStateBytes, 1024))
	g.fwd = newForwarder(g)
	return g, nil
}

// Addr is the advertised address, HOST:PORT (empty before Serve when no
// Advertise option was given).
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.host == "" {
		return ""
	}
	return net.JoinHostPort(g.host, strconv.Itoa(int(g.port)))
}

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("gateway: closed")

// Serve accepts client connections on l until Shutdown, and returns
// ErrClosed then; it returns the listener's error if accepting fails.
func (g *Gateway) Serve(l net.Listener) error {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		return ErrClosed
	}
	if g.host == "" {
		tcp, ok := l.Addr().(*net.TCPAddr)
		if !ok || tcp.IP.IsUnspecified() {
			g.mu.Unlock()
			return fmt.Errorf("gateway: listening on %s: an unspecified address needs Advertise", l.Addr())
		}
		g.host, g.port = tcp.IP.String(), int32(tcp.Port)
	}
	if !g.nodeIDSet {
		h := fnv.New32a()
		h.Write([]byte(net.JoinHostPort(g.host, strconv.Itoa(int(g.port)))))
		g.nodeID = int32(h.Sum32() & 0x7fffffff)
		g.nodeIDSet = true
	}
	g.listeners = append(g.listeners, l)
	g.mu.Unlock()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-g.stopRead:
				return ErrClosed
			default:
			}
			if acceptRetriable(err) {
				if delay == 0 {
					g.log.Warn("accepting client connections failed; retrying", "error", err)
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("gateway: accept: %w", err)
		}
		delay = 0
		g.mu.Lock()
		if g.closing {
			g.mu.Unlock()
			nc.Close()
			return ErrClosed
		}
		c := newConn(g, nc)
		g.conns[c] = struct{}{}
		g.connWG.Add(1)
		g.mu.Unlock()
		go c.serve()
	}
}

// acceptRetriable reports whether an Accept error passes: a timeout, a
// connection the client gave up before it was accepted, or a lack of file
// descriptors or kernel memory, which a client opening many connections
// can cause and which ends when connections close. Serving stops on the
// others.
func acceptRetriable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops accepting connections and reading requests, and answers
// every request already read once its records have their outcomes; the
// connections are then closed. If ctx ends first, the connections are
// closed with their requests unanswered (the clients see a broken
// connection and retry), and Shutdown returns ctx's error. The records
// already sent stay in the pipeline, whose Close settles them.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopOnce.Do(func() {
		close(g.stopRead)
		g.stopReading()
	})
	g.mu.Lock()
	g.closing = true
	for _, l := range g.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
	done := make(chan struct{})
	go func() {
		g.connWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway: shutdown: %w", ctx.Err())
		close(g.stopWrite)
		g.mu.Lock()
		for c := range g.conns {
			c.nc.Close()
		}
		g.mu.Unlock()
		<-done
	}
	if g.fwd != nil {
		// Once the connections are done, the forwarded batches still on
		// their way were given up on (their contexts ended with their
		// connections): their goroutines end at once.
		g.fwd.sending.Wait()
	}
	g.dec.close()
	return err
}

func (g *Gateway) removeConn(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.connWG.Done()
}
