// Package admin serves the HTTP control surface of a running kpipe pipeline
// (`kpipe run --admin`, `kpipe gateway --admin`): Prometheus metrics, health
// and readiness probes, a JSON description of the pipeline, a reload
// trigger, and optionally the Go profiler.
//
//	GET  /metrics       Prometheus text format (see Collector for the series)
//	GET  /healthz       200 while the process serves requests
//	GET  /readyz        200 once the pipeline reached a broker, 503 before
//	GET  /v1/pipeline   JSON: chain version, plugins, counters (Snapshot)
//	POST /v1/reload     200 {"version": N}, or 422 with the diagnostics
//	GET  /debug/pprof/  with Options.Pprof only
//
// What the endpoint needs from a pipeline is the small Pipeline interface, so
// that every command that runs one can serve it. The endpoint can change the
// running pipeline (reload), so Start refuses an address that is not a
// loopback one unless Options.Public says otherwise.
package admin
