package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

func newPluginConformanceCmd(e *env) *cobra.Command {
	var (
		configKV   []string
		configJSON string
		partitions int32
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "conformance MODULE.wasm",
		Short: "Check that a module does what the plugin ABI requires of any plugin",
		Long: `Check a module against the plugin ABI (sdk/ABI.md) as the host sees it, with
no broker, and print one line per check:

  load         the version marker, the declared kinds, every required export
               with its signature, the imports
  init         _initialize and kpipe_init succeed (give the plugin its config
               with --config or --config-json if it needs one)
  HOOK         every hook of every declared kind, the consume side's too
               (on_consume, deserialize), runs on the test records (a
               null key, a tombstone, an empty value and key, 40 headers,
               UTF-8, a 64 KiB record that fills the host's first input
               buffer, a 256 KiB one that makes the host ask for a larger
               buffer, and a record after it) without a fault, and its
               results are well-formed (the host checks each; a partition
               must be in range)
  batch        each batch hook the module exports gives every record what
               its per-record hook gives it (for a consume interceptor: a
               batch of records on one instance)
  determinism  a second instance gives the same results on the same records

Errors that a hook reports (KPIPE_ERROR) are well-formed results: they are
listed, and do not fail the check. Exit status 0 if every check passed, 1 if
any failed.`,
		Example: `  kpipe plugin conformance build/sdk-examples/c/stamp.wasm
  kpipe plugin conformance build/plugins/route.wasm --config-json '{"field":"region","routes":{"eu":0}}'`,
		Args: oneModuleArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions < 1 {
				return usageErrorf("--partitions must be at least 1")
			}
			cfg, err := pluginConfig(configKV, configJSON)
			if err != nil {
				return err
			}
			return e.conformance(cmd.Context(), args[0], cfg, partitions, timeout)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&configKV, "config", nil, "plugin config entry KEY=VALUE (repeatable); the plugin gets a JSON object of strings")
	fl.StringVar(&configJSON, "config-json", "", "plugin config as one JSON value (instead of --config)")
	fl.Int32Var(&partitions, "partitions", 7, "partition count given to a partitioner")
	fl.DurationVar(&timeout, "timeout", time.Second, "time limit of each hook call")
	return cmd
}

// conformanceRecord is a named test record of the conformance checks.
type conformanceRecord struct {
	name string
	rec  plugins.Record
}

// conformanceRecords returns fresh copies of the test records. Their shapes
// are those of the ABI test vectors (sdk/testdata), plus one larger than the
// host's first input buffer.
func conformanceRecords() []conformanceRecord {
	many := make([]plugins.Header, 40)
	for i := range many {
		many[i] = plugins.Header{Key: fmt.Sprintf("h%02d", i), Value: bytes.Repeat([]byte("v"), i)}
	}
	many[7].Value = nil
	full := plugins.Record{
		Topic:     "orders",
		Key:       []byte("user-1"),
		Value:     []byte(`{"id":1,"amount":12.5}`),
		Headers:   []plugins.Header{{Key: "trace", Value: []byte("abc")}, {Key: "null"}, {Key: "empty", Value: []byte{}}},
		Timestamp: time.UnixMilli(1_700_000_000_123),
	}
	// large is exactly the host's first input buffer (64 KiB): topic
	// "large", key "big", no headers make 45 bytes of the 65536.
	large := plugins.Record{Topic: "large", Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 64<<10-45)}
	grow := plugins.Record{Topic: "large", Key: []byte("bigger"), Value: bytes.Repeat([]byte("y"), 256<<10)}
	return []conformanceRecord{
		{"minimal", plugins.Record{Topic: "t"}},
		{"full", full},
		{"null key", plugins.Record{Topic: "events", Value: []byte("no key")}},
		{"tombstone", plugins.Record{Topic: "events", Key: []byte("gone")}},
		{"empty value", plugins.Record{Topic: "events", Key: []byte("k"), Value: []byte{}}},
		{"empty key", plugins.Record{Topic: "events", Key: []byte{}, Value: []byte("v")}},
		{"many headers", plugins.Record{Topic: "events", Key: []byte("many"), Value: []byte("v"), Headers: many}},
		{"repeated headers", plugins.Record{Topic: "events", Key: []byte("r"), Value: []byte("v"),
			Headers: []plugins.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}},
		{"utf8", plugins.Record{Topic: "thé", Key: []byte("ключ"), Value: []byte("値")}},
		{"64 KiB", large},
		{"256 KiB", grow},
		{"after growth", full},
	}
}

// conformanceReport prints the checks and counts them.
type conformanceReport struct {
	w              io.Writer
	passed, failed int
}

