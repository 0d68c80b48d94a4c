package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/kpipe/kpipe/internal/admin"
	"github.com/kpipe/kpipe/kafkasource"
)

// liveFlags are the flags of run that keep a running pipeline changeable
// and observable.
type liveFlags struct {
	watch       bool
	admin       string
	adminPublic bool
	pprof       bool
}

func addLiveFlags(fl *pflag.FlagSet, f *liveFlags) {
	fl.BoolVar(&f.watch, "watch", false, "reload the pipeline when the configuration file or one of its modules changes, and on SIGHUP")
	fl.StringVar(&f.admin, "admin", "", "serve metrics, probes and reload on HOST:PORT (loopback only unless --admin-public)")
	fl.BoolVar(&f.adminPublic, "admin-public", false, "allow --admin on an address that is not a loopback one")
	fl.BoolVar(&f.pprof, "pprof", false, "also serve the Go profiler under /debug/pprof/ on the --admin address")
}

// adminShutdownTimeout bounds the wait for admin requests in progress when
// run ends.
const adminShutdownTimeout = 5 * time.Second

// live is the control surface of one run: its admin endpoint and its
// reloads. It implements admin.Pipeline. Until attach, the pipeline is not
// ready and its counters are zero.
type live struct {
	e      *env
	flags  runFlags
	server *admin.Server

	attached atomic.Pointer[attachedRun]
	rl       *reloader // nil without --config
	// src is the run's Kafka source, nil for a run that reads a file or
	// stdin; the admin endpoint serves its metrics (sourceCollector).
	src atomic.Pointer[kafkasource.Source]

	stopOnce  sync.Once
	stopWatch chan struct{} // closed by stopReloads
	watchDone chan struct{} // closed when the watch goroutine ended
}

// attachedRun is the running pipeline and its tally.
type attachedRun struct {
	b *built
	t *tally
}

// startLive checks the live flags and starts the admin endpoint, if any,
// before the producer exists, so that /readyz can tell that it does not yet.
func (e *env) startLive(f runFlags) (*live, error) {
	lf := f.live
	switch {
	case lf.watch && f.config == "":
		return nil, usageErrorf("--watch needs --config: there is no file to watch")
	case lf.adminPublic && lf.admin == "":
		return nil, usageErrorf("--admin-public needs --admin")
	case lf.pprof && lf.admin == "":
		return nil, usageErrorf("--pprof needs --admin")
	}
	lv := &live{e: e, flags: f, stopWatch: make(chan struct{}), watchDone: make(chan struct{})}
	if lf.admin != "" {
		if err := admin.CheckAddr(lf.admin, lf.adminPublic); err != nil {
			return nil, usageErrorf("--admin: %v", err)
		}
		s, err := admin.Start(admin.Options{Addr: lf.admin, Public: lf.adminPublic, Pprof: lf.pprof, Logger: e.log.Named("admin"),
			Collectors: []prometheus.Collector{sourceCollector{lv}}}, lv)
		if err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		lv.server = s
		e.say("admin endpoint on http://%s (/metrics, /healthz, /readyz, /v1/pipeline, POST /v1/reload%s)",
			s.Addr(), map[bool]string{true: ", /debug/pprof/"}[lf.pprof])
	}
	return lv, nil
}

