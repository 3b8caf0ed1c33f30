package ratelimit

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want []Window
		err  bool
	}{
		{"", nil, false},
		{"0:0,", nil, false},
		{"10:1,300:60", []Window{{10, time.Second}, {300, time.Minute}}, false},
		{" 10:1 ; 300:60 ;", []Window{{10, time.Second}, {300, time.Minute}}, false},
		{"10:1;0:60", []Window{{10, time.Second}}, false},
		{"10", nil, true},
		{"a:1", nil, true},
		{"-1:1", nil, true},
		{"1:99999999999", nil, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if (err != nil) != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestScale(t *testing.T) {
	got := Scale([]Window{{10, time.Second}, {300, time.Minute}, {1, time.Hour}}, 0.8)
	want := []Window{{8, time.Second}, {240, time.Minute}, {1, time.Hour}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Scale = %v, want %v", got, want)
	}
	if Scale(nil, 0.8) != nil {
		t.Fatal("Scale(nil) not nil")
	}
}

func TestUnlimited(t *testing.T) {
	var nilL *Limiter
	for _, l := range []*Limiter{nilL, {}, New()} {
		if l.Limited() || l.Delay(t0, 1e9) != 0 || !l.Allow(t0, 1e9) {
			t.Fatalf("%v limits", l)
		}
		if _, ok := l.Exhaust(t0); ok {
			t.Fatal("an unlimited limiter was exhausted")
		}
	}
}

func TestMultiWindow(t *testing.T) {
	l := New(Window{5, 10 * time.Second}, Window{3, time.Second})
	for i := 0; i < 3; i++ {
		if !l.Allow(at(0), 1) {
			t.Fatalf("take %d refused", i)
		}
	}
	// The 1 s window is full: room once the first takes are a second old.
	if d := l.Delay(at(0), 1); d != time.Second {
		t.Fatalf("delay = %v, want 1s", d)
	}
	if l.Allow(at(999*time.Millisecond), 1) {
		t.Fatal("allowed inside the full 1 s window")
	}
	if !l.Allow(at(time.Second), 2) {
		t.Fatal("refused after the 1 s window passed")
	}
	// Now the 10 s window holds 5: nothing until the first three expire.
	if d := l.Delay(at(2*time.Second), 1); d != 8*time.Second {
		t.Fatalf("delay = %v, want 8s (10 s window)", d)
	}
	// Three units free at 10 s, but a take of 4 needs the t=1s ones too.
	if d := l.Delay(at(10*time.Second), 4); d != time.Second {
		t.Fatalf("delay for 4 = %v, want 1s", d)
	}
	if !l.Allow(at(10*time.Second), 3) {
		t.Fatal("refused after the 10 s window passed")
	}
}

// TestSlidingWindowNeverExceeds drives random takes and checks every
// interval of each window's length, the guarantee the package gives.
func TestSlidingWindowNeverExceeds(t *testing.T) {
	ws := []Window{{8, time.Second}, {20, 5 * time.Second}}
	l := New(ws...)
	r := rand.New(rand.NewPCG(1, 2))
	type take struct {
		at time.Duration
		n  int
	}
	var taken []take
	now := time.Duration(0)
	for i := 0; i < 5000; i++ {
		now += time.Duration(r.IntN(200)) * time.Millisecond
		n := 1 + r.IntN(4)
		if l.Allow(at(now), n) {
			taken = append(taken, take{now, n})
		}
	}
	if len(taken) < 100 {
		t.Fatalf("only %d takes allowed", len(taken))
	}
	for _, w := range ws {
		for i, first := range taken {
			sum := 0
			for _, x := range taken[i:] {
				if x.at-first.at >= w.Per {
					break
				}
				sum += x.n
			}
			if sum > w.Count {
				t.Fatalf("window %v: %d units in [%v, %v)", w, sum, first.at, first.at+w.Per)
			}
		}
	}
}

func TestOversizeGoesAloneWhenEmpty(t *testing.T) {
	l := New(Window{5, time.Second})
	l.Take(at(0), 2)
	// 12 never fits in 5: it waits until the window is empty, then goes.
	if d := l.Delay(at(0), 12); d != time.Second {
		t.Fatalf("delay = %v, want 1s", d)
	}
	if !l.Allow(at(time.Second), 12) {
		t.Fatal("oversize take refused on an empty window")
	}
	// It fills the window for a whole period.
	if d := l.Delay(at(time.Second), 1); d != time.Second {
		t.Fatalf("delay after oversize = %v, want 1s", d)
	}
	if !l.Allow(at(2*time.Second), 5) {
		t.Fatal("refused after the oversize take expired")
	}
}

func TestExhaust(t *testing.T) {
	l := New(Window{10, time.Second}, Window{100, time.Minute})
	w, ok := l.Exhaust(at(0))
	if !ok || w.Per != time.Second {
		t.Fatalf("first exhaust closed %v %v, want the 1 s window", w, ok)
	}
	if d := l.Delay(at(0), 1); d != time.Second {
		t.Fatalf("delay = %v, want 1s", d)
	}
	// More refusals of the same burst change nothing.
	if _, ok := l.Exhaust(at(500 * time.Millisecond)); ok {
		t.Fatal("second exhaust of one episode closed another window")
	}
	if d := l.Delay(at(500*time.Millisecond), 1); d != 500*time.Millisecond {
		t.Fatalf("delay = %v, want 500ms", d)
	}
	// Refused again once reopened, with no success in between: the
	// minute window closes.
	w, ok = l.Exhaust(at(time.Second))
	if !ok || w.Per != time.Minute {
		t.Fatalf("escalation closed %v %v, want the 1 min window", w, ok)
	}
	if d := l.Delay(at(time.Second), 1); d != time.Minute {
		t.Fatalf("delay = %v, want 1m", d)
	}
	// After a success the next refusal starts at the shortest window.
	l.Succeeded()
	w, ok = l.Exhaust(at(2 * time.Minute))
	if !ok || w.Per != time.Second {
		t.Fatalf("after success closed %v %v, want the 1 s window", w, ok)
	}
}

func TestSetWindowsKeepsHistory(t *testing.T) {
	l := New(Window{10, time.Second})
	l.Take(at(0), 10)
	l.SetWindows([]Window{{20, time.Second}, {15, time.Minute}})
	if !l.Allow(at(0), 5) {
		t.Fatal("refused within the raised 1 s limit")
	}
	if d := l.Delay(at(0), 6); d != time.Second {
		t.Fatalf("delay = %v, want 1s: the 1 s window kept its 10 units", d)
	}
	if got := l.Windows(); !reflect.DeepEqual(got, []Window{{20, time.Second}, {15, time.Minute}}) {
		t.Fatalf("windows = %v", got)
	}
}

func TestCoalescedEntriesErrOnTheSafeSide(t *testing.T) {
	l := New(Window{100, 64 * time.Second}) // slots of 1 s
	l.Take(at(0), 50)
	l.Take(at(900*time.Millisecond), 50)
	// Both share one entry that expires with the later take.
	if d := l.Delay(at(64*time.Second), 1); d != 900*time.Millisecond {
		t.Fatalf("delay = %v, want 900ms", d)
	}
}

// fakeClock fires After channels when advanced.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waiting chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	c.waiting <- struct{}{}
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !c.now.Before(w.at) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func TestGateWaitsForAllCosts(t *testing.T) {
	clk := &fakeClock{now: t0, waiting: make(chan struct{}, 16)}
	g := &Gate{Clock: clk}
	msgs := New(Window{2, time.Second})
	points := New(Window{10, time.Second})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if d, err := g.Wait(ctx, Cost{msgs, 1}, Cost{points, 4}); d != 0 || err != nil {
			t.Fatalf("wait %d: %v %v", i, d, err)
		}
	}
	done := make(chan time.Duration)
	go func() {
		d, _ := g.Wait(ctx, Cost{msgs, 1}, Cost{points, 4})
		done <- d
	}()
	<-clk.waiting
	clk.advance(time.Second)
	if d := <-done; d != time.Second {
		t.Fatalf("waited %v, want 1s", d)
	}
	// A cancelled wait takes nothing.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		// 4 points of the last second are taken: 7 more do not fit.
		_, err := g.Wait(cctx, Cost{msgs, 1}, Cost{points, 7})
		done <- map[bool]time.Duration{true: -1}[err != nil]
	}()
	<-clk.waiting
	cancel()
	if d := <-done; d != -1 {
		t.Fatal("cancelled wait did not fail")
	}
	g.Do(func(now time.Time) {
		if d := points.Delay(now, 6); d != 0 {
			t.Fatalf("cancelled wait took units: delay %v", d)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0:0,", "10:1,300:60", "10:1;300:60;", " 1 : 2 ", "a:b", "1:-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ws, err := Parse(s)
		if err != nil {
			return
		}
		l := New(ws...)
		for _, w := range ws {
			if w.Count <= 0 || w.Per <= 0 {
				t.Fatalf("Parse(%q) gave %v", s, w)
			}
		}
		// Whatever the limits, a take eventually fits.
		now := t0
		for i := 0; i < 3; i++ {
			now = now.Add(l.Delay(now, 5))
			if !l.Allow(now, 5) {
				t.Fatalf("Parse(%q): take refused after its delay", s)
			}
		}
	})
}
