package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kpipe/kpipe/plugins"
)

// The consume-side hooks, in Stats.
const (
	HookDeserializeKey   Hook = "deserialize_key"
	HookDeserializeValue Hook = "deserialize_value"
	HookOnConsume        Hook = "on_consume"
)

// Consumer runs consume-side plugins on the records a franz-go consumer
// fetches, before the application sees them: the key deserializer, the
// value deserializer, then the consume interceptors in order (the Java
// client's Deserializer and ConsumerInterceptor.onConsume). Every record
// ends in exactly one of three ways: delivered to the application (in
// Consumed.Delivered, as the plugins left it), filtered (a plugin dropped
// it, or failed on it under DropRecord), or failed (a plugin failed on it
// under FailRecord), the last two with the plugin and why.
//
// Plugins fail as they do around a Producer: each hook of each plugin has
// its failure policy (OnFailure) and, for interceptors, its circuit breaker;
// a call that panics, returns an error or faults (a WASM trap, timeout or
// invalid result) costs the record it was called for and no other.
//
// The Consumer does not commit offsets or manage the client: the
// application polls, processes and commits as it would without it. A
// Consumer is safe for concurrent use.
type Consumer struct {
	cl  *kgo.Client // nil: Process only
	log hclog.Logger
	cfg consumerConfig

	// mu guards cur: Process holds it for reading while it runs records
	// on the chain it took, Swap for writing to replace it.
	mu  sync.RWMutex
	cur *consumeChain

	delivered, filtered, failed atomic.Uint64
	hookStats                   statsTable
	closed                      atomic.Bool
}

// consumeChain is one immutable version of a Consumer's plugins.
type consumeChain struct {
	version        uint64
	keyDe, valueDe *deserializerSlot
	ics            []*consumeSlot
	owned          []any
}

type deserializerSlot struct {
	d      plugins.Deserializer
	target plugins.Target
	g      gate
}

type consumeSlot struct {
	ic    plugins.ConsumeInterceptor
	batch plugins.BatchConsumeInterceptor // ic, if it takes batches
	g     gate
}

// A ConsumerOption configures a Consumer: see NewConsumer.
type ConsumerOption interface{ applyConsumer(*consumerConfig) }

type consumerOptionFunc func(*consumerConfig)

func (f consumerOptionFunc) applyConsumer(c *consumerConfig) { f(c) }

type consumerConfig struct {
	keyDe, valueDe *namedPlugin
	ics            []namedPlugin
	cbThreshold    int
	cbCooldown     time.Duration
	logger         hclog.Logger
	notChainOpt    bool // ConsumerLogger was given
}

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{cbThreshold: 10, cbCooldown: 10 * time.Second}
}

// ConsumeInterceptor appends a consume interceptor to the Consumer's chain.
// Interceptors run in the order given, after the deserializers; name
// identifies it in logs, Stats and errors. At most 64. opts set its failure
// policy (OnFailure: SkipPlugin, the default, passes the record on as it
// was before the interceptor; FailRecord fails it; DropRecord filters it)
// and its circuit breaker (PluginCircuitBreaker; default the Consumer's,
// ConsumerCircuitBreaker).
func ConsumeInterceptor(name string, ic plugins.ConsumeInterceptor, opts ...PluginOption) ConsumerOption {
	np := newNamedPlugin(name, ic, opts)
	if ic == nil {
		np.plugin = nil
	}
	return consumerOptionFunc(func(c *consumerConfig) { c.ics = append(c.ics, np) })
}

// KeyDeserializer sets the deserializer of consumed keys (Kafka property
// key.deserializer). Null keys are never passed to it. A nil d, like the
// default, leaves keys as they were fetched. Its failure fails the record
// (OnFailure(FailRecord), the default) or filters it
// (OnFailure(DropRecord)). Deserializers have no circuit breaker. Default:
// nil.
func KeyDeserializer(name string, d plugins.Deserializer, opts ...PluginOption) ConsumerOption {
	np := newNamedPlugin(name, d, opts)
	if d == nil {
		np.plugin = nil
	}
	return consumerOptionFunc(func(c *consumerConfig) { c.keyDe = &np })
}

