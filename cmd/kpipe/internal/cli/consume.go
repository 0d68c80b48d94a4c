package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kpipe/kpipe/internal/kgolog"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newConsumeCmd(e *env) *cobra.Command {
	var (
		brokers       string
		topic         string
		fromBeginning bool
		isolation     string
		max           int
		timeout       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print the records of a topic as JSON lines",
		Long: `Read a topic and print one JSON object per record on stdout:

  {"topic":"t","partition":0,"offset":5,"timestamp":1767323045000,
   "key":"k","value":"v","headers":{"h":"x"}}

key and value are strings, or null. Data that is not valid UTF-8 is printed as
base64 in key_base64 / value_base64 instead (key / value are then null).
headers maps each name to its value, a string or null (a null header value is
null, an empty one ""); values that are not valid UTF-8 are printed as base64
in headers_base64 instead. A repeated header name keeps its last value.
timestamp is in milliseconds since the Unix epoch.

consume stops after --max records, after --timeout without a new record, or on
Ctrl-C. It exits 1 if --max was given and fewer records arrived.`,
		Example: `  kpipe consume --brokers 127.0.0.1:9092 --topic orders --from-beginning --timeout 5s
  kpipe consume --brokers 127.0.0.1:9092 --topic orders --from-beginning --max 10 --timeout 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if brokers == "" || topic == "" {
				return usageErrorf("consume needs --brokers and --topic")
			}
			if err := checkAddrs("--brokers", splitList(brokers), true, 1); err != nil {
				return err
			}
			opts := []kgo.Opt{
				kgo.SeedBrokers(splitList(brokers)...),
				kgo.ConsumeTopics(topic),
				kgo.WithLogger(kgolog.New(e.log.Named("kafka"))),
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
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return &exitError{code: ExitError, err: fmt.Errorf("kafka client: %w", err)}
			}
			defer cl.Close()
			pctx, cancel := context.WithTimeout(cmd.Context(), connectTimeout)
			err = cl.Ping(pctx)
			cancel()
			if err != nil {
				return &exitError{code: ExitError, err: fmt.Errorf("no broker of %s answered: %w", brokers, err)}
			}
			n, err := consume(cmd.Context(), cl, e.stdout, max, timeout)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			if max > 0 && n < max {
				return failedf("got %d of %d records", n, max)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "bootstrap brokers, HOST:PORT[,HOST:PORT...] (required)")
	f.StringVar(&topic, "topic", "", "topic to read (required)")
	f.BoolVar(&fromBeginning, "from-beginning", false, "start at the oldest record instead of the newest")
	f.StringVar(&isolation, "isolation", "read_uncommitted", "read_committed (skip aborted and open transactions) or read_uncommitted")
	intRangeVar(f, &max, "max", 0, 0, math.MaxInt32, "stop after this many records (0: no limit)")
	durationOrZeroVar(f, &timeout, "timeout", 0, "stop after this long without a new record", "wait forever")
	return cmd
}

// consume prints records until max (if > 0) are printed, idle passes without
// a record (if > 0), or ctx ends. It returns how many it printed.
func consume(ctx context.Context, cl *kgo.Client, w io.Writer, max int, idle time.Duration) (int, error) {
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
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if fatal == nil {
				fatal = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
			}
		})
		if fatal != nil {
			return n, fatal
		}
		recs := fs.Records()
		if len(recs) == 0 && pctx.Err() != nil {
			return n, nil // idle timeout
		}
		for _, r := range recs {
			if err := enc.Encode(outRecord(r)); err != nil {
				return n, fmt.Errorf("writing output: %w", err)
			}
			n++
		}
	}
	return n, nil
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
