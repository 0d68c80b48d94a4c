package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe/kpipe/plugins"
)

// maxInFlight is how many requests of one connection may wait for their
// responses; the connection is not read further while that many wait.
const maxInFlight = 64

// writeTimeout bounds the write of one response.
const writeTimeout = 30 * time.Second

// idleTimeout closes a connection that sends no request for that long, as
// a broker's connections.max.idle.ms (10 minutes) does: otherwise
// connections opened and left would hold their file descriptors for ever,
// and enough of them keep every new client out. Clients reconnect when
// they need to (the Java client closes its own idle ones after 9 minutes).
// A variable so that tests can shorten it.
var idleTimeout = 10 * time.Minute

// bodyTimeout bounds the time the rest of a request may take to arrive once
// its size is read: the request holds its size of the memory limit from
// then on, so a client that sends a size and stalls would otherwise hold
// every other client's requests back for as long as it likes. Clients give
// up on a request after their own request timeout (30s by default) anyway.
// A variable so that tests can shorten it.
var bodyTimeout = 30 * time.Second

// conn is one client connection: a reader goroutine (serve) that reads and
// starts requests in order, and a writer goroutine that answers them in the
// same order, as the protocol requires.
type conn struct {
	g     *Gateway
	nc    net.Conn
	st    *connStats
	queue chan *pending
	// ctx ends when the connection is done with.
	ctx    context.Context
	cancel context.CancelFunc
	// warned holds the API keys of unserved requests already logged for
	// this connection: one line per key, not one per request.
	warned map[int16]bool
	// unknownLogged holds the topic partitions already logged as
	// answered UNKNOWN_TOPIC_OR_PARTITION on this connection (see
	// logUnknown); only the writer uses it.
	unknownLogged map[laneKey]bool
	// headerKeys are the record header keys seen on this connection (see
	// headerKey); only the reader uses it.
	headerKeys map[string]string
	// toSend is the reader's scratch list of the records of a batch
	// handed to the pipeline (Sender.SendBatch keeps none of it).
	toSend []*plugins.Record
	// auth is the connection's SASL authentication once a SaslHandshake
	// chose a mechanism; authenticated is set when it succeeded. Only
	// the reader uses them.
	auth          *saslSession
	authenticated bool
}

// pending is a request read and started, waiting for its response.
type pending struct {
	h header
	// results are waited for before the response is built; nil for
	// requests answered at once.
	results []*batchResult
	// response builds the response once results are done; nil when the
	// request gets none (produce with acks=0).
	response func() kmsg.Response
	// mem is the memory the request holds until it is answered.
	mem int64
	// done runs once the results are in, answered or not.
	done func()
	// bufs, recs and headers are the pooled memory the request holds
	// (see buffers.go): its body, decompressed records, and the records
	// and headers given to the pipeline.
	bufs    []*[]byte
	recs    []*[]plugins.Record
	headers []*[]plugins.Header
}

func newConn(g *Gateway, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{g: g, nc: nc, queue: make(chan *pending, maxInFlight), ctx: ctx, cancel: cancel}
	c.st = g.stats.addConn(nc.RemoteAddr().String())
	return c
}

// stopReading makes the reader stop at the next request boundary (or in
// the middle of one, which is then not accepted).
func (c *conn) stopReading() { _ = c.nc.SetReadDeadline(time.Now()) }

func (c *conn) serve() {
	defer c.g.removeConn(c)
	defer c.g.stats.removeConn(c.st)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write()
	}()
	err := c.read()
	close(c.queue)
	if tc, ok := c.nc.(*tls.Conn); ok && err != nil && !errors.Is(err, io.EOF) && !tc.ConnectionState().HandshakeComplete {
		// A listener of tls.NewListener: the handshake runs in the
		// first read. Its failure (no or a wrong client certificate, a
		// plaintext client) is what an operator looks for when a
		// client cannot connect. A connection closed before it sent
		// anything (a load balancer's TCP health check) is no failure.
		c.g.log.Warn("closing a client connection: TLS handshake failed", "remote", c.st.remote, "error", err)
	} else if err != nil && !errors.Is(err, io.EOF) && !isClosed(err) {
		c.g.log.Debug("client connection ends", "remote", c.st.remote, "error", err)
	}
	<-writerDone
	c.cancel()
	c.nc.Close()
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout())
}

