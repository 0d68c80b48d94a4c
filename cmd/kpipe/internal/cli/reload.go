package cli

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"

	"github.com/kpipe/kpipe/config"
	"github.com/kpipe/kpipe/internal/admin"
	"github.com/kpipe/kpipe/pipeline"
	"github.com/kpipe/kpipe/plugins"
	"github.com/kpipe/kpipe/wasmhost"
)

// reloader reloads the configuration of a running `kpipe run`. A reload
// parses and checks the file, refuses changes that need a restart, loads
// the new chain's plugins, calls each of their hooks once on a synthetic
// record, and only then swaps the chain in one step (Producer.Swap). A
// failure at any step rejects the reload: the running chain keeps serving.
type reloader struct {
	e        *env
	path     string
	name     string // --pipeline
	brokers  bool   // --brokers overrides the file's
	topic    bool   // --topic overrides the pipeline's
	host     *wasmhost.Host
	producer *pipeline.Producer

	stopped atomic.Bool // run is finishing: no more reloads
	// swapped, if set, runs after each reload that swapped the chain: a
	// Kafka source resumes the partitions a failed record stopped, which
	// the new plugins may no longer fail. It returns what to add to the
	// reload's log line, or "".
	swapped func() string

	mu       sync.Mutex       // held during a reload; guards the fields below
	cfg      *config.Config   // the configuration the running chain was loaded from
	pipe     *config.Pipeline // its pipeline
	lastSeen *config.Config   // the last configuration that parsed, even if rejected later
	ok       uint64
	rejected uint64
	lastErr  []string
	lastAt   time.Time
}

func newReloader(e *env, f runFlags, b *built) *reloader {
	return &reloader{
		e: e, path: f.config, name: f.pipeline, brokers: f.brokers != "", topic: f.topic != "",
		host: b.host, producer: b.producer, cfg: b.cfg, pipe: b.pipe,
	}
}

// stop refuses further reloads. A reload in progress that has not swapped
// yet is rejected when it tries.
func (r *reloader) stop() { r.stopped.Store(true) }

// describe returns the current chain's plugins and the reload counters.
func (r *reloader) describe() ([]admin.PluginInfo, admin.ReloadStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var infos []admin.PluginInfo
	for _, b := range chainBlocks(r.pipe) {
		infos = append(infos, admin.PluginInfo{
			Name: b.block.Name, Kind: admin.KindName(b.block.Kind), Role: b.role,
			Module: b.block.Module, Builtin: b.block.Builtin, SHA256: b.block.ModuleSHA256,
			Policy: policyOf(b.block),
		})
	}
	return infos, admin.ReloadStats{OK: r.ok, Rejected: r.rejected, LastError: r.lastErr, LastErrorAt: r.lastAt}
}

// policyOf is what happens to a record when the plugin of b fails: its
// on_failure attribute, or the kind's default (an interceptor is skipped, a
// partitioner's record goes to the default partitioner, a serializer fails
// the record).
func policyOf(b *config.Plugin) string {
	if b.OnFailure != 0 {
		return b.OnFailure.String()
	}
	switch b.Kind {
	case plugins.KindInterceptor:
		return pipeline.SkipPlugin.String()
	case plugins.KindPartitioner:
		return pipeline.UseDefaultPartitioner.String()
	}
	return pipeline.FailRecord.String()
}

// watchedFiles are the files whose change triggers a reload: the
// configuration file and the modules of the running pipeline, and those of
// the last configuration that parsed (a rejected one may name a module that
// does not exist yet).
func (r *reloader) watchedFiles() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := []string{r.path}
	for _, c := range []*config.Config{r.cfg, r.lastSeen} {
		if c == nil {
			continue
		}
		p, err := c.Pipeline(r.name)
		if err != nil {
			continue
		}
		for _, b := range chainBlocks(p) {
			if b.block.Module != "" {
				files = append(files, b.block.Module)
			}
		}
	}
	return files
}