// ValueDeserializer sets the deserializer of consumed values (Kafka
// property value.deserializer), as KeyDeserializer does for keys. Null
// values (tombstones) are never passed to it. Default: nil.
func ValueDeserializer(name string, d plugins.Deserializer, opts ...PluginOption) ConsumerOption {
	np := newNamedPlugin(name, d, opts)
	if d == nil {
		np.plugin = nil
	}
	return consumerOptionFunc(func(c *consumerConfig) { c.valueDe = &np })
}

// ConsumerCircuitBreaker sets the default circuit breaker of the
// Consumer's interceptors, as CircuitBreaker does for a Producer's: after
// threshold consecutive records an interceptor failed on, it is bypassed for
// cooldown (its failure policy applies to each record it would have seen),
// then one call is let through. A threshold of zero or less disables it.
// Default: threshold 10, cooldown 10s.
func ConsumerCircuitBreaker(threshold int, cooldown time.Duration) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.cbThreshold, c.cbCooldown = threshold, cooldown })
}

// ConsumerLogger sets the logger of plugin failures. It is not a chain
// option: Swap refuses it. Default: hclog.Default() named "kpipe".
func ConsumerLogger(l hclog.Logger) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.logger, c.notChainOpt = l, true })
}

// NewConsumer returns a Consumer of the records cl fetches (Poll), or of
// any records given to Process if cl is nil. The Consumer does not own cl:
// closing the Consumer closes its plugins, not the client. It owns its
// plugins: it closes those that implement plugins.Closer when a Swap drops
// them and at Close.
func NewConsumer(cl *kgo.Client, opts ...ConsumerOption) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o.applyConsumer(&cfg)
	}
	c := &Consumer{cl: cl, cfg: cfg, log: cfg.logger}
	if c.log == nil {
		c.log = hclog.Default().Named("kpipe")
	}
	ch, err := c.newChain(cfg, 1)
	if err != nil {
		return nil, fmt.Errorf("pipeline: consumer: %w", err)
	}
	c.cur = ch
	return c, nil
}

// newChain builds chain version from cfg.
func (c *Consumer) newChain(cfg consumerConfig, version uint64) (*consumeChain, error) {
	if len(cfg.ics) > 64 {
		return nil, fmt.Errorf("%d consume interceptors, at most 64 are supported", len(cfg.ics))
	}
	ch := &consumeChain{version: version}
	initGate := func(g *gate, np *namedPlugin, kind plugins.Kind, hook Hook) error {
		g.log, g.name, g.kind, g.hook, g.st = c.log, np.name, kind, hook, c.hookStats.get(np.name, kind, hook)
		g.policy = policies(kind)[0]
		if f := np.opts.policy; f != 0 {
			if err := CheckFailurePolicy(kind, f); err != nil {
				return fmt.Errorf("%s %q: %w", kindName(kind), np.name, err)
			}
			g.policy = f
		}
		if kind == plugins.KindConsumeInterceptor {
			threshold, cooldown := cfg.cbThreshold, cfg.cbCooldown
			if np.opts.breakerSet {
				threshold, cooldown = np.opts.cbThreshold, np.opts.cbCooldown
			}
			g.br.configure(threshold, cooldown)
		}
		return nil
	}
	for _, dc := range []struct {
		np     *namedPlugin
		target plugins.Target
		hook   Hook
		dst    **deserializerSlot
	}{{cfg.keyDe, plugins.TargetKey, HookDeserializeKey, &ch.keyDe}, {cfg.valueDe, plugins.TargetValue, HookDeserializeValue, &ch.valueDe}} {
		if dc.np == nil || dc.np.plugin == nil {
			continue
		}
		ds := &deserializerSlot{d: dc.np.plugin.(plugins.Deserializer), target: dc.target}
		if err := initGate(&ds.g, dc.np, plugins.KindDeserializer, dc.hook); err != nil {
			return nil, err
		}
		*dc.dst = ds
		ch.owned = append(ch.owned, dc.np.plugin)
	}
	for i := range cfg.ics {
		np := &cfg.ics[i]
		ic, _ := np.plugin.(plugins.ConsumeInterceptor)
		if ic == nil {
			return nil, fmt.Errorf("consume interceptor %q is nil", np.name)
		}
		s := &consumeSlot{ic: ic}
		s.batch, _ = ic.(plugins.BatchConsumeInterceptor)
		if err := initGate(&s.g, np, plugins.KindConsumeInterceptor, HookOnConsume); err != nil {
			return nil, err
		}
		ch.ics = append(ch.ics, s)
		ch.owned = append(ch.owned, ic)
	}
	return ch, nil
}

