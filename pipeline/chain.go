package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/kpipe/kpipe/plugins"
)

// A chain is one immutable version of the pipeline's plugins: the
// interceptors in order, the key and value serializers and the partitioner,
// each behind the gate of each of its hooks (its policy, breaker and
// counters). The Producer names the current chain in one atomic word
// (Producer.adm, see admission); a record takes the current chain when it
// enters (Send, SendSync) and runs every stage, and its acknowledgements, on
// it. Swap replaces the chain the word names; the chain it replaces
// retires, and its plugins that no live chain uses are closed once its last
// record settled.
type chain struct {
	version uint64
	slot    uint64      // its index in Producer.slots
	cfg     chainConfig // what the chain was built from
	ics     []*interceptorSlot
	keySer  *serializerSlot // nil: keys are sent as they are
	valSer  *serializerSlot
	part    *partitionerSlot
	// batching: with stage batching on, records of this chain are queued
	// for stage batches (an interceptor or the partitioner takes batches).
	batching bool
	// ackBatchers has bit i set if interceptor i takes acknowledgements
	// in batches (with stage batching on).
	ackBatchers uint64
	// owned are the chain's plugins, for closing.
	owned []any

	// start is the count of records admitted onto chains (see
	// admission) when the chain became current; only Swap, under swapMu,
	// uses it.
	start uint64
	// entered is how many records entered the chain, known once a Swap
	// replaced it: written before retired is set, read only after.
	entered int64
	// settled counts the chain's records that settled (their callback
	// ran); once retired, its records in flight are entered - settled.
	// The completion side writes it for every record next to fields the
	// Send side reads for every record: padding it apart measured no gain
	// in BenchmarkProduce/builtin (RATIONALE.md, "Padding").
	settled atomic.Int64
	// retired is set when a Swap replaced the chain; the completion side
	// reads it for every record, and it is written once.
	retired atomic.Bool
	closed  atomic.Bool // its plugins were handed for closing
}

type interceptorSlot struct {
	ic    plugins.Interceptor
	acks  bool                     // OnAck is called: ic does not say it wants none (plugins.AckObserver)
	batch plugins.BatchInterceptor // ic, if it takes batches and StageBatch is on
	ackB  plugins.AckBatcher       // ic, if it wants acks in batches and StageBatch is on
	send  gate                     // a failing OnSend does not bypass a working OnAck
	ack   gate
}

type serializerSlot struct {
	s      plugins.Serializer
	target plugins.Target
	g      gate
}

type partitionerSlot struct {
	p        plugins.Partitioner         // nil: the built-in default, run by the pipeline itself
	perTopic plugins.PerTopicPartitioner // nil if p keeps no per-topic state
	explicit bool                        // p requires explicit partitions
	bp       plugins.BatchPartitioner    // p, if it takes batches and keeps no per-topic state; nil without StageBatch
	g        gate
}