// attach makes the built pipeline and its tally the ones the endpoint
// reports and reloads change, and starts watching (--watch): file changes
// and SIGHUP reload until stopReloads.
func (lv *live) attach(ctx context.Context, b *built, t *tally) {
	if b.cfg != nil {
		lv.rl = newReloader(lv.e, lv.flags, b)
		lv.rl.swapped = func() string {
			if s := lv.src.Load(); s != nil {
				if n := s.ResumeStopped(); n > 0 {
					return fmt.Sprintf("; %d stopped partitions resumed, read again from their committed offsets", n)
				}
			}
			return ""
		}
	}
	// The store publishes rl to the endpoint's goroutines, which read it
	// only once attached is set.
	lv.attached.Store(&attachedRun{b: b, t: t})
	if !lv.flags.live.watch {
		close(lv.watchDone)
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	w, err := newWatcher(lv.rl.watchedFiles(), watchDebounce)
	if err != nil {
		lv.e.say("--watch: %v; reloading on SIGHUP and POST /v1/reload only", err)
	}
	go func() {
		defer close(lv.watchDone)
		defer signal.Stop(hup)
		var changes <-chan string
		if w != nil {
			defer w.close()
			changes = w.changes
		}
		for {
			select {
			case <-lv.stopWatch:
				return
			case <-hup:
				lv.reload(ctx, "SIGHUP")
			case file := <-changes:
				lv.reload(ctx, "change of "+file)
			}
			if w != nil {
				w.watch(lv.rl.watchedFiles())
			}
		}
	}()
}

// reload runs one reload with its own time bound; the outcome is logged and
// counted by the reloader.
func (lv *live) reload(ctx context.Context, trigger string) {
	rctx, cancel := context.WithTimeout(ctx, admin.DefaultReloadTimeout)
	defer cancel()
	_, _ = lv.rl.reload(rctx, trigger)
}

// reloadStopWait bounds how long the end of a run waits for a reload in
// progress: compiling a large module may take seconds, and Ctrl-C must
// not wait for it.
const reloadStopWait = 2 * time.Second

// stopReloads stops watching and refuses further reloads; a reload in
// progress gets reloadStopWait to finish, and is rejected if it has not
// swapped by then. run calls it before it flushes and closes the producer.
func (lv *live) stopReloads() {
	lv.stopOnce.Do(func() {
		if lv.rl != nil {
			lv.rl.stop()
		}
		close(lv.stopWatch)
		if lv.attached.Load() == nil {
			close(lv.watchDone)
		}
		select {
		case <-lv.watchDone:
		case <-time.After(reloadStopWait):
		}
	})
}

// close stops reloads and the admin endpoint.
func (lv *live) close() {
	lv.stopReloads()
	if lv.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer cancel()
		_ = lv.server.Close(ctx)
	}
}

// Ready implements admin.Pipeline: the producer exists once New reached a
// seed broker.
func (lv *live) Ready() bool { return lv.attached.Load() != nil }

// Reload implements admin.Pipeline.
func (lv *live) Reload(ctx context.Context) (uint64, error) {
	if lv.attached.Load() == nil {
		return 0, admin.ErrNotStarted
	}
	if lv.rl == nil {
		return 0, &admin.ReloadError{Diagnostics: []string{"kpipe run was started without --config: there is no configuration to reload"}}
	}
	return lv.rl.reload(ctx, "POST /v1/reload")
}

// Snapshot implements admin.Pipeline. Records read and their outcomes come
// from the run's tally, so that they are the numbers of its summary.
func (lv *live) Snapshot() admin.Snapshot {
	a := lv.attached.Load()
	if a == nil {
		return admin.Snapshot{}
	}
	st := a.b.producer.Stats()
	s := admin.Snapshot{
		InFlight:     st.InFlight,
		Stats:        st.Plugins,
		ChainVersion: a.b.producer.ChainVersion(),
		Batches:      st.Batches,
	}
	if src := lv.src.Load(); src != nil {
		// A Kafka source's counts: records read, and the committed
		// outcomes (a dead-lettered record failed).
		for _, p := range src.Stats().Partitions {
			s.Read += p.Read
			s.Delivered += p.Delivered
			s.Filtered += p.Filtered
			s.Failed += p.DeadLettered
		}
	}
	t := a.t
	t.mu.Lock()
	s.Read, s.Delivered, s.Filtered, s.Failed = s.Read+uint64(t.read), s.Delivered+uint64(t.delivered), s.Filtered+uint64(t.filtered), s.Failed+uint64(t.failed)
	for tp, n := range t.perPartition {
		s.Partitions = append(s.Partitions, admin.PartitionCount{Topic: tp.topic, Partition: tp.partition, Delivered: uint64(*n)})
	}
	t.mu.Unlock()
	sort.Slice(s.Partitions, func(i, j int) bool {
		a, b := s.Partitions[i], s.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	if lv.rl != nil {
		s.Chain, s.Reloads = lv.rl.describe()
	}
	if a.b.host != nil {
		s.LogLinesSuppressed = a.b.host.LogLinesSuppressed()
	}
	return s
}

// errReloadsStopped refuses a reload asked for while run is finishing.
var errReloadsStopped = errors.New("kpipe run is finishing: no more reloads")