// Rejected is a record that a plugin filtered or failed.
type Rejected struct {
	// Record is the record, as it was before the plugin that rejected it.
	Record *kgo.Record
	// Plugin is the name of the plugin, and Hook the hook, that rejected
	// it.
	Plugin string
	Hook   Hook
	// Err is why. For a filtered record it is nil if the interceptor
	// dropped the record, and wraps ErrFiltered and the plugin's error if
	// the plugin failed under DropRecord. For a failed record it wraps
	// ErrPluginFailed (or ErrBypassed, when the circuit breaker was open)
	// and names the plugin and the hook.
	Err error
}

// Consumed is what a Consumer made of a batch of fetched records: each of
// them is in exactly one of Delivered, Filtered and Failed.
type Consumed struct {
	// Delivered are the records for the application, in fetch order, as
	// the plugins left them.
	Delivered []*kgo.Record
	// Filtered are the records a plugin dropped, in fetch order.
	Filtered []Rejected
	// Failed are the records a plugin failed on, in fetch order.
	Failed []Rejected
	// ChainVersion is the version of the chain that ran the records: 1
	// for the chain NewConsumer built, one more for each Swap.
	ChainVersion uint64
}

// Len returns the number of records: delivered, filtered and failed.
func (c *Consumed) Len() int { return len(c.Delivered) + len(c.Filtered) + len(c.Failed) }

// ErrNoClient is returned by Poll of a Consumer made without a client.
var ErrNoClient = errors.New("pipeline: consumer has no client: use Process")

// Poll fetches records with the client's PollRecords, at most max (0 or
// less: as many as are buffered), and runs them through the chain (see
// Process). It waits until records arrive or ctx ends; fetch errors other
// than ctx's are returned (FetchError) with the records that did arrive
// (kgo.Fetches has them by topic and partition). Offsets are not committed.
// ctx also bounds the plugin calls: to bound only the wait for records,
// call the client's PollRecords with a shorter context and Process its
// records, as kpipe consume does.
func (c *Consumer) Poll(ctx context.Context, max int) (Consumed, kgo.Fetches, error) {
	if c.cl == nil {
		return Consumed{}, nil, ErrNoClient
	}
	if c.closed.Load() {
		return Consumed{}, nil, fmt.Errorf("pipeline: consumer: %w", ErrClosed)
	}
	fs := c.cl.PollRecords(ctx, max)
	return c.Process(ctx, fs.Records()), fs, FetchError(fs)
}

// FetchError returns the first error of fs that is not a context's (the
// end of a poll's wait), naming its topic and partition, or nil.
func FetchError(fs kgo.Fetches) error {
	var fetchErr error
	fs.EachError(func(t string, p int32, err error) {
		if fetchErr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			fetchErr = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
		}
	})
	return fetchErr
}