func (r *conformanceReport) check(name string, problems []string, summary string) {
	if len(problems) == 0 {
		r.passed++
		fmt.Fprintf(r.w, "ok    %-13s %s\n", name, summary)
		return
	}
	r.failed++
	fmt.Fprintf(r.w, "FAIL  %-13s %s\n", name, problems[0])
	const shown = 6
	for i, p := range problems[1:] {
		if i+1 == shown {
			fmt.Fprintf(r.w, "      %-13s … and %d more\n", "", len(problems)-shown)
			break
		}
		fmt.Fprintf(r.w, "      %-13s %s\n", "", p)
	}
}

// outcome describes a hook's error: "" for none, "error: ..." for one the
// plugin reported, "FAULT (reason): ..." for a fault.
func outcome(err error) string {
	if err == nil {
		return ""
	}
	return describeErr(err)
}

// isFaultErr reports whether err is a fault, which no test record may cause.
func isFaultErr(err error) bool {
	var f *wasmhost.Fault
	return errors.As(err, &f)
}

func (e *env) conformance(ctx context.Context, path string, cfg []byte, partitions int32, timeout time.Duration) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	host, err := e.newHost(ctx)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	defer closeHost(ctx, host)
	opts := []wasmhost.PluginOption{wasmhost.WithPoolSize(1), wasmhost.WithCallTimeout(timeout)}
	if cfg != nil {
		opts = append(opts, wasmhost.WithConfig(cfg))
	}
	rep := &conformanceReport{w: e.stdout}
	fmt.Fprintf(e.stdout, "module: %s (%d bytes)\n", path, len(wasm))

	info, lerr := host.Inspect(ctx, wasm, opts...)
	switch {
	case info == nil:
		rep.check("load", []string{oneLine(lerr)}, "")
	case info.InitError != nil:
		rep.check("load", nil, fmt.Sprintf("ABI v%d, declares %s", info.ABIVersion, kindList(info.Kinds)))
		rep.check("init", []string{oneLine(info.InitError)}, "")
	case lerr != nil:
		rep.check("load", []string{oneLine(lerr)}, "")
	default:
		rep.check("load", nil, fmt.Sprintf("ABI v%d, declares %s, %d exports and %d imports as the ABI types them",
			info.ABIVersion, kindList(info.Kinds), len(info.Exports), len(info.Imports)))
		rep.check("init", nil, fmt.Sprintf("instance initialised, features %s", info.FeatureNames()))
		name := strings.TrimSuffix(filepathBase(path), ".wasm")
		load := func(kind plugins.Kind) (*wasmhost.Plugin, error) {
			return host.Load(ctx, name, wasm, kind, opts...)
		}
		for _, kn := range append(kindNames[:len(kindNames):len(kindNames)], consumeKindNames...) {
			if info.Kinds&kn.kind == 0 {
				continue
			}
			var problem error
			switch kn.kind {
			case plugins.KindConsumeInterceptor:
				problem = conformConsumeInterceptor(ctx, rep, load)
			case plugins.KindDeserializer:
				problem = conformCodec(ctx, rep, load, deserializerCheck)
			case plugins.KindInterceptor:
				problem = conformInterceptor(ctx, rep, load, info)
			case plugins.KindPartitioner:
				problem = conformPartitioner(ctx, rep, load, info, partitions)
			case plugins.KindSerializer:
				problem = conformCodec(ctx, rep, load, serializerCheck)
			}
			if problem != nil {
				rep.check(kn.name, []string{"cannot load as " + kn.name + ": " + oneLine(problem)}, "")
			}
		}
	}
	fmt.Fprintf(e.stdout, "conformance: %d passed, %d failed\n", rep.passed, rep.failed)
	if rep.failed > 0 {
		return silentExit(ExitFailed)
	}
	return nil
}

// hasExport reports whether the module exports the function name.
func hasExport(info *wasmhost.ModuleInfo, name string) bool {
	for _, f := range info.Exports {
		if f.Name == name {
			return true
		}
	}
	return false
}

// sendResults runs OnSend on fresh copies of the test records, one call
// each, and returns what each call did.
func sendResults(ctx context.Context, p *wasmhost.Plugin) (results []string, errs []error) {
	for _, tr := range conformanceRecords() {
		r := tr.rec
		v, err := p.OnSend(ctx, &r)
		results = append(results, sendResult(v, err, &r))
		errs = append(errs, err)
	}
	return results, errs
}

func sendResult(v plugins.Verdict, err error, r *plugins.Record) string {
	switch {
	case err != nil:
		return outcome(err)
	case v == plugins.Drop:
		return "drop"
	}
	return "continue " + formatRecord(r)
}

