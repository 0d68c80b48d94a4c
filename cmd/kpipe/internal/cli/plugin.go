package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func newPluginCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Inspect and test WASM plugins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("plugin needs a subcommand: inspect or test")
		},
	}
	cmd.AddCommand(newPluginInspectCmd(e), newPluginTestCmd(e), newPluginConformanceCmd(e))
	return cmd
}

var kindNames = []struct {
	kind plugins.Kind
	name string
}{
	{plugins.KindInterceptor, "interceptor"},
	{plugins.KindSerializer, "serializer"},
	{plugins.KindPartitioner, "partitioner"},
}

func kindList(k plugins.Kind) string {
	var names []string
	for _, kn := range append(kindNames[:len(kindNames):len(kindNames)], consumeKindNames...) {
		if k&kn.kind != 0 {
			names = append(names, kn.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func newPluginInspectCmd(e *env) *cobra.Command {
	var (
		configKV    []string
		configJSON  string
		loadTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "inspect MODULE.wasm",
		Short: "Show a module's plugin kinds, ABI version, exports and imports",
		Long: `Show what the host sees in a module: the ABI version, the plugin kinds it
declares, its memory limits, its exports and imports, and whether it loads. No
hook is called, but the module is instantiated once, which runs its kpipe_init:
give the plugin's config with --config or --config-json if its init needs one.
The kinds are shown even when kpipe_init fails.

Exit status 1 if the module does not load.`,
		Example: `  kpipe plugin inspect build/plugins/route.wasm --config-json '{"key_prefix_routes":{"eu-":0}}'`,
		Args:    oneModuleArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := pluginConfig(configKV, configJSON)
			if err != nil {
				return err
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			host, err := e.newHost(ctx)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			defer closeHost(ctx, host)
			if loadTimeout < 0 {
				return usageErrorf("--load-timeout must not be negative")
			}
			opts := []wasmhost.PluginOption{wasmhost.WithLoadTimeout(loadTimeout)}
			if cfg != nil {
				opts = append(opts, wasmhost.WithConfig(cfg))
			}
			// Inspect reads the kinds even if kpipe_init fails, and
			// says why the module does not load (lerr).
			info, lerr := host.InspectFile(ctx, args[0], opts...)
			if info == nil {
				return &exitError{code: ExitFailed, err: lerr}
			}
			kinds := info.Kinds
			w := e.stdout
			fmt.Fprintf(w, "module:   %s (%d bytes)\n", args[0], fi.Size())
			if info.ABIVersion > 0 {
				fmt.Fprintf(w, "abi:      v%d\n", info.ABIVersion)
			} else {
				fmt.Fprintf(w, "abi:      none this host supports (markers: %v)\n", info.Markers)
			}
			fmt.Fprintf(w, "kinds:    %s\n", kindList(kinds))
			if info.MemoryMaxPages > 0 {
				fmt.Fprintf(w, "memory:   %d to %d pages of 64KiB\n", info.MemoryMinPages, info.MemoryMaxPages)
			} else {
				fmt.Fprintf(w, "memory:   %d pages of 64KiB, no maximum declared\n", info.MemoryMinPages)
			}
			fmt.Fprintln(w, "exports:")
			for _, f := range info.Exports {
				fmt.Fprintf(w, "  %s %s\n", f.Name, f.Signature)
			}
			fmt.Fprintln(w, "imports:")
			for _, f := range info.Imports {
				fmt.Fprintf(w, "  %s.%s %s\n", f.Module, f.Name, f.Signature)
			}
			if lerr != nil {
				fmt.Fprintf(w, "load:     FAILED: %s\n", oneLine(lerr))
				if info.InitError != nil && cfg == nil && !errors.Is(info.InitError, context.DeadlineExceeded) && !errors.Is(info.InitError, context.Canceled) {
					fmt.Fprintln(w, "          (the plugin failed to initialise without a config: give it one with --config or --config-json)")
				}
				return silentExit(ExitFailed)
			}
			// Features are known only from an instance that initialised.
			fmt.Fprintf(w, "features: %s (%#x)\n", info.FeatureNames(), info.Features)
			fmt.Fprintln(w, "load:     ok")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&configKV, "config", nil, "plugin config entry KEY=VALUE (repeatable); the plugin gets a JSON object of strings")
	fl.StringVar(&configJSON, "config-json", "", "plugin config as one JSON value (instead of --config)")
	fl.DurationVar(&loadTimeout, "load-timeout", wasmhost.DefaultMinLoadTimeout*2,
		"time limit of each phase of loading the module (compilation: at least 2m + 30s per MiB); 0 for none")
	return cmd
}

// stdinNotRead says, if stdin looks like records were meant for plugin test
// (a pipe, or a file that is not empty), that they are not read without
// --input -. Nothing is read from stdin to tell: a pipe whose writer never
// closes it would block the command.
func (e *env) stdinNotRead() {
	f, ok := e.stdin.(*os.File)
	if !ok {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if m := fi.Mode(); m&os.ModeNamedPipe != 0 || (m.IsRegular() && fi.Size() > 0) {
		e.say("testing the built-in sample records; stdin is read only with --input -")
	}
}

// sampleInput is what plugin test runs on without --input.
const sampleInput = `{"key":"user-1","value":{"name":"Ada","card":"4111111111111111","amount":12.5},"headers":{"source":"sample"}}
{"key":"user-2","value":"plain text value"}
{"value":"no key"}
{"key":"user-1","value":null}
`

func newPluginTestCmd(e *env) *cobra.Command {
	var (
		kindName    string
		configKV    []string
		configJSON  string
		input       string
		format      string
		partitions  int
		timeout     time.Duration
		loadTimeout time.Duration
		batch       int
	)
	cmd := &cobra.Command{
		Use:   "test MODULE.wasm",
		Short: "Run a plugin's hooks on sample records and print what they return",
		Long: `Load a module and run its hooks on records, with no broker, printing what every
hook returned: the changed record or verdict of an interceptor's on_send, the
bytes a serializer produced for the key and the value, the partition a
partitioner chose, the result of on_ack (if the plugin exports it), and the
outcome the pipeline gave the record. Each record runs alone through the
pipeline's own stage code, as 'kpipe run' runs it (default failure policies,
no circuit breaker). Faults (traps, timeouts, invalid results) and errors set
by the plugin are printed too, and the next record goes on.

Records are read like 'kpipe run' reads them (--input, --format): from a file,
or from stdin with --input -. Without --input they are a few built-in sample
records, and stdin is not read. Ctrl-C (SIGINT) or SIGTERM stops the test at
any moment, while a module loads, a hook runs or stdin is awaited (exit 130).
Without --kind every kind the module
declares is tested, each on the record as the previous kinds left it
(interceptor, then serializer, then partitioner), as in a pipeline. The
consume-side kinds (ABI v2) run first, on each record as a consumer would
fetch it (its partition or 0, offset N-1): deserializer for key and value,
then consume-interceptor.

With --batch N (producer-side kinds) the records then also go through the same
stage code twice more, each record alone and in stage batches of N (the batch hooks of ABI
5.5, as 'kpipe run' uses them), and every record whose outcome, partition or
resulting record differs between the two runs is reported: a module's batch
hooks must behave as its per-record hooks.

Exit status 1 if any hook faulted or returned an error, or if batch and
single results differ.`,
		Example: `  kpipe plugin test build/plugins/redact.wasm --config fields=card
  kpipe plugin test route.wasm --kind partitioner --partitions 6 --input records.jsonl`,
		Args: oneModuleArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			if loadTimeout < 0 {
				return usageErrorf("--load-timeout must not be negative")
			}
			cfg, err := pluginConfig(configKV, configJSON)
			if err != nil {
				return err
			}
			var kinds plugins.Kind
			if kindName != "" {
				for _, kn := range append(kindNames[:len(kindNames):len(kindNames)], consumeKindNames...) {
					if kn.name == kindName {
						kinds = kn.kind
					}
				}
				if kinds == 0 {
					return usageErrorf("--kind %q: want interceptor, serializer, partitioner, consume-interceptor or deserializer", kindName)
				}
			}
			var in io.Reader
			switch {
			case input == "-":
				in = e.stdin
			case input != "":
				file, err := openInput(input)
				if err != nil {
					return &exitError{code: ExitError, err: fmt.Errorf("--input: %w", err)}
				}
				defer file.Close()
				in = file
			default:
				e.stdinNotRead()
				in, f = strings.NewReader(sampleInput), formatJSON
			}
			if batch < 0 || batch == 1 {
				return usageErrorf("--batch must be 2 or more (or 0: no batch comparison)")
			}
			return e.pluginTest(ctx, args[0], kinds, cfg, in, f, int32(partitions), timeout, loadTimeout, batch)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kindName, "kind", "", "test only this kind: interceptor, serializer, partitioner, consume-interceptor or deserializer")
	fl.StringArrayVar(&configKV, "config", nil, "plugin config entry KEY=VALUE (repeatable); the plugin gets a JSON object of strings")
	fl.StringVar(&configJSON, "config-json", "", "plugin config as one JSON value (instead of --config)")
	fl.StringVarP(&input, "input", "i", "", "records to test with, a file or - for stdin (default: built-in samples)")
	fl.StringVar(&format, "format", "json", "input format: json or raw")
	intRangeVar(fl, &partitions, "partitions", 3, 1, math.MaxInt32, "partition count given to a partitioner")
	durationVar(fl, &timeout, "timeout", time.Second, "time limit of each hook call")
	fl.DurationVar(&loadTimeout, "load-timeout", wasmhost.DefaultMinLoadTimeout*2,
		"time limit of each phase of loading the module and of creating an instance (compilation: at least 2m + 30s per MiB); 0 for none")
	fl.IntVar(&batch, "batch", 0, "also run the records through the pipeline's stages alone and in batches of N, and report differences")
	return cmd
}

func pluginConfig(kv []string, raw string) ([]byte, error) {
	if raw != "" {
		if len(kv) > 0 {
			return nil, usageErrorf("use --config or --config-json, not both")
		}
		if !json.Valid([]byte(raw)) {
			return nil, usageErrorf("--config-json is not valid JSON")
		}
		return []byte(raw), nil
	}
	if len(kv) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kv))
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--config %q: want KEY=VALUE", s)
		}
		m[k] = v
	}
	return json.Marshal(m)
}

func (e *env) pluginTest(ctx context.Context, path string, only plugins.Kind, cfg []byte, in io.Reader, format inputFormat, partitions int32,
	timeout, loadTimeout time.Duration, batch int) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	host, err := e.newHost(ctx)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	defer closeHost(ctx, host)
	name := strings.TrimSuffix(filepathBase(path), ".wasm")
	var opts []wasmhost.PluginOption
	if cfg != nil {
		opts = append(opts, wasmhost.WithConfig(cfg))
	}
	opts = append(opts, wasmhost.WithCallTimeout(timeout), wasmhost.WithLoadTimeout(loadTimeout))
	// Load once as whatever the module declares (kind 0) to learn its
	// kinds, then as the kinds under test.
	probe, err := host.Load(ctx, name, wasm, 0, append(opts, wasmhost.WithPoolSize(1))...)
	if err != nil {
		return &exitError{code: ExitFailed, err: fmt.Errorf("%s: %w", path, err)}
	}
	kinds := probe.Kinds()
	_ = probe.Close(ctx)
	if only != 0 {
		if kinds&only == 0 {
			return failedf("%s declares %s, not %s", path, kindList(kinds), kindList(only))
		}
		kinds = only
	}
	p, err := host.Load(ctx, name, wasm, kinds, opts...)
	if err != nil {
		return &exitError{code: ExitFailed, err: fmt.Errorf("loading %s as %s: %w", path, kindList(kinds), err)}
	}
	wantsAcks := p.WantsAcks()
	// Each record runs alone through the pipeline's own stage code (a
	// pipeline.Trial), with the plugin behind recorders that note what
	// every hook call returned. The breaker is off, so that every record
	// reaches every hook.
	var calls hookCalls
	chainOpts := []pipeline.Option{pipeline.CircuitBreaker(0, 0)}
	if kinds&plugins.KindInterceptor != 0 {
		chainOpts = append(chainOpts, pipeline.Interceptor(name, &recInterceptor{p.Interceptor(), &calls}))
	}
	if kinds&plugins.KindSerializer != 0 {
		ser := &recSerializer{p.Serializer(), &calls}
		chainOpts = append(chainOpts, pipeline.KeySerializer(name, ser), pipeline.ValueSerializer(name, ser))
	}
	if kinds&plugins.KindPartitioner != 0 {
		chainOpts = append(chainOpts, pipeline.Partitioner(name, &recPartitioner{p.Partitioner(), &calls}))
	}
	trial, err := pipeline.NewTrial(1, nil, chainOpts...)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	// The plugin is the command's: the host closes it, not the Trial.

	w := e.stdout
	failures := 0
	var originals []*plugins.Record
	fail := func(hook string, err error) {
		failures++
		fmt.Fprintf(w, "  %-16s %s\n", hook+":", describeErr(err))
	}
	// The records are read in a goroutine, as run reads them, so that
	// an interrupt ends the test even while a read blocks (stdin from a
	// terminal, or a pipe that stays open); the reader is then abandoned.
	lines := make(chan []inputLine, 1)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(in, format, lineBatch, lines, stop)
	var pending []inputLine
	n := 0
	for {
		if len(pending) == 0 {
			select {
			case pending = <-lines:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			return &exitError{code: ExitInterrupted, err: fmt.Errorf("interrupted after %d records", n)}
		}
		il := pending[0]
		pending = pending[1:]
		r, line, err := il.rec, il.line, il.err
		if errors.Is(err, io.EOF) {
			break
		}
		var le *lineError
		if errors.As(err, &le) {
			failures++
			fmt.Fprintf(w, "line %d: malformed: %v\n", line, le.err)
			continue
		}
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		n++
		if r.Topic == "" {
			r.Topic = "test"
		}
		originals = append(originals, cloneRecord(r))
		fmt.Fprintf(w, "record %d (line %d): %s\n", n, line, formatRecord(r))
		testConsumed(ctx, w, p, kinds, cloneRecord(r), n, fail)
		calls = hookCalls{}
		calls.sent = *r
		res := trial.Run(ctx, []*plugins.Record{r}, partitions)[0]
		dropped := false
		if c := calls.send; c.called {
			switch {
			case c.err != nil:
				fail("on_send", c.err)
			case c.verdict == plugins.Drop:
				dropped = true
				fmt.Fprintf(w, "  %-16s drop\n", "on_send:")
			case sameRecord(&calls.sent, &c.after):
				fmt.Fprintf(w, "  %-16s continue, unchanged\n", "on_send:")
			default:
				fmt.Fprintf(w, "  %-16s continue, now %s\n", "on_send:", formatRecord(&c.after))
			}
		}
		if kinds&plugins.KindSerializer != 0 && !dropped {
			for i, target := range []plugins.Target{plugins.TargetKey, plugins.TargetValue} {
				hook := "serialize " + target.String()
				switch c := calls.ser[i]; {
				case c.err != nil:
					fail(hook, c.err)
				case c.called:
					fmt.Fprintf(w, "  %-16s %s\n", hook+":", formatData(c.out))
				case serializerInput(&calls, target) == nil:
					fmt.Fprintf(w, "  %-16s null, not called\n", hook+":")
				default:
					// The key's serializer failed: the value's is not
					// called for a record that already failed.
					fmt.Fprintf(w, "  %-16s not called, the record failed before\n", hook+":")
				}
			}
		}
		if kinds&plugins.KindPartitioner != 0 && !dropped {
			switch c := calls.part; {
			case !c.called && r.HasPartition:
				fmt.Fprintf(w, "  %-16s not called, the record names partition %d\n", "partition:", r.Partition)
			case !c.called:
				fmt.Fprintf(w, "  %-16s not called, the record failed before\n", "partition:")
			case c.err != nil:
				fail("partition", c.err)
			case c.part == plugins.DefaultPartition:
				fmt.Fprintf(w, "  %-16s default partitioner (of %d)\n", "partition:", partitions)
			case c.part < 0 || c.part >= partitions:
				failures++
				fmt.Fprintf(w, "  %-16s %d, OUT OF RANGE (of %d)\n", "partition:", c.part, partitions)
			default:
				fmt.Fprintf(w, "  %-16s %d (of %d)\n", "partition:", c.part, partitions)
			}
		}
		if kinds&plugins.KindInterceptor != 0 && !dropped {
			switch c := calls.ack; {
			case !wantsAcks:
				fmt.Fprintf(w, "  %-16s not called, the plugin does not observe acks (no kpipe_on_ack)\n", "on_ack:")
			case !c.called:
				fmt.Fprintf(w, "  %-16s not called\n", "on_ack:")
			case c.err != nil:
				fail("on_ack", c.err)
			case c.ack.Err != nil:
				fmt.Fprintf(w, "  %-16s ok (record failed: %s)\n", "on_ack:", oneLine(c.ack.Err))
			default:
				fmt.Fprintf(w, "  %-16s ok (offset %d)\n", "on_ack:", c.ack.Offset)
			}
		}
		if kinds&producerKinds != 0 && res.Outcome != pipeline.Filtered {
			fmt.Fprintf(w, "  %-16s %s\n", "result:", describeResult(res))
		}
	}
	if failures > 0 && batch == 0 {
		return failedf("%d hook calls failed", failures)
	}
	if batch > 0 && kinds&abiV1Kinds == 0 {
		fmt.Fprintf(w, "--batch compares the producer-side stages; %s has none\n", kindList(kinds))
	} else if batch > 0 {
		diffs, err := compareBatch(ctx, w, name, p, kinds, originals, partitions, batch)
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		switch {
		case diffs > 0 && failures > 0:
			return failedf("%d hook calls failed; %d records differ between batch and single calls", failures, diffs)
		case diffs > 0:
			return failedf("%d records differ between batch and single calls", diffs)
		case failures > 0:
			return failedf("%d hook calls failed", failures)
		}
	}
	return nil
}

// hookCalls is what the hooks returned for one record of a Trial, noted by
// the recorders the plugin is wrapped in.
type hookCalls struct {
	sent plugins.Record // the record as read
	send struct {
		called  bool
		verdict plugins.Verdict
		err     error
		after   plugins.Record // the record as on_send left it
	}
	ser [2]struct { // key, value
		called bool
		out    []byte
		err    error
	}
	part struct {
		called bool
		part   int32
		err    error
	}
	ack struct {
		called bool
		ack    plugins.Ack
		err    error
	}
}

// recInterceptor is an interceptor that notes what its OnSend and OnAck
// return. It takes no batches: the Trial runs records alone.
type recInterceptor struct {
	ic    *wasmhost.Interceptor
	calls *hookCalls
}

func (r *recInterceptor) OnSend(ctx context.Context, rec *plugins.Record) (plugins.Verdict, error) {
	v, err := r.ic.OnSend(ctx, rec)
	c := &r.calls.send
	c.called, c.verdict, c.err, c.after = true, v, err, *rec
	return v, err
}

func (r *recInterceptor) OnAck(ctx context.Context, rec *plugins.Record, ack plugins.Ack) error {
	err := r.ic.OnAck(ctx, rec, ack)
	c := &r.calls.ack
	c.called, c.ack, c.err = true, ack, err
	return err
}

func (r *recInterceptor) WantsAcks() bool { return r.ic.WantsAcks() }

// recSerializer is a serializer that notes what it returns.
type recSerializer struct {
	s     *wasmhost.Serializer
	calls *hookCalls
}

func (r *recSerializer) Serialize(ctx context.Context, target plugins.Target, rec *plugins.Record) ([]byte, error) {
	out, err := r.s.Serialize(ctx, target, rec)
	c := &r.calls.ser[0]
	if target == plugins.TargetValue {
		c = &r.calls.ser[1]
	}
	c.called, c.out, c.err = true, out, err
	return out, err
}

// recPartitioner is a partitioner that notes what it returns.
type recPartitioner struct {
	p     *wasmhost.Partitioner
	calls *hookCalls
}

func (r *recPartitioner) Partition(ctx context.Context, rec *plugins.Record, n int32) (int32, error) {
	part, err := r.p.Partition(ctx, rec, n)
	c := &r.calls.part
	c.called, c.part, c.err = true, part, err
	return part, err
}

// describeResult describes the outcome the pipeline gave a record of a
// Trial.
func describeResult(r pipeline.TrialResult) string {
	switch r.Outcome {
	case pipeline.Delivered:
		return fmt.Sprintf("delivered to partition %d", r.Partition)
	case pipeline.Filtered:
		return "filtered"
	}
	return "failed: " + oneLine(r.Err)
}

// compareBatch runs the records through the pipeline's stages (a
// pipeline.Trial of plugin p as the kinds given) once alone and once in
// batches of batch, prints the records whose results differ, and returns
// how many do.
func compareBatch(ctx context.Context, w io.Writer, name string, p *wasmhost.Plugin, kinds plugins.Kind, rs []*plugins.Record, partitions int32, batch int) (int, error) {
	var opts []pipeline.Option
	if kinds&plugins.KindInterceptor != 0 {
		opts = append(opts, pipeline.Interceptor(name, p.Interceptor()))
	}
	if kinds&plugins.KindSerializer != 0 {
		opts = append(opts, pipeline.KeySerializer(name, p.Serializer()), pipeline.ValueSerializer(name, p.Serializer()))
	}
	partitioner := kinds&plugins.KindPartitioner != 0
	if partitioner {
		opts = append(opts, pipeline.Partitioner(name, p.Partitioner()))
	}
	run := func(size int) ([]pipeline.TrialResult, error) {
		tr, err := pipeline.NewTrial(size, nil, opts...)
		if err != nil {
			return nil, err
		}
		// The plugin is the command's: the host closes it.
		in := make([]*plugins.Record, len(rs))
		for i, r := range rs {
			in[i] = cloneRecord(r)
		}
		return tr.Run(ctx, in, partitions), nil
	}
	single, err := run(1)
	if err != nil {
		return 0, err
	}
	batched, err := run(batch)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "batch: %d records through the pipeline's stages alone and in batches of %d\n", len(rs), batch)
	diffs := 0
	for i := range rs {
		// The default partitioner's choice for a record without a
		// key is random (sticky batches): compare only partitions a
		// keyed record or the plugin chose.
		comparePart := partitioner && rs[i].Key != nil
		a, b := describeTrial(single[i], comparePart), describeTrial(batched[i], comparePart)
		if a != b {
			diffs++
			fmt.Fprintf(w, "  record %d differs:\n    alone:    %s\n    in batch: %s\n", i+1, a, b)
		}
	}
	if diffs == 0 {
		fmt.Fprintf(w, "  no differences\n")
	}
	return diffs, nil
}

// describeTrial describes a Trial result for comparison: the outcome, the
// error without the hook (a batch call names its batch export), the
// partition if asked, and the record.
func describeTrial(r pipeline.TrialResult, partition bool) string {
	s := r.Outcome.String()
	if r.Err != nil {
		var fault *wasmhost.Fault
		var guest *wasmhost.GuestError
		switch {
		case errors.As(r.Err, &fault):
			s += fmt.Sprintf(" fault (%s)", fault.Reason)
		case errors.As(r.Err, &guest):
			s += fmt.Sprintf(" error %q", guest.Message)
		default:
			s += " " + oneLine(r.Err)
		}
	}
	if partition && r.Outcome == pipeline.Delivered {
		s += fmt.Sprintf(" partition %d", r.Partition)
	}
	if r.Record != nil {
		c := *r.Record
		c.Timestamp, c.HasPartition, c.Partition = time.Time{}, false, 0
		s += " " + formatRecord(&c)
	}
	return s
}

func cloneRecord(r *plugins.Record) *plugins.Record {
	c := *r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, plugins.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	return &c
}

func filepathBase(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func describeErr(err error) string {
	var fault *wasmhost.Fault
	var guest *wasmhost.GuestError
	switch {
	case errors.As(err, &fault):
		return fmt.Sprintf("FAULT (%s): %s", fault.Reason, oneLine(fault.Err))
	case errors.As(err, &guest):
		return fmt.Sprintf("ERROR: %s", oneLine(errors.New(guest.Message)))
	}
	return fmt.Sprintf("ERROR: %s", oneLine(err))
}

// oneLine joins the lines of an error message (wasm stack traces) with " | ".
func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " | ")
}