// Process runs records through the current chain: each record's key and
// value through the deserializers (null data is never passed to them),
// then every record through the consume interceptors in order, in batches
// where an interceptor takes them (plugins.BatchConsumeInterceptor, as WASM
// plugins do). It changes the records in place, and says of each record
// whether it was delivered, filtered or failed. Records that ctx ended
// before every plugin ran on them fail with an error that wraps ctx's
// (IsInterrupted), whatever the plugins' policies: skip would deliver a
// record a plugin never saw.
func (c *Consumer) Process(ctx context.Context, rs []*kgo.Record) Consumed {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch := c.cur
	out := Consumed{ChainVersion: ch.version}
	if len(rs) == 0 {
		return out
	}
	// alive are the records not rejected yet, in order.
	alive := append(make([]*kgo.Record, 0, len(rs)), rs...)
	reject := func(r *kgo.Record, g *gate, err error, dropped bool) {
		rj := Rejected{Record: r, Plugin: g.name, Hook: g.hook, Err: err}
		if errors.Is(err, errInterrupted) {
			out.Failed = append(out.Failed, rj)
			return
		}
		if dropped || g.policy == DropRecord {
			out.Filtered = append(out.Filtered, rj)
		} else {
			out.Failed = append(out.Failed, rj)
		}
	}
	for _, ds := range []*deserializerSlot{ch.keyDe, ch.valueDe} {
		if ds != nil {
			alive = ds.run(ctx, alive, reject)
		}
	}
	var verdicts []plugins.Verdict
	var errs []error
	for _, s := range ch.ics {
		if len(alive) == 0 {
			break
		}
		if s.batch != nil && len(alive) > 1 {
			if cap(verdicts) < len(alive) {
				verdicts, errs = make([]plugins.Verdict, len(alive)), make([]error, len(alive))
			}
			alive = s.runBatch(ctx, alive, verdicts[:len(alive)], errs[:len(alive)], reject)
		} else {
			alive = s.run(ctx, alive, reject)
		}
	}
	out.Delivered = alive
	c.delivered.Add(uint64(len(out.Delivered)))
	c.filtered.Add(uint64(len(out.Filtered)))
	c.failed.Add(uint64(len(out.Failed)))
	return out
}

// run deserializes the key or value of every record of rs and returns those
// not rejected, in order, reusing rs.
func (ds *deserializerSlot) run(ctx context.Context, rs []*kgo.Record, reject func(*kgo.Record, *gate, error, bool)) []*kgo.Record {
	g := &ds.g
	kept := rs[:0]
	for _, r := range rs {
		field := &r.Value
		if ds.target == plugins.TargetKey {
			field = &r.Key
		}
		if *field == nil {
			kept = append(kept, r)
			continue
		}
		if interrupted(ctx, r, g, reject) {
			continue
		}
		var b []byte
		err := g.call(1, func() (err error) {
			b, err = ds.d.Deserialize(ctx, ds.target, r)
			return err
		})
		if err != nil {
			if interrupted(ctx, r, g, reject) {
				continue
			}
			g.failed(err)
			reject(r, g, g.recordError(err), false)
			continue
		}
		g.ok()
		*field = b
		kept = append(kept, r)
	}
	return kept
}