// newChain builds chain version from cc. It validates what New and Swap
// would otherwise find out record by record.
func (p *Producer) newChain(cc chainConfig, version uint64) (*chain, error) {
	if len(cc.interceptors) > 64 {
		return nil, fmt.Errorf("%d interceptors, at most 64 are supported", len(cc.interceptors))
	}
	ch := &chain{version: version, cfg: cc}
	batching := p.stage != nil
	initGate := func(g *gate, np *namedPlugin, kind plugins.Kind, hook Hook) error {
		g.log, g.name, g.kind, g.hook, g.st = p.log, np.name, kind, hook, p.statsFor(np.name, kind, hook)
		g.policy = policies(kind)[0]
		if f := np.opts.policy; f != 0 {
			if err := CheckFailurePolicy(kind, f); err != nil {
				return fmt.Errorf("%s %q: %w", kindName(kind), np.name, err)
			}
			g.policy = f
		}
		if kind != plugins.KindSerializer {
			threshold, cooldown := cc.cbThreshold, cc.cbCooldown
			if np.opts.breakerSet {
				threshold, cooldown = np.opts.cbThreshold, np.opts.cbCooldown
			}
			g.br.configure(threshold, cooldown)
		}
		return nil
	}
	for i := range cc.interceptors {
		np := &cc.interceptors[i]
		ic, _ := np.plugin.(plugins.Interceptor)
		if ic == nil {
			return nil, fmt.Errorf("interceptor %q is nil", np.name)
		}
		acks := true
		if ao, ok := ic.(plugins.AckObserver); ok {
			acks = ao.WantsAcks()
		}
		s := &interceptorSlot{ic: ic, acks: acks}
		if err := initGate(&s.send, np, plugins.KindInterceptor, HookOnSend); err != nil {
			return nil, err
		}
		if acks {
			_ = initGate(&s.ack, np, plugins.KindInterceptor, HookOnAck)
		}
		if batching {
			s.batch, _ = ic.(plugins.BatchInterceptor)
			if acks {
				if s.ackB, _ = ic.(plugins.AckBatcher); s.ackB != nil {
					ch.ackBatchers |= 1 << i
				}
			}
			ch.batching = ch.batching || s.batch != nil || s.ackB != nil
		}
		ch.ics = append(ch.ics, s)
		ch.owned = append(ch.owned, ic)
	}
	for _, sc := range []struct {
		np     *namedPlugin
		target plugins.Target
		hook   Hook
		dst    **serializerSlot
	}{{cc.keySer, plugins.TargetKey, HookSerializeKey, &ch.keySer}, {cc.valSer, plugins.TargetValue, HookSerializeValue, &ch.valSer}} {
		if sc.np == nil || sc.np.plugin == nil {
			continue // sent as they are
		}
		ss := &serializerSlot{s: sc.np.plugin.(plugins.Serializer), target: sc.target}
		if err := initGate(&ss.g, sc.np, plugins.KindSerializer, sc.hook); err != nil {
			return nil, err
		}
		*sc.dst = ss
		ch.owned = append(ch.owned, sc.np.plugin)
	}
	np := cc.part
	if np == nil {
		np = &namedPlugin{name: plugins.PartitionerDefault}
	} else if np.name == "" {
		np.name = plugins.PartitionerDefault
	}
	ps := &partitionerSlot{}
	if err := initGate(&ps.g, np, plugins.KindPartitioner, HookPartition); err != nil {
		return nil, err
	}
	if pp, _ := np.plugin.(plugins.Partitioner); pp != nil {
		ps.p = pp
		ps.perTopic, _ = pp.(plugins.PerTopicPartitioner)
		if ep, ok := pp.(plugins.ExplicitPartitioner); ok {
			ps.explicit = ep.RequiresExplicitPartition()
		}
		if batching && ps.perTopic == nil && !ps.explicit {
			ps.bp, _ = pp.(plugins.BatchPartitioner)
		}
		ch.batching = ch.batching || ps.bp != nil
		ch.owned = append(ch.owned, pp)
	}
	ch.part = ps
	return ch, nil
}

func policyList(ps []FailurePolicy) string {
	s := ""
	for i, f := range ps {
		if i > 0 {
			s += " or "
		}
		s += f.String()
	}
	return s
}

// Swap builds a new chain from opts and makes it current in one atomic
// step; it returns the new chain's version. opts describe the whole chain,
// as they would for New: a plugin they do not name is absent (the
// serializers send data as it is, the partitioner is the built-in default),
// and the circuit breaker has its default unless CircuitBreaker is given.
// Only chain options are allowed (Interceptor, KeySerializer,
// ValueSerializer, Partitioner, CircuitBreaker); any other option, an
// invalid chain, a closed producer, a ctx already done or 1024 chains live
// at once (the current one and retired ones with records in flight) makes
// Swap fail, and nothing changes.
//
// Records already in the pipeline finish on the chain they entered: all
// their stages and acknowledgements run on it, never on a mix of two
// versions, and none is lost or run twice. Results carry the version that
// handled the record (Result.ChainVersion). Once the last record of the
// retired chain settled, its plugins that no live chain uses are closed if
// they implement plugins.Closer: a plugin left out of a swap must not be
// given to a later one. Plugins that both chains use carry over, but their
// circuit breakers start closed. Stats keeps one entry per plugin name and
// hook: a plugin swapped in under a name used before adds to its counts.
func (p *Producer) Swap(ctx context.Context, opts ...Option) (version uint64, err error) {
	cc := defaultChainConfig()
	for i, o := range opts {
		co, ok := o.(chainOption)
		if !ok {
			return 0, fmt.Errorf("pipeline: swap: option %d (%T) is not a chain option (Interceptor, KeySerializer, ValueSerializer, Partitioner or CircuitBreaker)", i+1, o)
		}
		co(&cc)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pipeline: swap: %w", err)
	}
	p.swapMu.Lock()
	defer p.swapMu.Unlock()
	return p.swapLocked(cc)
}

// The admission word, Producer.adm, holds the slot of the current chain
// (Producer.slots) in its top bits and the count of records admitted onto
// chains below them. A record enters with one atomic add, which both counts
// it and tells it its chain; Swap changes the slot with a compare-and-swap,
// so every record admitted before it counts on the old chain and every
// record after it on the new one, and the old chain's total is exact.
const (
	slotBits  = 10
	slotShift = 64 - slotBits
	countMask = 1<<slotShift - 1
	// maxSlots is how many chains can be live at once: the current one
	// and retired ones with records in flight.
	maxSlots = 1 << slotBits
)

