package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of a Gate; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed, like time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Gate makes a group of Limiters safe for concurrent use and lets callers
// wait for room in several of them at once. Every use of those limiters
// must go through the gate (Wait, or Do for anything else). The zero value
// uses the real clock.
type Gate struct {
	mu    sync.Mutex
	Clock Clock
}

func (g *Gate) clock() Clock {
	if g.Clock == nil {
		return realClock{}
	}
	return g.Clock
}

// Wait blocks until every cost fits, takes them all at once and returns
// how long it waited. It gives up with ctx's error, taking nothing.
func (g *Gate) Wait(ctx context.Context, costs ...Cost) (time.Duration, error) {
	c := g.clock()
	var start time.Time
	for {
		g.mu.Lock()
		now := c.Now()
		if start.IsZero() {
			start = now
		}
		d := DelayAll(now, costs...)
		if d <= 0 {
			TakeAll(now, costs...)
			g.mu.Unlock()
			return now.Sub(start), nil
		}
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return c.Now().Sub(start), ctx.Err()
		case <-c.After(d):
		}
	}
}

// Do runs f with the gate held: for Exhaust, Succeeded, SetWindows and
// reads of the gate's limiters.
func (g *Gate) Do(f func(now time.Time)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g.clock().Now())
}