// run calls OnConsume for every record of rs, one at a time, and returns
// those not rejected, in order, reusing rs. A record the call failed on is
// restored to what it was before the call.
func (s *consumeSlot) run(ctx context.Context, rs []*kgo.Record, reject func(*kgo.Record, *gate, error, bool)) []*kgo.Record {
	g := &s.g
	kept := rs[:0]
	for _, r := range rs {
		if interrupted(ctx, r, g, reject) {
			continue
		}
		if !g.allow(1) {
			if !s.fail(r, g, nil, reject) {
				kept = append(kept, r)
			}
			continue
		}
		key, value, headers, ts := r.Key, r.Value, r.Headers, r.Timestamp
		var v plugins.Verdict
		err := g.call(1, func() (err error) {
			v, err = s.ic.OnConsume(ctx, r)
			return err
		})
		if err != nil {
			r.Key, r.Value, r.Headers, r.Timestamp = key, value, headers, ts
			if interrupted(ctx, r, g, reject) {
				continue
			}
			if !s.fail(r, g, err, reject) {
				kept = append(kept, r)
			}
			continue
		}
		g.ok()
		if v == plugins.Drop {
			g.st.drops.Add(1)
			reject(r, g, nil, true)
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// runBatch is run with one OnConsumeBatch call for all of rs.
func (s *consumeSlot) runBatch(ctx context.Context, rs []*kgo.Record, verdicts []plugins.Verdict, errs []error, reject func(*kgo.Record, *gate, error, bool)) []*kgo.Record {
	g := &s.g
	kept := rs[:0]
	if ctx.Err() != nil {
		for _, r := range rs {
			interrupted(ctx, r, g, reject)
		}
		return kept
	}
	if !g.allow(len(rs)) {
		for _, r := range rs {
			if !s.fail(r, g, nil, reject) {
				kept = append(kept, r)
			}
		}
		return kept
	}
	clear(errs)
	err := g.call(len(rs), func() error { return s.batch.OnConsumeBatch(ctx, rs, verdicts, errs) })
	for i, r := range rs {
		e := errs[i]
		if err != nil {
			e = err
		}
		switch {
		case e != nil && interrupted(ctx, r, g, reject):
		case e != nil:
			if !s.fail(r, g, e, reject) {
				kept = append(kept, r)
			}
		case verdicts[i] == plugins.Drop:
			g.ok()
			g.st.drops.Add(1)
			reject(r, g, nil, true)
		default:
			g.ok()
			kept = append(kept, r)
		}
	}
	return kept
}

// IsInterrupted reports whether err, a Rejected record's error, says that
// the record failed because the context of Process ended before the plugins
// had run on it, rather than because of a plugin.
func IsInterrupted(err error) bool { return errors.Is(err, errInterrupted) }

// errInterrupted marks the error of a record whose plugin call was not
// made, or was cut short, because the caller's context ended.
var errInterrupted = errors.New("not run: the consumer's context ended")

// interrupted fails r when ctx has ended, and reports whether it did. The
// record failed because the caller gave up, not because of the plugin: it
// is not counted as the plugin's failure, and the plugin's policy does not
// apply (skip would deliver a record the plugin never saw, say one it was
// to mask).
func interrupted(ctx context.Context, r *kgo.Record, g *gate, reject func(*kgo.Record, *gate, error, bool)) bool {
	err := ctx.Err()
	if err == nil {
		return false
	}
	reject(r, g, fmt.Errorf("%s %q: %s: %w: %w", kindName(g.kind), g.name, g.hook, errInterrupted, err), false)
	return true
}

// fail applies the failure policy to a record the interceptor failed on
// (err) or was bypassed on (err nil), and reports whether it rejected it.
func (s *consumeSlot) fail(r *kgo.Record, g *gate, err error, reject func(*kgo.Record, *gate, error, bool)) bool {
	if err != nil {
		g.failed(err)
	}
	if g.policy == SkipPlugin {
		return false
	}
	if g.policy == DropRecord {
		g.st.drops.Add(1)
	}
	reject(r, g, g.recordError(err), false)
	return true
}

// Swap replaces the Consumer's chain with one built from opts, which
// describe the whole chain as they would for NewConsumer (a plugin they do
// not name is absent); ConsumerLogger is refused. A Process running
// finishes on the chain it started with: Swap waits for it. Plugins of the
// old chain that the new one does not use are closed. It returns the new
// chain's version.
func (c *Consumer) Swap(ctx context.Context, opts ...ConsumerOption) (uint64, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o.applyConsumer(&cfg)
	}
	if cfg.notChainOpt {
		return 0, errors.New("pipeline: consumer swap: ConsumerLogger is not a chain option")
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pipeline: consumer swap: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return 0, fmt.Errorf("pipeline: consumer swap: %w", ErrClosed)
	}
	ch, err := c.newChain(cfg, c.cur.version+1)
	if err != nil {
		return 0, fmt.Errorf("pipeline: consumer swap: %w", err)
	}
	old := c.cur
	c.cur = ch
	if err := closeUnused(ctx, old.owned, ch.owned); err != nil {
		c.log.Warn("closing the plugins a swap dropped", "error", err)
	}
	return ch.version, nil
}

// closeUnused closes the plugins of owned that keep does not hold.
func closeUnused(ctx context.Context, owned, keep []any) error {
	var errs []error
	for _, p := range owned {
		used := false
		for _, k := range keep {
			if k == p {
				used = true
				break
			}
		}
		if cl, ok := p.(plugins.Closer); ok && !used {
			errs = append(errs, cl.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// ChainVersion returns the version of the current chain.
func (c *Consumer) ChainVersion() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur.version
}

// Stats returns the Consumer's counters: records by outcome (Delivered
// counts records handed to the application; InFlight is always 0) and one
// entry per plugin name and hook.
func (c *Consumer) Stats() Stats {
	return Stats{
		Delivered: c.delivered.Load(),
		Filtered:  c.filtered.Load(),
		Failed:    c.failed.Load(),
		Plugins:   c.hookStats.snapshot(),
	}
}

// Close closes the plugins of the current chain, after a Process running
// ends. Poll and Swap fail after it. It does not close the client.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	return closeUnused(ctx, c.cur.owned, nil)
}
