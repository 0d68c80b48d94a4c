package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/kafkasource"
	"github.com/kpipe/kpipe/pipeline"
)

// sourcePipeline returns the pipeline run would run if it reads Kafka (it
// has a source block), or nil. A file that does not load, or names no such
// pipeline, is left to the usual path, which reports it.
func sourcePipeline(path, name string) *config.Pipeline {
	if path == "" {
		return nil
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		return nil
	}
	p, err := cfg.Pipeline(name)
	if err != nil || p.Source == nil {
		return nil
	}
	return p
}

// runSource is run for a pipeline with a kafka source: it consumes, runs
// the plugins and produces until interrupted, then prints a summary.
func (e *env) runSource(ctx context.Context, f runFlags, sp *config.Pipeline) error {
	switch {
	case f.input != "-":
		return usageErrorf("--input: pipeline %q reads Kafka (its source block), not a file", sp.Name)
	case f.strict:
		return usageErrorf("--strict: pipeline %q reads Kafka; a failed record stops its partition, or goes to the source's dead_letter topic", sp.Name)
	case f.format != "json":
		return usageErrorf("--format: pipeline %q reads Kafka (its source block), not lines of a file", sp.Name)
	}
	if err := sp.Source.CheckOutput(f.topic); err != nil {
		return usageErrorf("--topic: pipeline %q: %v", sp.Name, err)
	}
	lv, err := e.startLive(f)
	if err != nil {
		return err
	}
	defer lv.close()

	host, err := e.newHost(ctx)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	defer closeHost(ctx, host)
	cfg, opts, err := e.buildConfig(ctx, f.config, f.pipeline, host)
	if err != nil {
		return err
	}
	p, _ := cfg.Pipeline(f.pipeline)
	src := p.Source
	brokers := cfg.Kafka.Brokers
	if f.brokers != "" {
		if brokers, err = brokersFlag(f.brokers); err != nil {
			return err
		}
	}
	if len(brokers) == 0 {
		return usageErrorf("pipeline %q reads Kafka: set brokers in the kafka block, or --brokers", p.Name)
	}
	if f.topic != "" {
		opts = append(opts, pipeline.DefaultTopic(f.topic))
	}
	opts = append(opts, pipeline.Brokers(brokers...), pipeline.Logger(e.log),
		pipeline.KgoOptions(kgo.AllowAutoTopicCreation()))

	so := []kafkasource.Option{
		kafkasource.Group(src.Group),
		kafkasource.Sink(opts...),
		kafkasource.Logger(e.log),
	}
	if src.TopicRegex != "" {
		so = append(so, kafkasource.TopicRegex(src.TopicRegex))
	} else {
		so = append(so, kafkasource.Topics(src.Topics...))
	}
	if src.Start == config.StartLatest {
		so = append(so, kafkasource.StartAt(kafkasource.StartLatest))
	}
	if src.Delivery == config.ExactlyOnce {
		so = append(so, kafkasource.Guarantee(kafkasource.ExactlyOnce))
		if src.TransactionalID != "" {
			so = append(so, kafkasource.TransactionalID(src.TransactionalID))
		}
	} else {
		from := src.Brokers
		if len(from) == 0 {
			from = brokers
		}
		so = append(so, kafkasource.Brokers(from...), kafkasource.ConsumerKgoOptions(cfg.SourceClientOptions(src)...))
	}
	if src.SessionTimeout > 0 {
		so = append(so, kafkasource.SessionTimeout(src.SessionTimeout))
	}
	if src.RebalanceTimeout > 0 {
		so = append(so, kafkasource.RebalanceTimeout(src.RebalanceTimeout))
	}
	if src.MaxPollRecords > 0 {
		so = append(so, kafkasource.MaxPollRecords(src.MaxPollRecords))
	}
	if src.DeadLetterTopic != "" {
		dopts, err := cfg.Kafka.Options()
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		dopts = append(dopts, pipeline.Brokers(brokers...), pipeline.KgoOptions(kgo.AllowAutoTopicCreation()))
		so = append(so, kafkasource.DeadLetter(src.DeadLetterTopic, dopts...))
	}
	nctx, cancel := context.WithTimeout(ctx, connectTimeout)
	s, err := kafkasource.New(nctx, so...)
	cancel()
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("starting the pipeline: %w", connectHint(cfg, err))}
	}
	b := &built{producer: s.Producer(), cfg: cfg, pipe: p, host: host}
	lv.src.Store(s)
	lv.attach(ctx, b, &tally{perPartition: map[topicPartition]*int{}})
	what := fmt.Sprintf("topics %q", src.Topics)
	if src.TopicRegex != "" {
		what = fmt.Sprintf("topics matching %q", src.TopicRegex)
	}
	out := p.Topic
	if f.topic != "" {
		out = f.topic
	}
	e.say("pipeline %q: reading %s as group %q (%s), writing to %q; Ctrl-C stops", p.Name, what, src.Group, s.Delivery(), out)

	// The first SIGINT or SIGTERM (ctx) stops reading and ends the batch
	// in flight; a second one ends the waits of the shutdown at once,
	// Run's included.
	endCtx, endNow := e.secondSignal(ctx, "interrupted again: not waiting for the shutdown")
	defer endNow()

	// Run ends the transaction in flight within kafkasource's EndTimeout
	// even after ctx ended; a second signal stops waiting for it, as a
	// kill would: the broker aborts that transaction at its timeout, or
	// when the process restarts with the same transactional_id.
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	var runErr error
	select {
	case runErr = <-runDone:
	case <-endCtx.Done():
		lv.stopReloads()
		e.sourceSummary(p, s.Delivery(), s.Stats(), s.Producer().Stats(), host.LogLinesSuppressed())
		return &exitError{code: ExitInterrupted, err: errors.New("interrupted twice: not waiting for the transaction in flight to end")}
	}
	lv.stopReloads()
	cctx, cancel := context.WithTimeout(endCtx, f.flushTimeout)
	defer cancel()
	_, closeErr := s.Close(cctx)
	st := s.Stats()
	e.sourceSummary(p, s.Delivery(), st, s.Producer().Stats(), host.LogLinesSuppressed())

	stopped := 0
	for _, ps := range st.Partitions {
		if ps.Stopped {
			stopped++
		}
	}
	switch {
	case runErr != nil:
		return &exitError{code: ExitFailed, err: errors.Join(runErr, closeErr)}
	case stopped > 0:
		return &exitError{code: ExitFailed, err: errors.Join(fmt.Errorf("%d partitions stopped at a record that failed", stopped), closeErr)}
	case ctx.Err() != nil:
		return &exitError{code: ExitInterrupted, err: errors.Join(errors.New("interrupted"), closeErr)}
	case closeErr != nil:
		return &exitError{code: ExitFailed, err: closeErr}
	}
	return nil
}

