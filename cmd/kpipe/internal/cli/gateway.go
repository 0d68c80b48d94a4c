package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/gateway"
	"github.com/kpipe/kpipe/internal/admin"
	"github.com/kpipe/kpipe/internal/embedded"
	"github.com/kpipe/kpipe/internal/kgolog"
	"github.com/kpipe/kpipe/pipeline"
)

type gatewayFlags struct {
	config, pipeline     string
	listen, advertise    string
	brokers, memoryLimit string
	nodeID               int
	shutdownTimeout      time.Duration
	admin                string
	adminPublic          bool
	pprof                bool
	// forward: forward client batches as they are when the pipeline
	// allows (gateway.ForwardBatches).
	forward bool
	// forwardMin: forward only batches of at least this many records
	// (gateway.ForwardMinRecords).
	forwardMin int
	// cpuProfile and memProfile are pprof output files, as for run.
	cpuProfile, memProfile string
	// tlsCert and tlsKey make the listener TLS; tlsClientCA makes it
	// require client certificates signed by it.
	tlsCert, tlsKey, tlsClientCA string
	// saslUsers is the file of the users clients authenticate as.
	saslUsers string
}

func newGatewayCmd(e *env) *cobra.Command {
	var f gatewayFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve Kafka producers: every record they send goes through a pipeline",
		Long: `Listen for Kafka clients and act, for producers, as the cluster: every record a
client produces goes through the pipeline of the configuration file (interceptors,
serializers, partitioner) and is produced upstream by kpipe. Clients need no code
change: point their bootstrap servers at the gateway.

The upstream cluster is --brokers, else the configuration's kafka block, else an
embedded in-memory broker (as with 'kpipe run'). The gateway answers Metadata with
the upstream topics and partitions and itself as the leader of every partition, at
--advertise (default: the --listen address). Without a partitioner in the pipeline
each record keeps the partition its client chose; with one, the pipeline decides
and the client is told offset -1. When nothing in the pipeline reads or changes
records (no interceptor, no serializer but bytes, no partitioner), each client
batch is forwarded upstream as it is, without producing its records again
(--forward-batches=false turns that off).

Idempotent producers (the Java client's default) are deduplicated like a broker
does; transactional producers are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
Requests are read only while the produce requests in flight take less than
--memory-limit; a client held back is told so with throttle_time_ms.

SIGINT or SIGTERM stops reading requests, answers those read once their records
have an outcome (at most --shutdown-timeout), then flushes and closes the producer.
SIGHUP reloads the configuration's plugins, as POST /v1/reload on the --admin
endpoint does; the endpoint also serves metrics per client connection and per
topic. See docs/gateway.md.`,
		Example: `  kpipe gateway --config kpipe.hcl --listen 127.0.0.1:9092 --brokers kafka-1:9092,kafka-2:9092
  kpipe gateway --config kpipe.hcl --listen 0.0.0.0:9092 --advertise gw-1.example.com:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.gateway(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "pipeline configuration file (HCL); without it records pass unchanged")
	fl.StringVarP(&f.pipeline, "pipeline", "p", "", "pipeline to use when the file defines several")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9092", "HOST:PORT to listen on for clients (port 0: any free port)")
	fl.StringVar(&f.advertise, "advertise", "", "HOST:PORT clients are told to connect to (default: the listen address)")
	fl.StringVar(&f.brokers, "brokers", "", "upstream bootstrap brokers HOST:PORT[,HOST:PORT...], overriding the configuration")
	fl.StringVar(&f.memoryLimit, "memory-limit", "256MiB", "most bytes of produce requests held at once; clients beyond it wait")
	intRangeVar(fl, &f.nodeID, "node-id", -1, -1, math.MaxInt32, "broker id to advertise, from 0 (-1: derived from the advertised address)")
	durationVar(fl, &f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to wait, when stopping, for the records of requests already read")
	fl.StringVar(&f.admin, "admin", "", "serve metrics (per connection and per topic too), probes and POST /v1/reload on HOST:PORT (loopback only unless --admin-public)")
	fl.BoolVar(&f.adminPublic, "admin-public", false, "allow --admin on an address that is not a loopback one")
	fl.BoolVar(&f.pprof, "pprof", false, "also serve the Go profiler under /debug/pprof/ on the --admin address")
	intRangeVar(fl, &f.forwardMin, "forward-min-records", 32, 1, math.MaxInt32, "forward only client batches of at least this many records; smaller ones take the pipeline's path, where they share upstream batches (lower latency for clients that send small batches fast)")
	fl.BoolVar(&f.forward, "forward-batches", true, "forward each client batch upstream as it is when nothing in the pipeline reads or changes records (less gateway CPU; see docs/gateway.md)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain of the listener: clients connect with TLS (security.protocol SSL); needs --tls-key")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM CA certificates: clients must present a certificate signed by one (ssl.client.auth=required); needs --tls-cert")
	fl.StringVar(&f.saslUsers, "sasl-users", "", "file of USER:PASSWORD lines: clients must authenticate as one of them with SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the gateway, from start to stop, to this file (go tool pprof)")
	fl.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of the gateway to this file when it stops (go tool pprof)")
	return cmd
}

func (e *env) gateway(ctx context.Context, f gatewayFlags) error {
	memLimit, err := config.ParseSize(f.memoryLimit)
	if err != nil || memLimit == 0 {
		return usageErrorf("--memory-limit: %q: want a size such as 256MiB", f.memoryLimit)
	}
	var brokers []string
	if f.brokers != "" {
		if brokers, err = brokersFlag(f.brokers); err != nil {
			return err
		}
	}
	var gwOpts []gateway.Option
	gwOpts = append(gwOpts, gateway.MemoryLimit(int64(memLimit)), gateway.Logger(e.log.Named("gateway")))
	if f.advertise != "" {
		host, port, err := splitHostPort(f.advertise)
		if err != nil {
			return usageErrorf("--advertise: %v", err)
		}
		gwOpts = append(gwOpts, gateway.Advertise(host, port))
	}
	if err := checkAddrs("--listen", []string{f.listen}, false, 0); err != nil {
		return err
	}
	if f.advertise == "" {
		host, _, err := net.SplitHostPort(f.listen)
		if err != nil {
			return usageErrorf("--listen: %v", err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return usageErrorf("--listen %s listens on every interface: give --advertise HOST:PORT, the address clients connect to", f.listen)
		}
	}
	switch {
	case f.adminPublic && f.admin == "":
		return usageErrorf("--admin-public needs --admin")
	case f.pprof && f.admin == "":
		return usageErrorf("--pprof needs --admin")
	case f.admin != "":
		if err := admin.CheckAddr(f.admin, f.adminPublic); err != nil {
			return usageErrorf("--admin: %v", err)
		}
	}
	if f.nodeID >= 0 {
		gwOpts = append(gwOpts, gateway.NodeID(int32(f.nodeID)))
	}
	listenTLS, err := listenerTLS(f)
	if err != nil {
		return err
	}
	if f.saslUsers != "" {
		users, err := readSASLUsers(f.saslUsers)
		if err != nil {
			return usageErrorf("--sasl-users: %v", err)
		}
		gwOpts = append(gwOpts, gateway.SASLUsers(users))
		if listenTLS == nil {
			e.log.Warn("--sasl-users without --tls-cert: a client's PLAIN authentication sends its password unencrypted")
		}
	}
	defer tuneGC(int64(memLimit))()
	stopProfiles, err := e.startProfiles(f.cpuProfile, f.memProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	var opts []pipeline.Option
	keep := true
	// What a reload starts from (--admin's POST /v1/reload); nil without
	// --config.
	var reloadFrom *built
	if f.config != "" {
		host, err := e.newHost(ctx)
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		closers = append(closers, func() { closeHost(ctx, host) })
		cfg, cfgOpts, err := e.buildConfig(ctx, f.config, f.pipeline, host)
		if err != nil {
			return err
		}
		if cfg.Kafka.TransactionalID != "" {
			return failedf("%s: kafka: transactional_id: the gateway produces outside transactions (it refuses transactional clients too); remove it", f.config)
		}
		p, err := cfg.Pipeline(f.pipeline)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if p.Source != nil {
			return usageErrorf("pipeline %q reads Kafka (its source block at %s), and the gateway's records come from its clients: kpipe run --config runs it", p.Name, rangePos(p.Source.DefRange))
		}
		opts = cfgOpts
		if cfg.Kafka.Linger != nil && *cfg.Kafka.Linger > 0 {
			e.log.Warn("the gateway does not use kafka.linger: it sends the records of each request upstream at once (the clients batched them)", "file", f.config, "linger", *cfg.Kafka.Linger)
		}
		keep = p.Partitioner == nil
		if len(brokers) == 0 {
			brokers = cfg.Kafka.Brokers
		}
		reloadFrom = &built{cfg: cfg, pipe: p, host: host}
	} else if f.pipeline != "" {
		return usageErrorf("--pipeline needs --config")
	}
	// The clients batched already: what a request brings goes upstream at
	// once, and no record waits on a timer for others (see
	// docs/gateway.md).
	opts = append(opts, pipeline.Linger(0))
	// The records of a client's record batch go through the plugin
	// stages together (gateway.Sender): stage batching is on, with the
	// pipeline's batch block or the defaults, so that plugins that take
	// batches get them. Its linger bounds only how long acknowledgements
	// wait for others, for interceptors that take them in batches: no
	// record waits for others on its way in.
	stageMax, stageLinger := pipeline.DefaultStageBatchRecords, time.Millisecond
	if b := batchBlock(reloadFrom); b != nil {
		if b.MaxRecords > 0 {
			stageMax = b.MaxRecords
		}
		if b.Linger != nil {
			stageLinger = *b.Linger
		}
	}
	opts = append(opts, pipeline.StageBatch(stageMax, stageLinger))
	// A client batch goes upstream as it is when nothing in the chain
	// reads or changes its records (docs/gateway.md, Forwarding).
	gwOpts = append(gwOpts, gateway.KeepPartition(keep), gateway.ForwardBatches(f.forward), gateway.ForwardMinRecords(f.forwardMin))
	// cfg is the configuration file's, nil without --config.
	var cfg *config.Config
	var upstreamOpts []kgo.Opt
	if reloadFrom != nil {
		cfg = reloadFrom.cfg
		upstreamOpts = cfg.Kafka.ClientOptions()
	}
	if len(brokers) == 0 {
		if err := securityNeedsBrokers(cfg); err != nil {
			return err
		}
		eb, err := embedded.Start(embedded.Config{})
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		closers = append(closers, eb.Close)
		brokers = []string{eb.Addr()}
		e.say("no brokers configured: started an embedded in-memory broker (kfake) at %s; records are discarded when kpipe exits", eb.Addr())
		// The embedded broker checks a batch's header and CRC, not its
		// records: the gateway checks the records it forwards.
		gwOpts = append(gwOpts, gateway.CheckForwardedRecords(true))
	}
	opts = append(opts, pipeline.KgoOptions(kgo.AllowAutoTopicCreation()), pipeline.Brokers(brokers...), pipeline.Logger(e.log))
	nctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	prod, err := pipeline.New(nctx, opts...)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("starting the pipeline: %w", connectHint(cfg, err))}
	}
	// Closed explicitly below; this covers the early returns.
	prodClosed := false
	defer func() {
		if !prodClosed {
			cctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
			defer cancel()
			_, _ = prod.Close(cctx)
		}
	}()
	up, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithLogger(kgolog.New(e.log.Named("upstream")))}, upstreamOpts...)...)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("upstream client: %w", err)}
	}
	defer up.Close()

	gw, err := gateway.New(prod, up, gwOpts...)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("--listen: %w", err)}
	}
	if listenTLS != nil {
		l = tls.NewListener(l, listenTLS)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()
	// Serve sets the advertised address from the listener; wait for it.
	for i := 0; gw.Addr() == "" && i < 100; i++ {
		select {
		case err := <-served:
			return &exitError{code: ExitUsage, err: err}
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintln(e.stdout, l.Addr().String())
	if s, ok := e.stdout.(interface{ Sync() error }); ok {
		_ = s.Sync()
	}
	security := "plaintext"
	switch {
	case listenTLS != nil && listenTLS.ClientCAs != nil:
		security = "TLS, client certificates required"
	case listenTLS != nil:
		security = "TLS"
	}
	if f.saslUsers != "" {
		security += ", SASL required"
	}
	e.say("gateway listening on %s (%s), advertised as %s; upstream %v; stop with Ctrl-C", l.Addr(), security, gw.Addr(), brokers)
	ga := &gatewayAdmin{gw: gw, prod: prod}
	if reloadFrom != nil {
		reloadFrom.producer = prod
		ga.rl = newReloader(e, runFlags{config: f.config, pipeline: f.pipeline, brokers: f.brokers}, reloadFrom)
		// SIGHUP reloads, as with kpipe run --watch.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		hupDone := make(chan struct{})
		defer func() {
			signal.Stop(hup)
			close(hupDone)
			ga.rl.stop()
		}()
		go func() {
			for {
				select {
				case <-hupDone:
					return
				case <-hup:
					rctx, cancel := context.WithTimeout(ctx, admin.DefaultReloadTimeout)
					_, _ = ga.reload(rctx, "SIGHUP")
					cancel()
				}
			}
		}()
	}
	if f.admin != "" {
		s, err := admin.Start(admin.Options{Addr: f.admin, Public: f.adminPublic, Pprof: f.pprof, Logger: e.log.Named("admin"),
			Collectors: []prometheus.Collector{gatewayCollector{gw}}}, ga)
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		defer func() {
			actx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
			defer cancel()
			_ = s.Close(actx)
		}()
		e.say("admin endpoint on http://%s (/metrics, /healthz, /readyz, /v1/pipeline, POST /v1/reload%s)",
			s.Addr(), map[bool]string{true: ", /debug/pprof/"}[f.pprof])
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	e.say("stopping: answering the requests already read")
	if ga.rl != nil {
		ga.rl.stop()
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer scancel()
	shutErr := gw.Shutdown(sctx)
	if serveErr == nil {
		<-served
	}
	rep, closeErr := prod.Close(sctx)
	prodClosed = true
	e.gatewaySummary(gw.Stats(), rep)
	switch {
	case serveErr != nil && !errors.Is(serveErr, gateway.ErrClosed):
		return &exitError{code: ExitError, err: serveErr}
	case shutErr != nil || closeErr != nil:
		return &exitError{code: ExitFailed, err: errors.Join(shutErr, closeErr)}
	}
	return nil
}

// batchBlock is the batch block of the pipeline b runs, or nil (none, or no
// configuration).
func batchBlock(b *built) *config.Batch {
	if b == nil {
		return nil
	}
	return b.pipe.Batch
}

// gatewayGCPercent is the gateway's GOGC: the garbage collector runs when
// the heap has grown by twice what it kept, not once. Most of what the
// gateway allocates (the envelopes and client records of each record) dies
// within a request, so a collection finds little alive, and collecting
// half as often costs less CPU per record: against Kafka 3.9.1, with the
// franz-go client of scripts/gateway_bench.sh, the collector's own CPU
// (GODEBUG=gctrace=1) fell from 0.28 to 0.16 µs per record, and the
// gateway's from 0.97 to 0.85 µs (median of 6 interleaved rounds); see
// docs/gateway.md, Figures.
const gatewayGCPercent = 200

// tuneGC sets the garbage collector for a gateway whose requests may hold
// memLimit bytes (--memory-limit) (see setGC): GOGC to gatewayGCPercent, the
// soft memory limit to twice memLimit plus 64MiB, where the default GOGC
// would put the heap with that much held, so that near the memory limit the
// heap grows no further than it would have without the change: the
// collector runs more often instead.
func tuneGC(memLimit int64) (restore func()) {
	limit := int64(-1)
	if memLimit < (math.MaxInt64-64<<20)/2 {
		limit = 2*memLimit + 64<<20
	}
	return setGC(gatewayGCPercent, limit)
}

func (e *env) gatewaySummary(st gateway.Stats, rep pipeline.CloseReport) {
	w := e.stderr
	// The gateway's counts cover the records of both paths (the
	// pipeline's, and the batches forwarded as they are).
	var delivered, filtered, failed uint64
	for _, t := range st.Topics {
		delivered += t.Delivered
		filtered += t.Filtered
		failed += t.Failed
	}
	fmt.Fprintf(w, "kpipe: gateway stopped: %d delivered, %d filtered, %d failed", delivered, filtered, failed)
	if rep.Undelivered > 0 {
		fmt.Fprintf(w, ", %d still buffered when the shutdown timed out", rep.Undelivered)
	}
	fmt.Fprintln(w)
	for _, t := range st.Topics {
		fmt.Fprintf(w, "  %s: %d records received (%d forwarded in their batches), %d delivered, %d filtered, %d failed, %d duplicate batches\n",
			t.Topic, t.Records, t.Forwarded, t.Delivered, t.Filtered, t.Failed, t.Duplicates)
	}
	if st.Throttled > 0 {
		fmt.Fprintf(w, "  %d requests waited for memory (--memory-limit)\n", st.Throttled)
	}
	if st.Unsupported > 0 {
		fmt.Fprintf(w, "  %d requests of APIs the gateway does not serve\n", st.Unsupported)
	}
}

// gatewayAdmin is what the admin endpoint serves for a gateway: the
// gateway's counts of records and their outcomes, the pipeline's plugin
// statistics, and reloads of the configuration (POST /v1/reload).
type gatewayAdmin struct {
	gw   *gateway.Gateway
	prod *pipeline.Producer
	rl   *reloader // nil without --config
}

// Ready implements admin.Pipeline: the producer reached a broker before the
// endpoint started.
func (a *gatewayAdmin) Ready() bool { return true }

// Reload implements admin.Pipeline. A reload that adds or removes the
// partitioner also changes whose partition the records get (see
// gateway.KeepPartition) for the batches read after it.
func (a *gatewayAdmin) Reload(ctx context.Context) (uint64, error) {
	if a.rl == nil {
		return 0, &admin.ReloadError{Diagnostics: []string{"kpipe gateway was started without --config: there is no configuration to reload"}}
	}
	return a.reload(ctx, "POST /v1/reload")
}

// reload reloads the configuration; trigger says why, for the log line.
func (a *gatewayAdmin) reload(ctx context.Context, trigger string) (uint64, error) {
	v, err := a.rl.reload(ctx, trigger)
	a.rl.mu.Lock()
	a.gw.SetKeepPartition(a.rl.pipe.Partitioner == nil)
	a.rl.mu.Unlock()
	return v, err
}

// Snapshot implements admin.Pipeline: records read are those the clients
// sent, with their outcomes upstream.
func (a *gatewayAdmin) Snapshot() admin.Snapshot {
	st := a.prod.Stats()
	s := admin.Snapshot{InFlight: st.InFlight, Stats: st.Plugins, ChainVersion: a.prod.ChainVersion(), Batches: st.Batches}
	for _, t := range a.gw.Stats().Topics {
		s.Read += t.Records
		s.Delivered += t.Delivered
		s.Filtered += t.Filtered
		s.Failed += t.Failed
	}
	if a.rl != nil {
		s.Chain, s.Reloads = a.rl.describe()
	}
	return s
}

// gatewayCollector serves the gateway's own metrics: per client connection,
// per topic, and its memory.
type gatewayCollector struct{ gw *gateway.Gateway }

var (
	gwConnLabels  = []string{"remote", "client_id", "software", "user"}
	gwConnections = prometheus.NewDesc("kpipe_gateway_connections", "Client connections open.", nil, nil)
	gwConnReqs    = prometheus.NewDesc("kpipe_gateway_connection_requests_total", "Requests read on a client connection.", gwConnLabels, nil)
	gwConnRecs    = prometheus.NewDesc("kpipe_gateway_connection_records_total", "Records produced on a client connection.", gwConnLabels, nil)
	gwConnBytes   = prometheus.NewDesc("kpipe_gateway_connection_bytes_total", "Record-batch bytes produced on a client connection.", gwConnLabels, nil)
	gwConnDups    = prometheus.NewDesc("kpipe_gateway_connection_duplicate_batches_total", "Batches of a client connection answered from an earlier attempt (idempotent retries).", gwConnLabels, nil)
	gwTopicRecs   = prometheus.NewDesc("kpipe_gateway_topic_records_total", "Records received for a topic, by outcome upstream (received, delivered, filtered, failed).", []string{"topic", "outcome"}, nil)
	gwTopicBytes  = prometheus.NewDesc("kpipe_gateway_topic_bytes_total", "Record-batch bytes received for a topic.", []string{"topic"}, nil)
	gwTopicDups   = prometheus.NewDesc("kpipe_gateway_topic_duplicate_batches_total", "Batches for a topic answered from an earlier attempt.", []string{"topic"}, nil)
	gwTopicRetry  = prometheus.NewDesc("kpipe_gateway_topic_retried_batches_total", "Batches for a topic of which only the records that had failed were sent again.", []string{"topic"}, nil)
	gwTopicFwd    = prometheus.NewDesc("kpipe_gateway_topic_forwarded_records_total", "Records received for a topic that went upstream in their client's batch, as it was, rather than through the pipeline.", []string{"topic"}, nil)
	gwMemory      = prometheus.NewDesc("kpipe_gateway_memory_bytes", "Bytes of produce requests held now.", nil, nil)
	gwMemoryLimit = prometheus.NewDesc("kpipe_gateway_memory_limit_bytes", "The --memory-limit.", nil, nil)
	gwThrottled   = prometheus.NewDesc("kpipe_gateway_throttled_requests_total", "Requests that waited for memory.", nil, nil)
	gwUnsupported = prometheus.NewDesc("kpipe_gateway_unsupported_requests_total", "Requests of APIs the gateway does not serve.", nil, nil)
)

func (gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gwConnections, gwConnReqs, gwConnRecs, gwConnBytes, gwConnDups,
		gwTopicRecs, gwTopicBytes, gwTopicDups, gwTopicRetry, gwTopicFwd, gwMemory, gwMemoryLimit, gwThrottled, gwUnsupported} {
		ch <- d
	}
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.gw.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(gwConnections, float64(len(st.Connections)))
	for _, cs := range st.Connections {
		// Clients choose their id and software name, in any bytes;
		// Prometheus refuses a label value that is not UTF-8, and
		// with it the whole scrape.
		l := []string{cs.Remote, strings.ToValidUTF8(cs.ClientID, "\uFFFD"), strings.ToValidUTF8(cs.Software, "\uFFFD"), strings.ToValidUTF8(cs.User, "\uFFFD")}
		counter(gwConnReqs, cs.Requests, l...)
		counter(gwConnRecs, cs.Records, l...)
		counter(gwConnBytes, cs.Bytes, l...)
		counter(gwConnDups, cs.Duplicates, l...)
	}
	for _, t := range st.Topics {
		counter(gwTopicRecs, t.Records, t.Topic, "received")
		counter(gwTopicRecs, t.Delivered, t.Topic, "delivered")
		counter(gwTopicRecs, t.Filtered, t.Topic, "filtered")
		counter(gwTopicRecs, t.Failed, t.Topic, "failed")
		counter(gwTopicBytes, t.Bytes, t.Topic)
		counter(gwTopicDups, t.Duplicates, t.Topic)
		counter(gwTopicRetry, t.Retried, t.Topic)
		counter(gwTopicFwd, t.Forwarded, t.Topic)
	}
	gauge(gwMemory, float64(st.MemoryInUse))
	gauge(gwMemoryLimit, float64(st.MemoryLimit))
	counter(gwThrottled, st.Throttled)
	counter(gwUnsupported, st.Unsupported)
}

// splitHostPort parses HOST:PORT with a port from 1 to 65535.
func splitHostPort(s string) (string, int32, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" {
		return "", 0, fmt.Errorf("%q: want HOST:PORT with a port from 1 to 65535", s)
	}
	return host, int32(n), nil
}

// listenerTLS returns the TLS configuration of the listener that --tls-cert,
// --tls-key and --tls-client-ca ask for, nil for none.
func listenerTLS(f gatewayFlags) (*tls.Config, error) {
	switch {
	case f.tlsCert == "" && f.tlsKey == "" && f.tlsClientCA == "":
		return nil, nil
	case f.tlsCert == "" || f.tlsKey == "":
		return nil, usageErrorf("--tls-cert and --tls-key go together (--tls-client-ca needs them too)")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, usageErrorf("--tls-cert %s, --tls-key %s: %v", f.tlsCert, f.tlsKey, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.tlsClientCA != "" {
		pem, err := os.ReadFile(f.tlsClientCA)
		if err != nil {
			return nil, usageErrorf("--tls-client-ca: %v", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--tls-client-ca: %s holds no PEM certificate", f.tlsClientCA)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// readSASLUsers reads the --sasl-users file: one USER:PASSWORD per line
// (the password is the rest of the line, colons included); blank lines and
// lines starting with # are skipped.
func readSASLUsers(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "" || pass == "":
			return nil, fmt.Errorf("%s:%d: want USER:PASSWORD", path, i+1)
		case users[user] != "":
			return nil, fmt.Errorf("%s:%d: user %q is listed twice", path, i+1, user)
		}
		users[user] = pass
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s lists no user", path)
	}
	return users, nil
}
