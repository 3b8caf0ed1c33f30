package supervisor

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestBackoffNoJitterGrowsAndCaps(t *testing.T) {
	b := NewBackoff(10*time.Millisecond, 100*time.Millisecond, 2).WithJitter(NoJitter)
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := b.Next(i + 1); got != w*time.Millisecond {
			t.Errorf("attempt %d: got %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.Next(0); got != 10*time.Millisecond {
		t.Errorf("attempt 0: got %v, want initial", got)
	}
	// Large attempts must saturate, not overflow into negative durations.
	for _, a := range []int{64, 1000, 1 << 30} {
		if got := b.Next(a); got != 100*time.Millisecond {
			t.Errorf("attempt %d: got %v, want cap", a, got)
		}
	}
}

func TestBackoffNormalisesArguments(t *testing.T) {
	b := NewBackoff(0, -time.Second, 0.5).WithJitter(NoJitter)
	if b.Initial() != time.Millisecond || b.Max() != time.Millisecond {
		t.Fatalf("got initial %v max %v", b.Initial(), b.Max())
	}
	if got := b.Next(10); got != time.Millisecond {
		t.Fatalf("factor < 1 must give a constant delay, got %v", got)
	}
}

func TestBackoffFullJitterBounds(t *testing.T) {
	const initial, ceiling = 10 * time.Millisecond, time.Second
	b := NewBackoff(initial, ceiling, 2, rand.NewPCG(1, 2)).WithJitter(FullJitter)
	for attempt := 1; attempt <= 20; attempt++ {
		ceil := b.Ceiling(attempt)
		var lo, hi time.Duration = ceil, 0
		for range 500 {
			d := b.Next(attempt)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 500 uniform samples leave each outer quarter empty with probability 0.75^500.
		if lo > ceil/4 || hi < ceil*3/4 {
			t.Errorf("attempt %d: samples [%v, %v] do not spread over [0, %v]", attempt, lo, hi, ceil)
		}
	}
}

func TestBackoffDecorrelatedBounds(t *testing.T) {
	const initial, ceiling = 10 * time.Millisecond, 500 * time.Millisecond
	b := NewBackoff(initial, ceiling, 3, rand.NewPCG(3, 4))
	sawCap := false
	for run := 0; run < 50; run++ {
		prev := initial
		for attempt := 1; attempt <= 30; attempt++ {
			d := b.Next(attempt)
			if d < initial || d > ceiling {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, initial, ceiling)
			}
			if attempt == 1 {
				prev = initial
			}
			if limit := min(ceiling, 3*prev); d > limit {
				t.Fatalf("attempt %d: %v above 3*previous (%v)", attempt, d, limit)
			}
			prev = d
			sawCap = sawCap || d > ceiling*3/4
		}
	}
	if !sawCap {
		t.Error("decorrelated jitter never approached the cap")
	}
}

func TestBackoffSeedReproducible(t *testing.T) {
	a := NewBackoff(time.Millisecond, time.Second, 2, rand.NewPCG(7, 7))
	b := NewBackoff(time.Millisecond, time.Second, 2, rand.NewPCG(7, 7))
	for i := 1; i <= 50; i++ {
		if x, y := a.Next(i), b.Next(i); x != y {
			t.Fatalf("attempt %d: %v != %v", i, x, y)
		}
	}
}

func TestBackoffConcurrentUse(t *testing.T) {
	b := NewBackoff(time.Millisecond, time.Second, 2, rand.NewPCG(1, 1)).WithJitter(FullJitter)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := b.Clone()
			for i := 1; i <= 1000; i++ {
				if d := b.Next(i % 12); d < 0 || d > time.Second {
					t.Errorf("goroutine %d: %v out of range", g, d)
				}
				if d := c.Next(i % 12); d < 0 || d > time.Second {
					t.Errorf("goroutine %d clone: %v out of range", g, d)
				}
			}
		}()
	}
	wg.Wait()
}