// sourceSummary prints the summary of a Kafka-sourced run: per input
// partition, what was read and what its records became, its lag, and
// whether it stopped.
func (e *env) sourceSummary(p *config.Pipeline, d kafkasource.Delivery, st kafkasource.Stats, ps pipeline.Stats, suppressed map[string]uint64) {
	w := e.stderr
	var read, del, filt, dead uint64
	for _, x := range st.Partitions {
		read, del, filt, dead = read+x.Read, del+x.Delivered, filt+x.Filtered, dead+x.DeadLettered
	}
	fmt.Fprintf(w, "kpipe: pipeline %q (%s): %d records read, %d commits, %d aborted transactions\n", p.Name, d, read, st.Commits, st.Aborts)
	fmt.Fprintf(w, "  committed: delivered %d, filtered %d, dead-lettered %d\n", del, filt, dead)
	if len(st.Partitions) > 0 {
		fmt.Fprintf(w, "  %-32s %10s %10s %10s %10s %8s\n", "input partition", "read", "delivered", "filtered", "dead", "lag")
		for _, x := range st.Partitions {
			lag := "-"
			if x.Lag >= 0 {
				lag = strconv.FormatInt(x.Lag, 10)
			}
			fmt.Fprintf(w, "  %-32s %10d %10d %10d %10d %8s\n", fmt.Sprintf("%s[%d]", x.Topic, x.Partition), x.Read, x.Delivered, x.Filtered, x.DeadLettered, lag)
			if x.Stopped {
				fmt.Fprintf(w, "    STOPPED at offset %d: %s\n", x.StoppedAt, x.StopReason)
			}
		}
	}
	if len(ps.Plugins) > 0 {
		fmt.Fprintln(w, "  plugins:")
		for _, p := range ps.Plugins {
			fmt.Fprintf(w, "    %-24s %-16s calls %d, failures %d\n", p.Name, p.Hook, p.Calls, p.Failures)
		}
	}
	for name, n := range suppressed {
		fmt.Fprintf(w, "  plugin %s: %d log lines suppressed by the log rate limit\n", name, n)
	}
}