// reload reloads the configuration (see reloader) and logs one line: the
// versions, what changed and how long it took, or why it was rejected. It
// returns the version that serves afterwards, or a *admin.ReloadError.
func (r *reloader) reload(ctx context.Context, trigger string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() {
		return r.producer.ChainVersion(), &admin.ReloadError{Diagnostics: []string{errReloadsStopped.Error()}}
	}
	start := time.Now()
	old := r.producer.ChainVersion()
	changes, v, diags := r.apply(ctx)
	took := time.Since(start).Round(100 * time.Microsecond)
	if diags != nil {
		r.rejected++
		r.lastErr, r.lastAt = diags, time.Now()
		r.e.say("reload (%s) rejected after %s; chain %d keeps serving:\n  %s", trigger, took, old, strings.Join(diags, "\n  "))
		return old, &admin.ReloadError{Diagnostics: diags}
	}
	r.ok++
	r.lastErr, r.lastAt = nil, time.Time{}
	if v == old {
		r.e.say("reload (%s): chain %d unchanged, nothing to swap (%s)", trigger, old, took)
	} else {
		more := ""
		if r.swapped != nil {
			more = r.swapped()
		}
		r.e.say("reload (%s): chain %d → %d in %s: %s%s", trigger, old, v, took, strings.Join(changes, ", "), more)
	}
	return v, nil
}

// apply is reload's work: it returns the changes and the new version, or
// the diagnostics of a rejection, one FILE:LINE:COL line each.
func (r *reloader) apply(ctx context.Context) (changes []string, version uint64, diags []string) {
	cfg, hd := config.Load(r.path)
	if hd.HasErrors() {
		return nil, 0, formatDiags(hd)
	}
	r.lastSeen = cfg // its modules are watched even if it is rejected later
	p, err := cfg.Pipeline(r.name)
	if err != nil {
		return nil, 0, []string{err.Error()}
	}
	if d := r.needsRestart(cfg, p); len(d) > 0 {
		return nil, 0, d
	}
	changes = diffChains(r.pipe, p)
	if len(changes) == 0 {
		r.cfg, r.pipe = cfg, p // positions may have moved
		return nil, r.producer.ChainVersion(), nil
	}
	ch, err := cfg.LoadChain(ctx, p, r.host)
	if err != nil {
		// CheckModulesAfter, run's diagnostics path, says the same at
		// the module's attribute, and loads the modules after the one
		// that failed to report them too.
		if hd := cfg.CheckModulesAfter(ctx, r.host, err, r.name); hd.HasErrors() {
			return nil, 0, formatDiags(hd)
		}
		return nil, 0, []string{err.Error()}
	}
	if err := probeChain(ctx, ch); err != nil {
		_ = ch.Close(context.WithoutCancel(ctx))
		return nil, 0, []string{err.Error()}
	}
	if r.stopped.Load() {
		_ = ch.Close(context.WithoutCancel(ctx))
		return nil, 0, []string{errReloadsStopped.Error()}
	}
	v, err := r.producer.Swap(ctx, ch.Options()...)
	if err != nil {
		_ = ch.Close(context.WithoutCancel(ctx))
		return nil, 0, []string{fmt.Sprintf("%s: %v", rangePos(p.DefRange), err)}
	}
	r.cfg, r.pipe = cfg, p
	return changes, v, nil
}

// needsRestart reports the changes a running producer cannot take, each at
// its place in the new file: the kafka block (client settings, brokers
// unless --brokers overrides them, the transactional id), the pipeline's
// topic (unless --topic overrides it), its source block and its batch
// block.
func (r *reloader) needsRestart(cfg *config.Config, p *config.Pipeline) []string {
	var diags []string
	if fields := kafkaChanges(r.cfg.Kafka, cfg.Kafka, r.brokers); len(fields) > 0 {
		rng := cfg.Kafka.DefRange
		if rng.Filename == "" {
			rng = hcl.Range{Filename: cfg.Filename, Start: hcl.InitialPos}
		}
		diags = append(diags, fmt.Sprintf("%s: error: Needs a restart: the kafka settings %s changed; kpipe run applies plugin changes while running, and client settings only when it starts",
			rangePos(rng), strings.Join(fields, ", ")))
	}
	if !r.topic && p.Topic != r.pipe.Topic {
		diags = append(diags, fmt.Sprintf("%s: error: Needs a restart: the pipeline's topic changed from %q to %q; the default topic is fixed when kpipe run starts",
			rangePos(p.DefRange), r.pipe.Topic, p.Topic))
	}
	if !sameSource(p.Source, r.pipe.Source) {
		rng := p.DefRange
		if p.Source != nil {
			rng = p.Source.DefRange
		}
		diags = append(diags, fmt.Sprintf("%s: error: Needs a restart: the pipeline's source block changed; where kpipe run reads is fixed when it starts",
			rangePos(rng)))
	}
	if !reflect.DeepEqual(p.Batch, r.pipe.Batch) {
		diags = append(diags, fmt.Sprintf("%s: error: Needs a restart: the pipeline's batch block changed; stage batching is fixed when kpipe run starts",
			rangePos(p.DefRange)))
	}
	return diags
}

