package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/kafkaping"
	"github.com/kpipe/kpipe/internal/kgolog"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/wasmhost"
)

func newConsumeCmd(e *env) *cobra.Command {
	var (
		brokers       string
		topic         string
		fromBeginning bool
		isolation     string
		max           int
		timeout       time.Duration
		cfgPath       string
		consumerName  string
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print the records of a topic as JSON lines, through consume-side plugins",
		Long: `Read a topic and print one JSON object per record on stdout:

  {"topic":"t","partition":0,"offset":5,"timestamp":1767323045000,
   "key":"k","value":"v","headers":{"h":"x"}}

key and value are strings, or null. Data that is not valid UTF-8 is printed as
base64 in key_base64 / value_base64 instead (key / value are then null).
headers maps each name to its value, a string or null (a null header value is
null, an empty one ""); values that are not valid UTF-8 are printed as base64
in headers_base64 instead. A repeated header name keeps its last value.
timestamp is in milliseconds since the Unix epoch.

With --config, the records go through the consume-side plugins of a consumer
block first (docs/config.md): its key and value deserializers, then its
interceptors in order, each with its on_failure policy. Only the records they
deliver are printed; a record they filter is counted, a record that fails is
reported on stderr with the plugin, the hook and why, and a summary line
(read, delivered, filtered, failed) ends the run. The block may name the
topics, a consumer group (whose offsets are committed), where to start and
the isolation level; --brokers, --topic, --from-beginning and --isolation
override it, and the kafka block's brokers are used when --brokers is not
given.

consume stops after --max records were read (printed, filtered or failed),
after --timeout without a new record, or on Ctrl-C. It exits 1 if --max was
given and fewer records arrived, or if a plugin failed a record. A topic
that does not exist is waited for (it may be created meanwhile) and named on
stderr at the start, and in the error if --max is not reached.`,
		Example: `  kpipe consume --brokers 127.0.0.1:9092 --topic orders --from-beginning --timeout 5s
  kpipe consume --brokers 127.0.0.1:9092 --topic orders --from-beginning --max 10 --timeout 30s
  kpipe consume --config consume.hcl --consumer payments --timeout 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var (
				cc     *config.Consumer
				chain  []pipeline.ConsumerOption
				topics = splitList(topic)
				seeds  = splitList(brokers)
				group  string
				// cfg is the configuration file's, if any; conn its
				// kafka block's tls and sasl settings.
				cfg  *config.Config
				conn []kgo.Opt
			)
			if cfgPath != "" {
				host, err := e.newHost(ctx)
				if err != nil {
					return &exitError{code: ExitError, err: err}
				}
				defer closeHost(ctx, host)
				if cfg, cc, chain, err = e.buildConsumer(ctx, cfgPath, consumerName, host); err != nil {
					return err
				}
				if len(seeds) == 0 {
					seeds = cfg.Kafka.Brokers
				}
				conn = cfg.Kafka.ClientOptions()
				if len(topics) == 0 {
					topics = cc.Topics
				}
				group = cc.Group
				if !cmd.Flags().Changed("from-beginning") && cc.Start != "" {
					fromBeginning = cc.Start == "earliest"
				}
				if !cmd.Flags().Changed("isolation") && cc.Isolation != "" {
					isolation = cc.Isolation
				}
			} else if consumerName != "" {
				return usageErrorf("--consumer needs --config")
			}
			if len(seeds) == 0 || len(topics) == 0 {
				return usageErrorf("consume needs --brokers and --topic (or, with --config, brokers in the kafka block and topics in the consumer block)")
			}
			if err := checkAddrs("--brokers", seeds, true, 1); err != nil {
				return err
			}
			if err := checkTopics("--topic", splitList(topic)); err != nil {
				return err
			}
			opts := []kgo.Opt{
				kgo.SeedBrokers(seeds...),
				kgo.ConsumeTopics(topics...),
				kgo.WithLogger(kgolog.New(e.log.Named("kafka"))),
			}
			if group != "" {
				// Only records with an outcome (printed, filtered or
				// reported failed) are marked, and only marked offsets
				// are committed: records read but interrupted, or
				// beyond --max, are read again by the group's next run.
				opts = append(opts, kgo.ConsumerGroup(group), kgo.AutoCommitMarks())
			}
			if fromBeginning {
				opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			} else {
				opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
			}
			switch isolation {
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			case "read_uncommitted":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
			default:
				return usageErrorf("--isolation %q: want read_committed or read_uncommitted", isolation)
			}
			cl, err := kgo.NewClient(append(opts, conn...)...)
			if err != nil {
				return &exitError{code: ExitError, err: fmt.Errorf("kafka client: %w", err)}
			}
			defer cl.Close()
			pc, err := pipeline.NewConsumer(cl, append(chain, pipeline.ConsumerLogger(e.log))...)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			defer pc.Close(context.Background())
			pctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err = kafkaping.Ping(pctx, cl)
			cancel()
			if err != nil {
				return &exitError{code: ExitError, err: fmt.Errorf("no broker of %s answered: %w", strings.Join(seeds, ","), connectHint(cfg, err))}
			}
			// A topic that does not exist is waited for (it may be
			// created while consume runs), and said so now and at the
			// end, rather than left for the user to guess from "got 0".
			absent := absentTopics(ctx, cl, topics)
			if len(absent) > 0 {
				e.say("topic %s does not exist on %s (yet): waiting for it", strings.Join(absent, ", "), strings.Join(seeds, ","))
			}
			var unprocessed int
			n, err := consume(ctx, cl, pc, e.stdout, e.stderr, max, timeout, &unprocessed, group != "")
			if group != "" {
				// Commit what has an outcome, within a bound, even after
				// Ctrl-C.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
				if cerr := cl.CommitMarkedOffsets(cctx); cerr != nil && err == nil {
					e.say("committing the offsets of group %s: %v", group, cerr)
				}
				cancel()
			}
			if cc != nil {
				st := pc.Stats()
				e.say("consumer %s: %d records read: %d delivered, %d filtered, %d failed", cc.Name, n, st.Delivered, st.Filtered, st.Failed-uint64(unprocessed))
			}
			if unprocessed > 0 {
				e.say("interrupted: %d records read were not run through the plugins, nor printed", unprocessed)
			}
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			if max > 0 && n < max {
				if absent := absentTopics(ctx, cl, topics); len(absent) > 0 {
					return failedf("got %d of %d records: topic %s does not exist", n, max, strings.Join(absent, ", "))
				}
				return failedf("got %d of %d records", n, max)
			}
			if st := pc.Stats(); st.Failed > uint64(unprocessed) {
				return failedf("%d records failed in the consume-side plugins", st.Failed-uint64(unprocessed))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "bootstrap brokers, HOST:PORT[,HOST:PORT...] (required without --config)")
	f.StringVar(&topic, "topic", "", "topic to read, or several separated by commas (required without --config)")
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the oldest record instead of the newest")
	f.StringVar(&isolation, "isolation", "read_uncommitted", "read_committed (skip aborted and open transactions) or read_uncommitted")
	intRangeVar(f, &max, "max", 0, 0, math.MaxInt32, "stop after this many records (0: no limit)")
	durationOrZeroVar(f, &timeout, "timeout", 0, "stop after this long without a new record", "wait forever")
	f.StringVar(&cfgPath, "config", "", "configuration file whose consumer block's plugins the records go through")
	f.StringVar(&consumerName, "consumer", "", "consumer block to use (default: the file's only one)")
	return cmd
}

// absentTopics returns the topics of names that the cluster does not have,
// asking without creating them, within connectTimeout. It returns none when
// the cluster cannot be asked, or ctx has ended (after Ctrl-C): the
// question is only for a clearer message.
func absentTopics(ctx context.Context, cl *kgo.Client, names []string) []string {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	absent, _ := kafkaping.AbsentTopics(ctx, cl, names, false)
	return absent
}

// commitTimeout bounds the commit of a group's offsets at the end of
// consume.
const commitTimeout = 10 * time.Second

// buildConsumer loads the consumer block named in the file at path, with its
// modules loaded into host, and returns the options of its chain. A file
// with errors is reported as validate reports it.
func (e *env) buildConsumer(ctx context.Context, path, name string, host *wasmhost.Host) (*config.Config, *config.Consumer, []pipeline.ConsumerOption, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		_, diags = config.Check(ctx, path, host, name)
		return nil, nil, nil, e.configErrors(path, diags)
	}
	_ = config.WriteDiagnostics(e.stderr, diags) // warnings
	cc, err := cfg.Consumer(name)
	if err != nil {
		return nil, nil, nil, usageErrorf("%v", err)
	}
	e.logOut.hold()
	ch, err := cfg.LoadConsumer(ctx, cc, host)
	e.logOut.release(err != nil)
	if err != nil {
		if err := e.configErrors(path, cfg.CheckModulesAfter(ctx, host, err, cc.Name)); err != nil {
			return nil, nil, nil, err
		}
		return nil, nil, nil, failedf("%v", err)
	}
	return cfg, cc, ch.Options(), nil
}

// consume prints the records of cl that pc delivers until max (if > 0) were
// read, idle passes without a record (if > 0), or ctx ends. idle bounds the
// wait for records, not their plugin calls. Records that a plugin failed
// are reported on errw; those that were read when ctx ended and not run
// through the plugins are counted in unprocessed instead. It returns how
// many records it read.
func consume(ctx context.Context, cl *kgo.Client, pc *pipeline.Consumer, w, errw io.Writer, max int, idle time.Duration, unprocessed *int, mark bool) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	for max == 0 || n < max {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pctx, cancel = context.WithTimeout(ctx, idle)
		}
		fs := cl.PollRecords(pctx, max-n)
		cancel()
		if ctx.Err() != nil {
			return n, nil
		}
		if err := pipeline.FetchError(fs); err != nil {
			return n, err
		}
		got := pc.Process(ctx, fs.Records())
		if got.Len() == 0 && pctx.Err() != nil {
			return n, nil // idle timeout
		}
		for _, r := range got.Delivered {
			if err := enc.Encode(outRecord(r)); err != nil {
				return n, fmt.Errorf("writing output: %w", err)
			}
		}
		for _, f := range got.Failed {
			if pipeline.IsInterrupted(f.Err) {
				*unprocessed++
				continue
			}
			fmt.Fprintf(errw, "kpipe: record %s[%d]@%d failed: %v\n", f.Record.Topic, f.Record.Partition, f.Record.Offset, f.Err)
		}
		if mark {
			markOutcomes(cl, got)
		}
		n += got.Len()
	}
	return n, nil
}

// markOutcomes marks for commit the records of got that have an outcome:
// delivered (printed), filtered, or failed with the failure reported. In
// each partition it marks only those before the first record the plugins
// did not run (interrupted): marking a later offset would commit the
// interrupted ones too.
func markOutcomes(cl *kgo.Client, got pipeline.Consumed) {
	type tp struct {
		topic     string
		partition int32
	}
	var stop map[tp]int64 // the first interrupted offset of each partition
	for _, f := range got.Failed {
		if !pipeline.IsInterrupted(f.Err) {
			continue
		}
		if stop == nil {
			stop = map[tp]int64{}
		}
		k := tp{f.Record.Topic, f.Record.Partition}
		if o, ok := stop[k]; !ok || f.Record.Offset < o {
			stop[k] = f.Record.Offset
		}
	}
	done := func(r *kgo.Record) bool {
		o, ok := stop[tp{r.Topic, r.Partition}]
		return !ok || r.Offset < o
	}
	for _, r := range got.Delivered {
		if done(r) {
			cl.MarkCommitRecords(r)
		}
	}
	for _, rs := range [][]pipeline.Rejected{got.Filtered, got.Failed} {
		for _, f := range rs {
			if done(f.Record) && !pipeline.IsInterrupted(f.Err) {
				cl.MarkCommitRecords(f.Record)
			}
		}
	}
}

// jsonOut is one consumed record as printed by consume.
type jsonOut struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Offset      int64   `json:"offset"`
	Timestamp   int64   `json:"timestamp"`
	Key         *string `json:"key"`
	KeyBase64   string  `json:"key_base64,omitempty"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64,omitempty"`
	// Headers holds the header values that are UTF-8 text, nil for a null
	// value (so that null and empty stay apart); HeadersBase64 those that
	// are not, base64-encoded. A name is in one of the two.
	Headers       map[string]*string `json:"headers"`
	HeadersBase64 map[string]string  `json:"headers_base64,omitempty"`
}

func outRecord(r *kgo.Record) jsonOut {
	o := jsonOut{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Headers:   make(map[string]*string, len(r.Headers)),
	}
	o.Key, o.KeyBase64 = outData(r.Key)
	o.Value, o.ValueBase64 = outData(r.Value)
	for _, h := range r.Headers {
		// A repeated name keeps its last value, in whichever map.
		s, b64 := outData(h.Value)
		if h.Value != nil && s == nil {
			if o.HeadersBase64 == nil {
				o.HeadersBase64 = map[string]string{}
			}
			o.HeadersBase64[h.Key] = b64
			delete(o.Headers, h.Key)
			continue
		}
		o.Headers[h.Key] = s
		delete(o.HeadersBase64, h.Key)
	}
	return o
}

func outData(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