// sourceCollector serves a Kafka source's metrics on the admin endpoint:
// per input partition, records read and committed by outcome, lag, and
// whether it stopped; commits and aborts. It serves nothing for a run
// without a source.
type sourceCollector struct{ lv *live }

var (
	srcLabels   = []string{"topic", "partition"}
	srcRead     = prometheus.NewDesc("kpipe_source_records_read_total", "Records read from an input partition (records read again after an aborted transaction or a rebalance count again).", srcLabels, nil)
	srcOut      = prometheus.NewDesc("kpipe_source_records_committed_total", "Records of an input partition whose outcome was committed, by outcome (delivered, filtered, dead_lettered).", append(srcLabels, "outcome"), nil)
	srcLag      = prometheus.NewDesc("kpipe_source_lag", "Offsets of an input partition after the last record read, as of its last fetch.", srcLabels, nil)
	srcStopped  = prometheus.NewDesc("kpipe_source_partition_stopped", "1 if the input partition stopped at a record that failed with no dead-letter topic.", srcLabels, nil)
	srcAssigned = prometheus.NewDesc("kpipe_source_partition_assigned", "1 if the group gives the input partition to this process now.", srcLabels, nil)
	srcCommits  = prometheus.NewDesc("kpipe_source_commits_total", "Batches committed (transactions with exactly_once, offset commits with at_least_once).", nil, nil)
	srcAborts   = prometheus.NewDesc("kpipe_source_aborts_total", "Transactions aborted; their records are read again.", nil, nil)
)

func (sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{srcRead, srcOut, srcLag, srcStopped, srcAssigned, srcCommits, srcAborts} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.lv.src.Load()
	if s == nil {
		return
	}
	st := s.Stats()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, p := range st.Partitions {
		part := strconv.Itoa(int(p.Partition))
		ch <- prometheus.MustNewConstMetric(srcRead, prometheus.CounterValue, float64(p.Read), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(srcOut, prometheus.CounterValue, float64(p.Delivered), p.Topic, part, "delivered")
		ch <- prometheus.MustNewConstMetric(srcOut, prometheus.CounterValue, float64(p.Filtered), p.Topic, part, "filtered")
		ch <- prometheus.MustNewConstMetric(srcOut, prometheus.CounterValue, float64(p.DeadLettered), p.Topic, part, "dead_lettered")
		if p.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(srcLag, prometheus.GaugeValue, float64(p.Lag), p.Topic, part)
		}
		ch <- prometheus.MustNewConstMetric(srcStopped, prometheus.GaugeValue, b(p.Stopped), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(srcAssigned, prometheus.GaugeValue, b(p.Assigned), p.Topic, part)
	}
	ch <- prometheus.MustNewConstMetric(srcCommits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(srcAborts, prometheus.CounterValue, float64(st.Aborts))
}
