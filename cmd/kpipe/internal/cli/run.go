package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/embedded"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// maxReported is how many failed records run reports one by one; the
// summary counts the rest.
const maxReported = 20

type runFlags struct {
	config, pipeline string
	brokers, topic   string
	input, format    string
	strict           bool
	flushTimeout     time.Duration
	live             liveFlags
	// cpuProfile and memProfile are pprof output files; pluginTimes adds
	// the time spent in each plugin to the summary.
	cpuProfile, memProfile string
	pluginTimes            bool
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Produce records read from a file or stdin through a pipeline",
		Long: `Read records, one per line, and produce them through a pipeline.

With --config, the pipeline (interceptors, serializers, partitioner, Kafka
settings) comes from the configuration file; --pipeline picks one if the file
defines several. Without --config, kpipe is a plain producer: values and keys are
sent as they are, the default partitioner chooses partitions.

--brokers and --topic override the configuration file. With no brokers anywhere,
run starts an embedded in-memory broker (see 'kpipe broker') and says so on
stderr; the records are gone when run exits, which makes it a dry run that
exercises every plugin and the partitioner.

Input (--format json, the default): one JSON object per line,

  {"key":"k","value":"v","headers":{"h":"x"},"partition":0,"timestamp":1767323045000,"topic":"t"}

every field optional. key and value: a string is sent as its text, any other
JSON value as its JSON text, null or absent is null (a null value is a
tombstone); key_base64 and value_base64 instead carry any bytes exactly, as
standard base64. headers: an object of string or null values. partition: send
to this partition, bypassing the partitioner. timestamp: milliseconds since the
epoch or an RFC 3339 string. topic: overrides the default topic. Blank lines
are skipped. A line that is not valid UTF-8 is malformed. With --format raw
every line is one value (empty lines are empty values).

A malformed line is reported with its line number and counted as failed, and
the run goes on; with --strict the run stops reading at the first malformed line
or failed record. If the brokers take no records for the kafka block's max_block
(default 60s), reading stops too. At the end a summary goes to stderr: records
delivered, filtered and failed, lines not read if reading stopped early, plugin
failures, and records per partition. A progress bar
is shown while stderr is a terminal.

With --watch (and --config), the pipeline is reloaded when the configuration
file or one of its modules changes, and on SIGHUP: the new chain is checked,
loaded and tried on a synthetic record, then swapped in one step; a rejected
reload is reported with FILE:LINE:COL and the running chain keeps serving.
Changes to the kafka block, the topic or the batch block need a restart.
--admin HOST:PORT serves /metrics (Prometheus), /healthz, /readyz,
/v1/pipeline and POST /v1/reload (and /debug/pprof/ with --pprof), on a
loopback address unless --admin-public.

Exit status: 0 if every record was delivered or filtered, 1 if any failed or was
malformed (or the configuration is invalid), 2 on usage errors, 3 if the pipeline
could not start, 130 if interrupted.`,
		Example: `  kpipe run --config examples/quickstart.hcl --input examples/quickstart.jsonl
  kpipe run --brokers 127.0.0.1:9092 --topic logs --format raw < app.log
  tail -F app.log | kpipe run --config live.hcl --format raw --watch --admin 127.0.0.1:9464`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.run(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "pipeline configuration file (HCL)")
	fl.StringVarP(&f.pipeline, "pipeline", "p", "", "pipeline to use when the file defines several")
	fl.StringVar(&f.brokers, "brokers", "", "bootstrap brokers HOST:PORT[,HOST:PORT...], overriding the configuration")
	fl.StringVarP(&f.topic, "topic", "t", "", "default topic, overriding the pipeline's")
	fl.StringVarP(&f.input, "input", "i", "-", "input file, - for stdin")
	fl.StringVar(&f.format, "format", "json", "input format: json (one JSON record per line) or raw (one value per line)")
	fl.BoolVar(&f.strict, "strict", false, "stop at the first malformed line or failed record")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fl.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of the run to this file at the end (go tool pprof)")
	fl.BoolVar(&f.pluginTimes, "plugin-times", false, "add each plugin's time per record and in all to the summary")
	durationVar(fl, &f.flushTimeout, "flush-timeout", 30*time.Second, "how long to wait for outstanding records at the end")
	addLiveFlags(fl, &f.live)
	return cmd
}