func formatData(b []byte) string {
	if b == nil {
		return "null"
	}
	if utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%d bytes %x", len(b), b)
}

func formatRecord(r *plugins.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "topic=%s key=%s value=%s", strconv.Quote(r.Topic), formatData(r.Key), formatData(r.Value))
	if len(r.Headers) > 0 {
		b.WriteString(" headers={")
		for i, h := range r.Headers {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: %s", strconv.Quote(h.Key), formatData(h.Value))
		}
		b.WriteString("}")
	}
	if r.HasPartition {
		fmt.Fprintf(&b, " partition=%d", r.Partition)
	}
	if !r.Timestamp.IsZero() {
		fmt.Fprintf(&b, " timestamp=%d", r.Timestamp.UnixMilli())
	}
	return b.String()
}

func sameRecord(a, b *plugins.Record) bool {
	return formatRecord(a) == formatRecord(b)
}

// producerKinds are the kinds that 'kpipe plugin test' runs through a
// pipeline.Trial; the consume-side kinds run in testConsumed.
const producerKinds = plugins.KindInterceptor | plugins.KindSerializer | plugins.KindPartitioner

// serializerInput is the key or the value the serializer of target got:
// that of the record as on_send left it, or as read if on_send was not
// called or failed (a failed interceptor leaves the record as it was).
func serializerInput(c *hookCalls, target plugins.Target) []byte {
	r := &c.sent
	if c.send.called && c.send.err == nil {
		r = &c.send.after
	}
	if target == plugins.TargetKey {
		return r.Key
	}
	return r.Value
}

// oneModuleArg accepts exactly one argument, the module of a plugin command,
// and says so when it gets another number.
func oneModuleArg(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return usageErrorf("%s needs the module to use: %s MODULE.wasm", cmd.CommandPath(), cmd.CommandPath())
	default:
		return usageErrorf("%s takes one module, got %d arguments: %s", cmd.CommandPath(), len(args), strings.Join(args, " "))
	}
}