// sameSource reports whether a and b are the same source block, or both
// none, wherever they are in their files.
func sameSource(a, b *config.Source) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.DefRange, y.DefRange = hcl.Range{}, hcl.Range{}
	return reflect.DeepEqual(x, y)
}

// kafkaChanges names the kafka settings that differ between a and b, as
// the configuration file spells them.
func kafkaChanges(a, b config.Kafka, brokersOverridden bool) []string {
	var names []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		f := va.Type().Field(i)
		switch {
		case f.Name == "DefRange":
			continue
		case f.Name == "Brokers" && brokersOverridden:
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			names = append(names, snakeCase(f.Name))
		}
	}
	return names
}

// snakeCase turns a Go field name into the attribute name: ClientID is
// client_id, BatchMaxBytes batch_max_bytes.
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, c := range rs {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// chainBlock is a plugin block and where the chain uses it.
type chainBlock struct {
	role  string // interceptor, key_serializer, value_serializer, partitioner
	block *config.Plugin
}

// key identifies the slot a block fills: an interceptor by name, the others
// by role.
func (c chainBlock) key() string {
	if c.role == "interceptor" {
		return "interceptor " + c.block.Name
	}
	return c.role
}

// chainBlocks lists p's plugin blocks in chain order.
func chainBlocks(p *config.Pipeline) []chainBlock {
	var out []chainBlock
	if p == nil {
		return nil
	}
	for _, ic := range p.Interceptors {
		out = append(out, chainBlock{"interceptor", ic})
	}
	for _, c := range []chainBlock{{"key_serializer", p.KeySerializer}, {"value_serializer", p.ValueSerializer}, {"partitioner", p.Partitioner}} {
		if c.block != nil {
			out = append(out, c)
		}
	}
	return out
}

// diffChains describes how the chain of b differs from that of a: plugins
// added, removed and replaced (another module, hash, builtin, config or
// limits), interceptors reordered, and a changed circuit breaker. Nothing
// means the chains are the same.
func diffChains(a, b *config.Pipeline) []string {
	var out []string
	old := map[string]*config.Plugin{}
	var oldOrder, newOrder []string
	for _, c := range chainBlocks(a) {
		old[c.key()] = c.block
		if c.role == "interceptor" {
			oldOrder = append(oldOrder, c.block.Name)
		}
	}
	seen := map[string]bool{}
	for _, c := range chainBlocks(b) {
		k := c.key()
		seen[k] = true
		if c.role == "interceptor" {
			newOrder = append(newOrder, c.block.Name)
		}
		prev, ok := old[k]
		switch {
		case !ok:
			out = append(out, "added "+describeBlock(c.role, c.block))
		case !sameBlock(prev, c.block):
			out = append(out, "replaced "+c.role+" "+describeBlock("", prev)+" by "+describeBlock("", c.block))
		}
	}
	for _, c := range chainBlocks(a) {
		if !seen[c.key()] {
			out = append(out, "removed "+describeBlock(c.role, c.block))
		}
	}
	if len(out) == 0 && !reflect.DeepEqual(oldOrder, newOrder) {
		out = append(out, "interceptors reordered to "+strings.Join(newOrder, ", "))
	}
	if !reflect.DeepEqual(a.CircuitBreaker, b.CircuitBreaker) {
		out = append(out, "circuit breaker changed")
	}
	return out
}

// sameBlock reports whether two blocks make the same plugin: everything
// but their positions is equal, the module's hash included.
func sameBlock(a, b *config.Plugin) bool {
	x, y := *a, *b
	x.DefRange, x.ModuleRange = hcl.Range{}, hcl.Range{}
	y.DefRange, y.ModuleRange = hcl.Range{}, hcl.Range{}
	return reflect.DeepEqual(x, y)
}

// describeBlock names a plugin for the reload log: role, name, and the
// first 12 hex digits of its module's hash, or the builtin.
func describeBlock(role string, b *config.Plugin) string {
	s := b.Name
	if role != "" {
		s = role + " " + s
	}
	if b.Builtin != "" {
		return s + " (builtin)"
	}
	return s + " (sha256 " + b.ModuleSHA256[:min(12, len(b.ModuleSHA256))] + ")"
}

// probeRecord is the synthetic record a reload passes through each new
// plugin before the swap.
func probeRecord(topic string) *plugins.Record {
	if topic == "" {
		topic = "kpipe-reload-probe"
	}
	return &plugins.Record{
		Topic:     topic,
		Key:       []byte("kpipe-reload-probe"),
		Value:     []byte(`{"kpipe":"reload probe"}`),
		Headers:   []plugins.Header{{Key: "kpipe-probe", Value: []byte("1")}},
		Timestamp: time.Now(),
	}
}

// probePartitions is the partition count the probe gives a partitioner.
const probePartitions = 3

// probeChain calls every hook of the chain's plugins once on a synthetic
// record (the batch hooks with a batch of that one record). A fault (trap, timeout, invalid output...) rejects the chain; an
// error the plugin reports on purpose (it may refuse a record it does not
// understand) does not.
func probeChain(ctx context.Context, ch *config.Chain) error {
	for _, lp := range ch.Plugins {
		b := lp.Block
		if lp.Impl == nil {
			continue // the pipeline's own "bytes" serializer or "default" partitioner
		}
		rec := func() *plugins.Record { return probeRecord(ch.Pipeline.Topic) }
		one := func() []*plugins.Record { return []*plugins.Record{rec()} }
		var errs []error
		// batch runs a batch hook on one record: its error and the record's.
		batch := func(call func(recErrs []error) error) {
			recErrs := make([]error, 1)
			errs = append(errs, call(recErrs))
			errs = append(errs, recErrs[0])
		}
		switch b.Kind {
		case plugins.KindInterceptor:
			ic := lp.Impl.(plugins.Interceptor)
			_, err := ic.OnSend(ctx, rec())
			errs = append(errs, err)
			if bi, ok := ic.(plugins.BatchInterceptor); ok {
				batch(func(e []error) error { return bi.OnSendBatch(ctx, one(), make([]plugins.Verdict, 1), e) })
			}
			if ao, ok := ic.(plugins.AckObserver); !ok || ao.WantsAcks() {
				errs = append(errs, ic.OnAck(ctx, rec(), plugins.Ack{Offset: 0}))
				if ab, ok := ic.(plugins.AckBatcher); ok {
					batch(func(e []error) error { return ab.OnAckBatch(ctx, one(), []plugins.Ack{{Offset: 0}}, e) })
				}
			}
		case plugins.KindSerializer:
			target := plugins.TargetValue
			if b == ch.Pipeline.KeySerializer {
				target = plugins.TargetKey
			}
			_, err := lp.Impl.(plugins.Serializer).Serialize(ctx, target, rec())
			errs = append(errs, err)
		case plugins.KindPartitioner:
			part := lp.Impl.(plugins.Partitioner)
			_, err := part.Partition(ctx, rec(), probePartitions)
			errs = append(errs, err)
			if bp, ok := part.(plugins.BatchPartitioner); ok {
				batch(func(e []error) error {
					return bp.PartitionBatch(ctx, one(), []int32{probePartitions}, make([]int32, 1), e)
				})
			}
		}
		for _, err := range errs {
			var f *wasmhost.Fault
			if errors.As(err, &f) {
				return fmt.Errorf("%s: error: Plugin fails on a synthetic record: %s %q, hook %s: %v", rangePos(b.DefRange), admin.KindName(b.Kind), b.Name, f.Hook, err)
			}
		}
	}
	return nil
}

// formatDiags formats the errors among diags, one FILE:LINE:COL line each.
func formatDiags(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			out = append(out, config.FormatDiagnostic(d))
		}
	}
	return out
}

// rangePos formats the start of a range as FILE:LINE:COL.
func rangePos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