// tally counts outcomes; callbacks update it concurrently.
type tally struct {
	mu           sync.Mutex
	read         int
	malformed    int
	delivered    int
	filtered     int
	failed       int
	reported     int
	perPartition map[topicPartition]*int
	// last is the entry of perPartition counted last: the records of a
	// batch complete together, on one partition, and comparing their
	// partition with it is cheaper than hashing the topic (BenchmarkRun).
	last         topicPartition
	lastN        *int
	firstFailure chan struct{} // closed at the first failure, for --strict
	failOnce     sync.Once
	bufferFull   chan struct{} // closed at the first record failed with pipeline.ErrBufferFull
	fullOnce     sync.Once
	aborted      bool // the run's transaction was aborted
	unread       unread
}

type topicPartition struct {
	topic     string
	partition int32
}

func (e *env) run(ctx context.Context, f runFlags) error {
	format, err := parseFormat(f.format)
	if err != nil {
		return err
	}
	if f.topic != "" {
		if err := checkTopics("--topic", []string{f.topic}); err != nil {
			return err
		}
	}
	stopProfiles, err := e.startProfiles(f.cpuProfile, f.memProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()
	if sp := sourcePipeline(f.config, f.pipeline); sp != nil {
		return e.runSource(ctx, f, sp)
	}
	in := e.stdin
	var size int64 = -1
	name := "stdin"
	if f.input != "-" {
		file, err := openInput(f.input)
		if err != nil {
			return &exitError{code: ExitError, err: fmt.Errorf("input: %w", err)}
		}
		defer file.Close()
		if fi, err := file.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		in, name = file, f.input
	}

	lv, err := e.startLive(f)
	if err != nil {
		return err
	}
	defer lv.close()

	var brokers []string
	if f.brokers != "" {
		if brokers, err = brokersFlag(f.brokers); err != nil {
			return err
		}
	}
	b, err := e.buildProducer(ctx, f.config, f.pipeline, brokers, f.topic)
	if err != nil {
		return err
	}
	defer b.close()
	defer e.tuneRunGC(int64(b.producer.MaxBufferedBytes()))()

	if b.embedded != nil {
		e.say("no brokers configured: started an embedded in-memory broker (kfake) at %s; records are discarded when kpipe exits", b.embedded.Addr())
	}

	t := &tally{perPartition: map[topicPartition]*int{}, firstFailure: make(chan struct{}), bufferFull: make(chan struct{})}
	lv.attach(ctx, b, t)
	var bar *progressbar.ProgressBar
	if e.stderrIsTerminal {
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("producing"),
			progressbar.OptionShowBytes(size >= 0),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSpinnerType(14),
		)
	}

	if b.transactional {
		if err := b.producer.BeginTransaction(); err != nil {
			return &exitError{code: ExitError, err: err}
		}
	}

	// The first SIGINT or SIGTERM (ctx) stops the reading, and what was
	// sent is still flushed; a second one ends the waits of the end of
	// the run (flush, abort, close) at once.
	endCtx, endNow := e.secondSignal(ctx, "interrupted again: not waiting for outstanding records")
	defer endNow()

	// Read in a goroutine, so that an interrupt is noticed even while a
	// read blocks (stdin from a terminal or a pipe). On an interrupt the
	// reader is abandoned; the process is about to exit.
	lines := make(chan []inputLine, 1024/lineBatch)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(in, format, lineBatch, lines, stop)
	go t.watchStall(e, stop)
	// clock counts tenths of a second, so that the loop can tell a Send
	// that waited for room in the client's buffer from one that did not
	// without reading the time for every record (BenchmarkRun).
	var clock atomic.Int64
	go tick(&clock, 100*time.Millisecond, stop)

	interrupted := false
	var readErr error
	// last is the last line read; the lines after it that the run leaves
	// unread are counted for the summary.
	last, stopped := 0, ""
	// batch holds the lines received and not yet sent; cb is the callback
	// of their records. The records of consecutive well-formed lines go
	// to the producer together, in one SendBatch of up to sendMax
	// records (recs): one run of the stages, one timestamp, one count
	// (BenchmarkRun). With --strict they go one at a time, so that a
	// record that fails in the stages stops the reading before the next
	// record is sent.
	var batch []inputLine
	var cb func(*plugins.Record, pipeline.Result)
	sendMax := lineBatch
	if f.strict {
		sendMax = 1
	}
	recs := make([]*plugins.Record, 0, sendMax)
	var le *lineError // outside the loop: errors.As makes it escape
read:
	for {
		// A record that waited max_block for room in the client's
		// buffer failed: the brokers are gone, and every further
		// line would wait as long. Checked before taking a line, as
		// the select below chooses at random among ready cases.
		select {
		case <-t.bufferFull:
			stopped = "the brokers took no records for max_block"
			break read
		default:
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				interrupted, stopped = true, "interrupted"
				break read
			case <-t.bufferFull:
				stopped = "the brokers took no records for max_block"
				break read
			case batch = <-lines:
				cb = t.callback(e, batch)
			}
		} else if ctx.Err() != nil {
			interrupted, stopped = true, "interrupted"
			break read
		}
		if f.strict {
			select {
			case <-t.firstFailure:
				stopped = "--strict: a record failed"
				break read
			default:
			}
		}
		n := 0
		for n < len(batch) && n < sendMax && batch[n].err == nil {
			n++
		}
		if n > 0 {
			recs = recs[:0]
			for _, il := range batch[:n] {
				recs = append(recs, il.rec)
			}
			sent := batch[n-1]
			last = sent.line
			batch = batch[n:]
			t.mu.Lock()
			t.read += n
			t.mu.Unlock()
			before := clock.Load()
			b.producer.SendBatch(ctx, recs, cb)
			if clock.Load()-before >= 10 {
				// A record waited for room in the buffer. If it
				// gave up (max_block), its callback, about to
				// run, stops the reading before the next line
				// waits too.
				select {
				case <-t.bufferFull:
				case <-time.After(100 * time.Millisecond):
				}
			}
			if bar != nil {
				if size >= 0 {
					_ = bar.Set64(sent.offset)
				} else {
					_ = bar.Add(n)
				}
			}
			continue
		}
		il := batch[0]
		batch = batch[1:]
		switch {
		case errors.Is(il.err, io.EOF):
			break read
		case errors.As(il.err, &le):
			last = il.line
			t.mu.Lock()
			t.read++
			t.malformed++
			t.failed++
			t.mu.Unlock()
			t.reportFailure(e, il.line, le.err)
			if f.strict {
				stopped = "--strict: a line was malformed"
				break read
			}
		default:
			readErr, stopped = il.err, "the input could not be read further"
			break read
		}
	}

	if stopped != "" {
		t.unread = countUnread(in, batch, lines, last, stopped)
	}

	lv.stopReloads()
	// Wait for the outstanding records even after an interrupt: what was
	// sent is delivered or failed, never left unknown.
	fctx, cancel := context.WithTimeout(endCtx, f.flushTimeout)
	defer cancel()
	ferr := b.producer.Flush(fctx)
	var txnErr error
	if b.transactional {
		t.mu.Lock()
		failed := t.failed
		t.mu.Unlock()
		var why string
		switch {
		case ferr != nil:
			why = "the flush did not finish"
		case failed > 0:
			why = fmt.Sprintf("%d records failed", failed)
		case interrupted:
			why = "interrupted"
		case readErr != nil:
			why = "the input could not be read to the end"
		}
		if why == "" {
			if err := b.producer.CommitTransaction(fctx); err != nil {
				txnErr = fmt.Errorf("committing the transaction: %w", err)
				t.aborted = true
			}
		} else {
			e.say("aborting the transaction: %s", why)
			t.aborted = true
			// The abort gets its own --flush-timeout: fctx may have
			// run out in the flush.
			actx, cancel := context.WithTimeout(endCtx, f.flushTimeout)
			if err := b.producer.AbortTransaction(actx); err != nil {
				e.say("aborting the transaction: %v", err)
			}
			cancel()
		}
	}
	rep, cerr := b.producer.Close(fctx)
	if bar != nil {
		_ = bar.Finish()
	}
	stats := b.producer.Stats()
	var suppressed map[string]uint64
	if b.host != nil {
		suppressed = b.host.LogLinesSuppressed()
	}
	t.summary(e, name, rep, stats, suppressed, b.embedded != nil)
	if f.pluginTimes {
		printPluginTimes(e.stderr, stats)
	}

	switch {
	case interrupted:
		return &exitError{code: ExitInterrupted, err: errors.Join(errors.New("interrupted"), ferr, txnErr, cerr)}
	case readErr != nil:
		return &exitError{code: ExitError, err: errors.Join(readErr, ferr, txnErr, cerr)}
	case ferr != nil || cerr != nil || txnErr != nil:
		return &exitError{code: ExitFailed, err: errors.Join(ferr, txnErr, cerr)}
	case t.failed > 0:
		return silentExit(ExitFailed)
	}
	return nil
}