// read reads requests until the connection ends or the gateway stops.
func (c *conn) read() error {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.nc)
	defer func() {
		if br != nil {
			br.Reset(nil)
			readers.Put(br)
		}
	}()
	var sizeBuf [4]byte
	for {
		select {
		case <-c.g.stopRead:
			return nil
		default:
		}
		if err := c.readSize(&br, &sizeBuf); err != nil {
			if isTimeout(err) && !c.stopping() {
				c.g.log.Info("closing an idle client connection", "remote", c.st.remote, "idle", idleTimeout)
			}
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 10 || size > c.g.maxRequest {
			c.g.log.Warn("closing a client connection: request size out of range", "remote", c.st.remote, "size", size, "max", c.g.maxRequest)
			return nil
		}
		// Wait for memory before reading: a client that is too fast
		// is held here, unread. What is counted is the buffer the
		// body is read into, which is rounded up to its pool's size.
		held := int64(pooledSize(int(size)))
		t0 := time.Now()
		waited, err := c.g.mem.take(c.g.reading, held)
		if err != nil {
			return nil // the gateway stops
		}
		var throttle int32
		if waited {
			throttle = int32(min(time.Since(t0).Milliseconds(), 1000))
			c.g.stats.throttled.Add(1)
		}
		body := c.g.pools.bytes.get(int(size))
		// A body already buffered needs no deadline (the common case
		// of small requests, which spares the timer).
		timed := br.Buffered() < int(size)
		if timed {
			_ = c.nc.SetReadDeadline(time.Now().Add(bodyTimeout))
			if c.stopping() { // a stop's deadline may have come first
				c.stopReading()
			}
		}
		if _, err := io.ReadFull(br, *body); err != nil {
			c.g.pools.bytes.put(body)
			c.g.mem.give(held)
			if isTimeout(err) && !c.stopping() {
				c.g.log.Warn("closing a client connection: the request did not arrive in time", "remote", c.st.remote, "size", size, "timeout", bodyTimeout)
			}
			return err
		}
		if timed {
			// Shutdown closes stopRead before it sets its own
			// deadline, so clearing ours cannot hide a stop: the
			// loop checks stopRead before the next read.
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		p, err := c.handle(*body, throttle)
		if p != nil {
			p.mem += held
			p.bufs = append(p.bufs, body)
		} else {
			c.g.pools.bytes.put(body)
			c.g.mem.give(held)
		}
		// A request may be answered and still end the connection (a
		// failed authentication): its answer is queued first.
		if p != nil {
			c.queue <- p
		}
		if err != nil {
			return err
		}
	}
}

// readBufferSize is the size of a connection's read buffer: enough for
// the small requests a client sends one after another to be read with one
// system call.
const readBufferSize = 64 << 10

// readers are the read buffers of the connections; a connection that sends
// nothing for bufferIdle gives its own back while it waits (see readSize).
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// bufferIdle is how long a connection may send nothing before its read
// buffer goes back to readers until its next request starts. Each
// connection held its 64KiB buffer for its whole life: 2,000 connections
// opened and left took 130MiB, outside the memory limit, and a client may
// open as many as the process has file descriptors. A variable so that
// tests can shorten it.
var bufferIdle = time.Second

// readSize reads the size of the next request into sizeBuf. While nothing
// is buffered it waits at most idleTimeout; after bufferIdle of it, *br is
// given back and the rest of the size is read from the connection itself,
// then *br is a buffer from readers again (nil if reading failed).
func (c *conn) readSize(br **bufio.Reader, sizeBuf *[4]byte) error {
	b := *br
	if b.Buffered() >= len(sizeBuf) {
		_, err := io.ReadFull(b, sizeBuf[:])
		return err
	}
	deadline := time.Now().Add(idleTimeout)
	hold := min(bufferIdle, idleTimeout)
	_ = c.nc.SetReadDeadline(time.Now().Add(hold))
	if c.stopping() { // a stop's deadline may have come first
		c.stopReading()
	}
	n, err := io.ReadFull(b, sizeBuf[:])
	if err == nil || !isTimeout(err) || c.stopping() || hold == idleTimeout {
		return err
	}
	// Quiet for bufferIdle: ReadFull took every buffered byte, so the
	// buffer can go back while the connection waits.
	b.Reset(nil)
	readers.Put(b)
	*br = nil
	_ = c.nc.SetReadDeadline(deadline)
	if c.stopping() {
		c.stopReading()
	}
	if _, err := io.ReadFull(c.nc, sizeBuf[n:]); err != nil {
		return err
	}
	b = readers.Get().(*bufio.Reader)
	b.Reset(c.nc)
	*br = b
	return nil
}

// clientID is the client id of the connection's first request that had
// one.
func (c *conn) clientID() string {
	if p := c.st.clientID.Load(); p != nil {
		return *p
	}
	return ""
}

// stopping reports whether the gateway stopped reading.
func (c *conn) stopping() bool {
	select {
	case <-c.g.stopRead:
		return true
	default:
		return false
	}
}

// handle starts one request and returns what will answer it.
func (c *conn) handle(body []byte, throttle int32) (*pending, error) {
	h, req, rest, err := parseHeader(body)
	if err != nil {
		c.g.log.Warn("closing a client connection: malformed request header", "remote", c.st.remote, "error", err)
		return nil, err
	}
	c.st.requests.Add(1)
	if h.clientID != "" && c.st.clientID.Load() == nil {
		id := h.clientID
		c.st.clientID.Store(&id)
	}
	if req == nil {
		c.g.log.Warn("closing a client connection: unknown request type", "remote", c.st.remote, "api_key", h.key)
		return nil, errors.New("unknown api key")
	}
	p := &pending{h: h}
	if h.key == 18 { // ApiVersions
		// Best effort: the software name is only for the statistics.
		if r, ok := req.(*kmsg.ApiVersionsRequest); ok && h.version <= 3 && c.decode(p, req, rest) == nil && r.ClientSoftwareName != "" {
			sw := r.ClientSoftwareName + " " + r.ClientSoftwareVersion
			c.st.software.Store(&sw)
		}
		resp := apiVersions(h, c.g.sasl != nil)
		p.response = func() kmsg.Response { return resp }
		return p, nil
	}
	if c.g.sasl != nil && !c.authenticated {
		return c.authenticate(p, req, rest)
	}
	if r, ok := servedRange(h.key); !ok || h.key == 1 || h.version < r.min || h.version > r.max {
		return c.unsupported(p, req, rest)
	}
	if err := c.decode(p, req, rest); err != nil {
		c.g.mem.give(p.mem)
		c.g.log.Warn("closing a client connection: malformed request", "remote", c.st.remote, "client_id", h.clientID, "request", kmsg.NameForKey(h.key), "version", h.version, "error", err)
		return nil, err
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		c.g.produce(c, p, r, throttle)
	case *kmsg.MetadataRequest:
		resp := c.g.metadata(c, r)
		p.response = func() kmsg.Response { return resp }
	case *kmsg.InitProducerIDRequest:
		resp := c.g.initProducerID(r)
		p.response = func() kmsg.Response { return resp }
	case *kmsg.FindCoordinatorRequest:
		resp := findCoordinator(r)
		p.response = func() kmsg.Response { return resp }
	}
	return p, nil
}

// decode decodes req from body, the request after its header, once
// decodeCost found its counts and lengths sound; what decoding may allocate
// is counted in p's memory, and a request that may take more than the
// memory limit is refused undecoded.
func (c *conn) decode(p *pending, req kmsg.Request, body []byte) error {
	cost, err := decodeCost(p.h, body)
	if err != nil {
		return err
	}
	if cost > c.g.memLimit {
		return fmt.Errorf("%w: its %d bytes of structure may take %d bytes to decode, over the memory limit of %d", errRequestTooLarge, len(body), cost, c.g.memLimit)
	}
	c.g.mem.add(cost)
	p.mem += cost
	return req.ReadFrom(body)
}

// errRequestTooLarge is a request whose decoding could take more than the
// memory limit.
var errRequestTooLarge = errors.New("request too large to decode")

// unsupported answers a request the gateway does not serve with
// UNSUPPORTED_VERSION in every error code, and logs it.
func (c *conn) unsupported(p *pending, req kmsg.Request, rest []byte) (*pending, error) {
	c.g.stats.unsupported.Add(1)
	if c.warned == nil {
		c.warned = map[int16]bool{}
	}
	if !c.warned[p.h.key] {
		c.warned[p.h.key] = true
		c.g.log.Warn("client sent a request the gateway does not serve; answered UNSUPPORTED_VERSION",
			"remote", c.st.remote, "client_id", p.h.clientID, "request", kmsg.NameForKey(p.h.key), "version", p.h.version)
	}
	if _, ok := req.(*kmsg.ProduceRequest); ok {
		// Only a produce answer echoes its request (its partitions);
		// the others are not decoded at all.
		if err := c.decode(p, req, rest); err != nil {
			c.g.mem.give(p.mem)
			c.g.log.Warn("closing a client connection: malformed request", "remote", c.st.remote, "client_id", p.h.clientID, "request", kmsg.NameForKey(p.h.key), "version", p.h.version, "error", err)
			return nil, err
		}
	}
	resp, err := unsupported(req, codeUnsupportedVersion)
	if err != nil {
		c.g.mem.give(p.mem)
		c.g.log.Warn("closing a client connection", "remote", c.st.remote, "client_id", p.h.clientID, "error", err)
		return nil, err
	}
	if pr, ok := req.(*kmsg.ProduceRequest); ok && pr.Acks == 0 {
		return p, nil // no answer, as the protocol says
	}
	p.response = func() kmsg.Response { return resp }
	return p, nil
}

// write answers the queued requests in order.
func (c *conn) write() {
	var buf []byte
	broken := false
	for p := range c.queue {
		if !c.wait(p) {
			broken = true
		}
		if p.done != nil {
			p.done()
		}
		if p.response != nil && !broken {
			buf = appendResponse(buf[:0], p.h, p.response())
			if err := c.writeResponse(buf); err != nil {
				broken = true
				c.nc.Close()
			}
			if cap(buf) > 1<<20 {
				buf = nil
			}
		}
		c.g.release(p)
		c.g.mem.give(p.mem)
	}
}

// writeResponse writes one response. It gives up after writeTimeout, or
// after writeStall without a byte written while other requests wait for
// memory: a client that does not read its responses keeps the requests
// queued behind the one being written, and their memory, for as long as
// the write waits, and every other client waited for that memory until
// writeTimeout (30s) closed the connection.
func (c *conn) writeResponse(buf []byte) error {
	start := time.Now()
	for {
		_ = c.nc.SetWriteDeadline(time.Now().Add(min(writeStall, writeTimeout-time.Since(start))))
		n, err := c.nc.Write(buf)
		buf = buf[n:]
		switch {
		case err == nil:
			return nil
		case !isTimeout(err):
			return err
		case time.Since(start) >= writeTimeout:
			c.g.log.Warn("closing a client connection: it did not read its responses", "remote", c.st.remote, "timeout", writeTimeout)
			return err
		case n == 0 && c.g.mem.waiting():
			c.g.log.Warn("closing a client connection: it does not read its responses while other requests wait for the memory its requests hold", "remote", c.st.remote, "stalled", writeStall)
			return err
		}
	}
}

// writeStall is how long writing a response may make no progress while
// other requests wait for memory (see writeResponse). A variable so that
// tests can shorten it.
var writeStall = time.Second

// wait waits for p's results; it returns false if the gateway gave up
// answering first.
func (c *conn) wait(p *pending) bool {
	for _, r := range p.results {
		select {
		case <-r.done:
		case <-c.g.stopWrite:
			c.nc.Close()
			return false
		}
	}
	return true
}

// atomicString is a string set once and read concurrently.
type atomicString = atomic.Pointer[string]
