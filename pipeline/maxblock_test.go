package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// blockCtx ends with the wait for room (MaxBlock, or the record's context)
// only while Produce has not returned; once the record is admitted it is
// the record's own context.
func TestBlockCtx(t *testing.T) {
	t.Run("admitted before franz-go asks", func(t *testing.T) {
		rec, cancel := context.WithCancel(context.Background())
		c := &blockCtx{Context: rec, max: time.Millisecond}
		c.admitted()
		if c.Done() != rec.Done() || c.Err() != nil {
			t.Fatalf("admitted: Done %v (want the record's), Err %v", c.Done(), c.Err())
		}
		cancel()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("record context cancelled: Err %v", c.Err())
		}
	})
	t.Run("wait lasts MaxBlock", func(t *testing.T) {
		c := &blockCtx{Context: context.Background(), max: 5 * time.Millisecond}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the wait did not end after MaxBlock")
		}
		if err := c.Err(); !errors.Is(err, ErrBufferFull) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err %v, want ErrBufferFull", err)
		}
		c.admitted()
		if !errors.Is(c.Err(), ErrBufferFull) {
			t.Fatalf("an ended wait stays ended: Err %v", c.Err())
		}
	})
	t.Run("admitted during the wait", func(t *testing.T) {
		rec, cancel := context.WithCancel(context.Background())
		c := &blockCtx{Context: rec, max: 5 * time.Millisecond}
		wait := c.Done()
		c.admitted()
		time.Sleep(20 * time.Millisecond) // past MaxBlock: the wait must not end now
		select {
		case <-wait:
			t.Fatal("the wait's channel closed after the record was admitted")
		default:
		}
		if c.Err() != nil || c.Done() != rec.Done() {
			t.Fatalf("admitted: Err %v, Done not the record's", c.Err())
		}
		cancel()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("record context cancelled: Err %v", c.Err())
		}
	})
}

// A Swap that finds every slot of the admission word taken by a live chain
// fails, and nothing changes.
func TestSwapSlotsFull(t *testing.T) {
	tr, err := NewTrial(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := tr.p
	busy := &chain{version: 99}
	for i := 1; i < maxSlots; i++ {
		p.slots[i].Store(busy)
	}
	if _, err := p.Swap(context.Background()); err == nil {
		t.Fatal("Swap succeeded with every slot taken")
	}
	if v := p.ChainVersion(); v != 1 || p.current().retired.Load() {
		t.Fatalf("after a failed Swap: version %d, retired %v", v, p.current().retired.Load())
	}
	p.slots[maxSlots-1].Store(nil)
	v, err := p.Swap(context.Background())
	if err != nil || v != 2 || p.current() != p.slots[maxSlots-1].Load() {
		t.Fatalf("Swap with one slot free: version %d, %v", v, err)
	}
	if e := p.enter(); e.version != 2 {
		t.Fatalf("a record entered version %d, want 2", e.version)
	}
}