// callback returns the callback of the records of batch, lines that the
// reader handed over together: one function for all of them rather than one
// per record (BenchmarkRun). On a failure it finds the record's line in
// batch, by the record pointer that Send passes back.
func (t *tally) callback(e *env, batch []inputLine) func(*plugins.Record, pipeline.Result) {
	return func(r *plugins.Record, res pipeline.Result) {
		t.record(e, batch, r, res)
	}
}

// lineOf returns the line that r was read from, one of batch's (0 if none
// is r).
func lineOf(batch []inputLine, r *plugins.Record) int {
	for _, il := range batch {
		if il.rec == r {
			return il.line
		}
	}
	return 0
}

func (t *tally) record(e *env, batch []inputLine, r *plugins.Record, res pipeline.Result) {
	switch res.Outcome {
	case pipeline.Delivered:
		t.mu.Lock()
		t.delivered++
		if tp := (topicPartition{res.Topic, res.Partition}); tp == t.last && t.lastN != nil {
			*t.lastN++
		} else {
			n := t.perPartition[tp]
			if n == nil {
				n = new(int)
				t.perPartition[tp] = n
			}
			*n++
			t.last, t.lastN = tp, n
		}
		t.mu.Unlock()
	case pipeline.Filtered:
		t.mu.Lock()
		t.filtered++
		t.mu.Unlock()
	default:
		t.mu.Lock()
		t.failed++
		t.mu.Unlock()
		if errors.Is(res.Err, pipeline.ErrBufferFull) {
			t.fullOnce.Do(func() { close(t.bufferFull) })
		}
		t.reportFailure(e, lineOf(batch, r), res.Err)
	}
}

