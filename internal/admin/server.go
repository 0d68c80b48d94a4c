package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures Start.
type Options struct {
	// Addr is the HOST:PORT to listen on; port 0 picks a free port (see
	// Server.Addr).
	Addr string
	// Public allows an address that is not a loopback one. The endpoint
	// has no authentication and can reload the pipeline, so it is off by
	// default.
	Public bool
	// Pprof serves the Go profiler under /debug/pprof/.
	Pprof bool
	// ReloadTimeout bounds a reload started by POST /v1/reload; 0 means
	// DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// Logger receives the server's errors; nil discards them.
	Logger hclog.Logger
	// Collectors are served on /metrics next to the pipeline's metrics
	// (kpipe gateway adds its per-connection and per-topic ones).
	Collectors []prometheus.Collector
}

// DefaultReloadTimeout bounds a reload requested over HTTP.
const DefaultReloadTimeout = 2 * time.Minute

// readTimeout bounds the reading of a whole request, body included: a
// request that declares a body and never sends it would otherwise hold its
// connection and goroutine for ever, since the server reads the body a
// handler left unread before it answers. idleTimeout closes kept-alive
// connections left unused. Variables so that tests can shorten them.
var (
	readTimeout = 30 * time.Second
	idleTimeout = 2 * time.Minute
)

// Server is a running admin endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log hclog.Logger
}

// Start listens on o.Addr and serves p's admin endpoint until Close.
func Start(o Options, p Pipeline) (*Server, error) {
	if err := CheckAddr(o.Addr, o.Public); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Server{ln: ln, log: log}
	s.srv = &http.Server{
		Handler:           Handler(p, o),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoint stopped", "error", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: it waits for requests in progress until ctx ends,
// then closes their connections.
func (s *Server) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// CheckAddr checks an admin address: HOST:PORT, and unless public is true a
// host that is a loopback address or a name that resolves only to loopback
// addresses. An empty host, 0.0.0.0 or :: listen on every interface and
// are refused too.
func CheckAddr(addr string, public bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: want HOST:PORT: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("admin address %q: want HOST:PORT with a port from 0 to 65535", addr)
	}
	if public {
		return nil
	}
	refuse := func() error {
		return fmt.Errorf("admin address %q is not a loopback address: the endpoint has no authentication and can reload the pipeline; use 127.0.0.1 or [::1], or allow other interfaces explicitly (--admin-public)", addr)
	}
	if host == "" {
		return refuse()
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return refuse()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return refuse()
		}
	}
	return nil
}

// Handler returns the endpoint's HTTP handler for p (o.Pprof and
// o.ReloadTimeout apply; the other options are Start's).
func Handler(p Pipeline, o Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(o.Collectors...)
	timeout := o.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready: no broker reached yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /v1/pipeline", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, describe(p.Snapshot()))
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := p.Reload(ctx)
		if errors.Is(err, ErrNotStarted) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, reloadResponse{Error: err.Error(), Version: p.Snapshot().ChainVersion})
			return
		}
		if err != nil {
			re := AsReloadError(err)
			writeJSON(w, http.StatusUnprocessableEntity, reloadResponse{Error: "reload rejected", Diagnostics: re.Diagnostics, Version: p.Snapshot().ChainVersion})
			return
		}
		writeJSON(w, http.StatusOK, reloadResponse{Version: v})
	})
	if o.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// reloadResponse is the body of POST /v1/reload: the version that serves
// now, and on a rejection why.
type reloadResponse struct {
	Version     uint64   `json:"version"`
	Error       string   `json:"error,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// pipelineJSON is the body of GET /v1/pipeline.
type pipelineJSON struct {
	ChainVersion uint64           `json:"chain_version"`
	Records      recordsJSON      `json:"records"`
	Plugins      []pluginJSON     `json:"plugins"`
	Partitions   []PartitionCount `json:"partitions"`
	Reloads      ReloadStats      `json:"reloads"`
}

type recordsJSON struct {
	Read      uint64 `json:"read"`
	Delivered uint64 `json:"delivered"`
	Filtered  uint64 `json:"filtered"`
	Failed    uint64 `json:"failed"`
	InFlight  int64  `json:"in_flight"`
}

type pluginJSON struct {
	PluginInfo
	// Hooks are the plugin's counters per hook, by hook name.
	Hooks map[string]hookJSON `json:"hooks"`
}

type hookJSON struct {
	Calls         uint64  `json:"calls"`
	Failures      uint64  `json:"failures"`
	Drops         uint64  `json:"drops"`
	Bypasses      uint64  `json:"bypasses"`
	MeanLatencyUS float64 `json:"mean_latency_us"`
}

// describe turns a snapshot into the JSON of /v1/pipeline: each plugin of
// the chain with its counters (those of the stats entries with its name and
// kind).
func describe(s Snapshot) pipelineJSON {
	out := pipelineJSON{
		ChainVersion: s.ChainVersion,
		Records:      recordsJSON{s.Read, s.Delivered, s.Filtered, s.Failed, s.InFlight},
		Plugins:      []pluginJSON{},
		Partitions:   s.Partitions,
		Reloads:      s.Reloads,
	}
	if out.Partitions == nil {
		out.Partitions = []PartitionCount{}
	}
	for _, pi := range s.Chain {
		pj := pluginJSON{PluginInfo: pi, Hooks: map[string]hookJSON{}}
		for _, st := range s.Stats {
			if st.Name == pi.Name && KindName(st.Kind) == pi.Kind {
				pj.Hooks[string(st.Hook)] = hookJSON{st.Calls, st.Failures, st.Drops, st.Bypasses,
					float64(st.MeanLatency.Nanoseconds()) / 1e3}
			}
		}
		out.Plugins = append(out.Plugins, pj)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