// hookProblems lists the faults among errs, and returns how many records
// got an error the plugin reported.
func hookProblems(errs []error) (problems []string, reported int) {
	trs := conformanceRecords()
	for i, err := range errs {
		switch {
		case err == nil:
		case isFaultErr(err):
			problems = append(problems, fmt.Sprintf("record %q: %s", trs[i].name, outcome(err)))
		default:
			reported++
		}
	}
	return problems, reported
}

// compareResults lists the records whose results differ between two runs.
func compareResults(what string, got, want []string) []string {
	var problems []string
	trs := conformanceRecords()
	for i := range want {
		if got[i] != want[i] {
			problems = append(problems, fmt.Sprintf("record %q: %s gave %s, not %s", trs[i].name, what, shorten(got[i]), shorten(want[i])))
		}
	}
	return problems
}

// shorten keeps a result printable when it holds a large record.
func shorten(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

func summary(n, reported int) string {
	s := fmt.Sprintf("%d test records, no fault", n)
	if reported > 0 {
		s += fmt.Sprintf(", %d reported an error", reported)
	}
	return s
}

func conformInterceptor(ctx context.Context, rep *conformanceReport, load func(plugins.Kind) (*wasmhost.Plugin, error), info *wasmhost.ModuleInfo) error {
	a, err := load(plugins.KindInterceptor)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	want, errs := sendResults(ctx, a)
	problems, reported := hookProblems(errs)
	rep.check("on_send", problems, summary(len(want), reported))

	if a.WantsAcks() {
		var problems []string
		reported := 0
		trs := conformanceRecords()
		batch := make([]*plugins.Record, len(trs))
		acks := make([]plugins.Ack, len(trs))
		for i := range trs {
			tr := &trs[i]
			r := &tr.rec
			r.SetPartition(int32(i % 3))
			if r.Timestamp.IsZero() {
				r.Timestamp = time.UnixMilli(1_700_000_000_000 + int64(i))
			}
			for _, ack := range []plugins.Ack{{Offset: int64(i)}, {Offset: -1, Err: errors.New("conformance: simulated failure")}} {
				err := a.OnAck(ctx, r, ack)
				if isFaultErr(err) {
					problems = append(problems, fmt.Sprintf("record %q: %s", tr.name, outcome(err)))
				} else if err != nil {
					reported++
				}
			}
			batch[i], acks[i] = r, plugins.Ack{Offset: int64(i)}
		}
		// The batched path, which uses kpipe_on_ack_batch if the module has it.
		errs := make([]error, len(batch))
		if err := a.OnAckBatch(ctx, batch, acks, errs); isFaultErr(err) {
			problems = append(problems, "acknowledgements in one batch: "+outcome(err))
		} else {
			for i, err := range errs {
				if isFaultErr(err) {
					problems = append(problems, fmt.Sprintf("record %q, batched: %s", trs[i].name, outcome(err)))
				}
			}
		}
		rep.check("on_ack", problems, summary(3*len(conformanceRecords()), reported)+" (delivered, failed, batched)")
	}

	if hasExport(info, "kpipe_on_send_batch") {
		b, err := load(plugins.KindInterceptor)
		if err != nil {
			return err
		}
		defer b.Close(ctx)
		trs := conformanceRecords()
		rs := make([]*plugins.Record, len(trs))
		for i := range trs {
			rs[i] = &trs[i].rec
		}
		vs := make([]plugins.Verdict, len(rs))
		errs := make([]error, len(rs))
		var got []string
		if err := b.OnSendBatch(ctx, rs, vs, errs); err != nil {
			rep.check("batch", []string{"OnSendBatch: " + oneLine(err)}, "")
		} else {
			for i := range rs {
				got = append(got, sendResult(vs[i], errs[i], rs[i]))
			}
			rep.check("batch", compareResults("kpipe_on_send_batch", got, want), "kpipe_on_send_batch gives every record what kpipe_on_send gives it")
		}
	}

	c, err := load(plugins.KindInterceptor)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	got, _ := sendResults(ctx, c)
	rep.check("determinism", compareResults("a second instance", got, want), "a second instance gives the same on_send results")
	return nil
}

// partitionResults runs Partition on fresh copies of the test records.
func partitionResults(ctx context.Context, p *wasmhost.Plugin, n int32) (results []string, errs []error, problems []string) {
	for _, tr := range conformanceRecords() {
		r := tr.rec
		part, err := p.Partition(ctx, &r, n)
		results = append(results, partitionResult(part, err))
		errs = append(errs, err)
		if err != nil && !isFaultErr(err) && strings.Contains(outcome(err), "out of range") {
			problems = append(problems, fmt.Sprintf("record %q: %s", tr.name, outcome(err)))
		}
	}
	return results, errs, problems
}

func partitionResult(part int32, err error) string {
	switch {
	case err != nil:
		return outcome(err)
	case part == plugins.DefaultPartition:
		return "default partitioner"
	}
	return fmt.Sprintf("partition %d", part)
}

func conformPartitioner(ctx context.Context, rep *conformanceReport, load func(plugins.Kind) (*wasmhost.Plugin, error), info *wasmhost.ModuleInfo, n int32) error {
	a, err := load(plugins.KindPartitioner)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	want, errs, rangeProblems := partitionResults(ctx, a, n)
	problems, reported := hookProblems(errs)
	rep.check("partition", append(problems, rangeProblems...), summary(len(want), reported)+fmt.Sprintf(", every partition in [0, %d)", n))

	if hasExport(info, "kpipe_partition_batch") {
		b, err := load(plugins.KindPartitioner)
		if err != nil {
			return err
		}
		defer b.Close(ctx)
		trs := conformanceRecords()
		rs := make([]*plugins.Record, len(trs))
		nps := make([]int32, len(trs))
		for i := range trs {
			rs[i], nps[i] = &trs[i].rec, n
		}
		parts := make([]int32, len(rs))
		errs := make([]error, len(rs))
		if err := b.PartitionBatch(ctx, rs, nps, parts, errs); err != nil {
			rep.check("batch", []string{"PartitionBatch: " + oneLine(err)}, "")
		} else {
			got := make([]string, len(rs))
			for i := range rs {
				got[i] = partitionResult(parts[i], errs[i])
			}
			rep.check("batch", compareResults("kpipe_partition_batch", got, want), "kpipe_partition_batch gives every record what kpipe_partition gives it")
		}
	}

	c, err := load(plugins.KindPartitioner)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	got, _, _ := partitionResults(ctx, c, n)
	rep.check("determinism", compareResults("a second instance", got, want), "a second instance gives the same partitions")
	return nil
}

// codecCheck is the conformance check of one codec kind: a serializer or a
// deserializer, run on the key and value of each test record.
type codecCheck struct {
	kind plugins.Kind
	hook string // the check's name: "serialize", "deserialize"
	does string // what a second instance must do alike: "serializes", "deserializes"
	// calls returns the hook's calls on fresh test records, one per record.
	calls func(ctx context.Context, p *wasmhost.Plugin) []codecCall
}

// codecCall is one test record as a codec hook sees it: its key and value,
// and the hook called on one of them.
type codecCall struct {
	key, value []byte
	run        func(plugins.Target) ([]byte, error)
}

// serializerCheck runs Serialize on fresh copies of the test records.
var serializerCheck = codecCheck{
	kind: plugins.KindSerializer, hook: "serialize", does: "serializes",
	calls: func(ctx context.Context, p *wasmhost.Plugin) []codecCall {
		var calls []codecCall
		for _, tr := range conformanceRecords() {
			r := tr.rec
			calls = append(calls, codecCall{r.Key, r.Value, func(t plugins.Target) ([]byte, error) { return p.Serialize(ctx, t, &r) }})
		}
		return calls
	},
}

// codecResults runs a codec hook on the key and value of fresh test records
// (never on a null one, as the host does not), and returns what it gave
// each record and the record's first error (a fault before a reported one).
func codecResults(ctx context.Context, c codecCheck, p *wasmhost.Plugin) (results []string, errs []error) {
	for _, call := range c.calls(ctx, p) {
		var parts []string
		var firstErr error
		for _, target := range []plugins.Target{plugins.TargetKey, plugins.TargetValue} {
			if (target == plugins.TargetKey && call.key == nil) || (target == plugins.TargetValue && call.value == nil) {
				continue
			}
			out, err := call.run(target)
			if err != nil {
				parts = append(parts, target.String()+": "+outcome(err))
				if firstErr == nil || isFaultErr(err) {
					firstErr = err
				}
				continue
			}
			parts = append(parts, target.String()+": "+formatData(out))
		}
		results = append(results, strings.Join(parts, "; "))
		errs = append(errs, firstErr)
	}
	return results, errs
}

// conformCodec checks a codec kind: its hook on every test record, then a
// second instance giving the same results.
func conformCodec(ctx context.Context, rep *conformanceReport, load func(plugins.Kind) (*wasmhost.Plugin, error), c codecCheck) error {
	a, err := load(c.kind)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	want, errs := codecResults(ctx, c, a)
	problems, reported := hookProblems(errs)
	rep.check(c.hook, problems, summary(len(want), reported)+" (key and value)")
	b, err := load(c.kind)
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	got, _ := codecResults(ctx, c, b)
	rep.check("determinism", compareResults("a second instance", got, want), "a second instance "+c.does+" alike")
	return nil
}
