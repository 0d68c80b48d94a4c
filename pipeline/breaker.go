package pipeline

import (
	"sync/atomic"
	"time"
)

// breaker is one plugin hook's circuit breaker; see CircuitBreaker. It
// counts records: failure is called once per record the plugin failed on,
// success once per record it served, in the order of the records.
//
// Closed (openUntil 0), every call is allowed. After threshold consecutive
// failures it opens until openUntil: calls are bypassed. Once openUntil has
// passed it is half-open: the first caller of allow wins the trial (trial
// set) and is let through, every other caller is bypassed until the trial's
// first record settles it: a success closes the breaker, a failure opens it
// again for twice the previous cool-down, up to maxCooldownFactor times.
type breaker struct {
	threshold int32
	cooldown  int64
	fails     atomic.Int32 // consecutive failed records while closed
	streak    atomic.Int32 // openings since the last success
	openUntil atomic.Int64 // unix nanos; 0 when closed
	trial     atomic.Bool  // a half-open trial call is in progress
}

const maxCooldownFactor = 16

// configure sets the breaker's threshold and cool-down; see CircuitBreaker.
func (b *breaker) configure(threshold int, cooldown time.Duration) {
	b.threshold, b.cooldown = int32(min(threshold, 1<<30)), int64(cooldown)
}

// allow reports whether the plugin may be called now. A caller it lets
// through while half-open holds the trial: it must report the call's first
// record with success or failure.
func (b *breaker) allow() bool {
	u := b.openUntil.Load()
	if u == 0 {
		return true
	}
	return time.Now().UnixNano() >= u && !b.trial.Load() && b.trial.CompareAndSwap(false, true)
}

// success notes a record the plugin served: the failure count restarts,
// and a trial closes the breaker.
func (b *breaker) success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.openUntil.Load() != 0 && b.trial.Load() {
		b.openUntil.Store(0)
		b.streak.Store(0)
		b.trial.Store(false)
	}
}

// failure notes a record the plugin failed on, and returns the cool-down if
// it opened the breaker, or 0.
func (b *breaker) failure() time.Duration {
	if b.threshold <= 0 {
		return 0
	}
	if b.openUntil.Load() == 0 {
		if b.fails.Add(1) < b.threshold {
			return 0
		}
	} else if !b.trial.Load() {
		// A record of a call let through before the breaker opened:
		// it is open already.
		return 0
	}
	// The threshold is reached, or the half-open trial failed.
	b.fails.Store(0)
	streak := b.streak.Add(1)
	factor := int64(1) << min(streak-1, 4)
	d := b.cooldown * min(factor, maxCooldownFactor)
	b.openUntil.Store(time.Now().UnixNano() + d)
	b.trial.Store(false)
	return time.Duration(d)
}