// tick adds one to n every period until stop is closed.
func tick(n *atomic.Int64, period time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n.Add(1)
		}
	}
}

// stallAfter is how long run lets records wait without any completing
// before it says so.
const stallAfter = 5 * time.Second

// watchStall says on stderr when records have been waiting for stallAfter
// and none completed: the brokers may be gone, and the run would otherwise
// be silent until max_block or --flush-timeout ends it. It says it once per
// stall, and returns when stop is closed.
func (t *tally) watchStall(e *env, stop <-chan struct{}) {
	tick := time.NewTicker(stallAfter)
	defer tick.Stop()
	last, said := -1, false
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		done := t.delivered + t.filtered + t.failed - t.malformed
		waiting := t.read - t.malformed - done
		t.mu.Unlock()
		switch {
		case done != last || waiting <= 0:
			last, said = done, false
		case !said:
			e.say("no record completed in the last %v and %d are waiting: the brokers may be unreachable; a record waits at most max_block (default 60s) for room in the buffer, then the run stops reading", stallAfter, waiting)
			said = true
		}
	}
}

func (t *tally) reportFailure(e *env, line int, err error) {
	t.failOnce.Do(func() { close(t.firstFailure) })
	t.mu.Lock()
	t.reported++
	n := t.reported
	t.mu.Unlock()
	if n <= maxReported {
		e.say("line %d: %v", line, err)
	}
}