// initChains makes ch, version 1, the current chain.
func (p *Producer) initChains(ch *chain) {
	p.slots = new([maxSlots]atomic.Pointer[chain])
	p.slots[0].Store(ch)
	p.live = []*chain{ch}
}

// current returns the current chain.
func (p *Producer) current() *chain { return p.slots[p.adm.Load()>>slotShift].Load() }

// swapLocked is Swap; the caller holds swapMu.
func (p *Producer) swapLocked(cc chainConfig) (uint64, error) {
	if p.closed.Load() {
		return 0, fmt.Errorf("pipeline: swap: %w", ErrClosed)
	}
	old := p.current()
	slot := -1
	for i := range p.slots {
		if p.slots[i].Load() == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		return 0, fmt.Errorf("pipeline: swap: %d chains still have records in flight", maxSlots)
	}
	ch, err := p.newChain(cc, old.version+1)
	if err != nil {
		return 0, fmt.Errorf("pipeline: swap: %w", err)
	}
	ch.slot = uint64(slot)
	p.live = append(p.live, ch)
	p.slots[slot].Store(ch)
	for {
		w := p.adm.Load()
		if p.adm.CompareAndSwap(w, ch.slot<<slotShift|w&countMask) {
			ch.start = w & countMask
			old.entered = int64((ch.start - old.start) & countMask)
			break
		}
	}
	old.retired.Store(true)
	p.maybeRetire(old)
	return ch.version, nil
}

// ChainVersion returns the version of the current chain: 1 for the chain
// New built, one more for each successful Swap.
func (p *Producer) ChainVersion() uint64 { return p.current().version }

// enter counts a record admitted and returns the chain it runs on: the
// current one. The chain cannot retire and be closed before the record
// settles (leave), as it counts the record.
func (p *Producer) enter() *chain {
	return p.slots[p.adm.Add(1)>>slotShift].Load()
}

// leave notes that a record of ch settled.
func (p *Producer) leave(ch *chain) {
	ch.settled.Add(1)
	if ch.retired.Load() {
		p.maybeRetire(ch)
	}
}

// maybeRetire closes the plugins of retired chain ch that no live chain
// uses, once every record that entered ch settled, and frees its slot. It
// runs once per chain, on a goroutine of its own: closing a WASM plugin
// takes milliseconds.
func (p *Producer) maybeRetire(ch *chain) {
	if ch.settled.Load() != ch.entered || !ch.closed.CompareAndSwap(false, true) {
		return
	}
	p.closers.Add(1)
	go func() {
		defer p.closers.Done()
		p.swapMu.Lock()
		defer p.swapMu.Unlock()
		for i, c := range p.live {
			if c == ch {
				p.live = append(p.live[:i], p.live[i+1:]...)
				break
			}
		}
		// No record can look for ch any more: every record admitted
		// with its slot settled.
		p.slots[ch.slot].Store(nil)
		ctx, cancel := context.WithTimeout(context.Background(), pluginCloseTimeout)
		defer cancel()
		for _, pl := range ch.owned {
			if !usedBy(pl, p.live) {
				p.closePlugin(ctx, pl)
			}
		}
	}()
}

// pluginCloseTimeout bounds the closing of one retired chain's plugins.
const pluginCloseTimeout = 10 * time.Second

// closeLive closes the plugins of every live chain; Close calls it once
// every record settled.
func (p *Producer) closeLive(ctx context.Context) error {
	p.closers.Wait()
	p.swapMu.Lock()
	defer p.swapMu.Unlock()
	var errs []error
	var done []any
	for _, ch := range p.live {
		for _, pl := range ch.owned {
			if !contains(done, pl) {
				done = append(done, pl)
				errs = append(errs, p.closePlugin(ctx, pl))
			}
		}
	}
	p.live = nil
	return errors.Join(errs...)
}

func (p *Producer) closePlugin(ctx context.Context, pl any) error {
	c, ok := pl.(plugins.Closer)
	if !ok {
		return nil
	}
	if err := c.Close(ctx); err != nil {
		p.log.Warn("closing a plugin failed", "error", err)
		return err
	}
	return nil
}

// usedBy reports whether a live chain uses pl.
func usedBy(pl any, live []*chain) bool {
	for _, c := range live {
		if contains(c.owned, pl) {
			return true
		}
	}
	return false
}

// contains reports whether pl is in list. A plugin of an uncomparable type
// (a func, say) is never found: such plugins hold nothing to close.
func contains(list []any, pl any) bool {
	t := reflect.TypeOf(pl)
	if !t.Comparable() {
		return false
	}
	for _, o := range list {
		if reflect.TypeOf(o) == t && o == pl {
			return true
		}
	}
	return false
}