// summary prints the run's summary; suppressed is, per plugin name, the log
// lines its log rate limit dropped (wasmhost.Host.LogLinesSuppressed).
func (t *tally) summary(e *env, input string, rep pipeline.CloseReport, st pipeline.Stats, suppressed map[string]uint64, embedded bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := e.stderr
	fmt.Fprintf(w, "kpipe: %d records read from %s\n", t.read, input)
	fmt.Fprintf(w, "  delivered  %d", t.delivered)
	if t.aborted {
		fmt.Fprint(w, " (in a transaction that was not committed: read_committed consumers will not see them)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  filtered   %d\n", t.filtered)
	fmt.Fprintf(w, "  failed     %d", t.failed)
	if t.malformed > 0 {
		fmt.Fprintf(w, " (%d malformed lines)", t.malformed)
	}
	fmt.Fprintln(w)
	if t.reported > maxReported {
		fmt.Fprintf(w, "  (%d failures were not shown one by one)\n", t.reported-maxReported)
	}
	if t.unread.why != "" {
		fmt.Fprintf(w, "  not read   %s\n", t.unread)
	}
	if rep.Undelivered > 0 {
		fmt.Fprintf(w, "  %d records were still buffered when the flush timed out (they are counted as failed; the brokers may have written some of them)\n", rep.Undelivered)
	}
	if len(st.Plugins) > 0 {
		fmt.Fprintln(w, "  plugins:")
		for _, p := range st.Plugins {
			fmt.Fprintf(w, "    %-24s %-16s calls %d, failures %d", p.Name, p.Hook, p.Calls, p.Failures)
			if p.Drops > 0 {
				fmt.Fprintf(w, ", drops %d", p.Drops)
			}
			if p.Bypasses > 0 {
				fmt.Fprintf(w, ", bypassed %d (circuit breaker)", p.Bypasses)
			}
			fmt.Fprintln(w)
		}
	}
	if len(suppressed) > 0 {
		fmt.Fprintln(w, "  plugin log lines suppressed by the log rate limit:")
		names := make([]string, 0, len(suppressed))
		for name := range suppressed {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(w, "    %-24s %d\n", name, suppressed[name])
		}
	}
	if len(t.perPartition) > 0 {
		fmt.Fprintln(w, "  records per partition:")
		tps := make([]topicPartition, 0, len(t.perPartition))
		for tp := range t.perPartition {
			tps = append(tps, tp)
		}
		sort.Slice(tps, func(i, j int) bool {
			if tps[i].topic != tps[j].topic {
				return tps[i].topic < tps[j].topic
			}
			return tps[i].partition < tps[j].partition
		})
		for _, tp := range tps {
			fmt.Fprintf(w, "    %s[%d] %s%d\n", tp.topic, tp.partition,
				strings.Repeat(" ", max(0, 6-len(fmt.Sprint(tp.partition)))), *t.perPartition[tp])
		}
	}
	if embedded {
		fmt.Fprintln(w, "  (embedded broker: the records were discarded on exit)")
	}
}

// built is a producer ready to run, and what to release afterwards.
type built struct {
	producer      *pipeline.Producer
	embedded      *embedded.Broker
	transactional bool
	closers       []func()
	// The configuration the producer was built from, and the host of its
	// modules; nil without --config. A reload (live.go) starts from them.
	cfg  *config.Config
	pipe *config.Pipeline
	host *wasmhost.Host
}

func (b *built) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}
