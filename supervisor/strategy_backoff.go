package supervisor

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Jitter selects how a Backoff randomises its delays.
type Jitter int

const (
	// DecorrelatedJitter draws each delay uniformly from [initial, min(max, previous*factor)].
	// It is the default because a restarted device never comes back sooner than initial
	// (full jitter may return ~0 and turn a crash into a hot loop), while many devices that
	// failed together (a shared bus or network outage) still spread their retries.
	DecorrelatedJitter Jitter = iota
	// FullJitter draws each delay uniformly from [0, min(max, initial*factor^(attempt-1))].
	FullJitter
	// NoJitter returns min(max, initial*factor^(attempt-1)) exactly; useful for tests.
	NoJitter
)

func (j Jitter) String() string {
	switch j {
	case DecorrelatedJitter:
		return "decorrelated"
	case FullJitter:
		return "full"
	case NoJitter:
		return "none"
	default:
		return "unknown"
	}
}

// Backoff is a capped exponential backoff. It is safe for concurrent use, but with
// DecorrelatedJitter each delay depends on the previous one, so give every retrying party
// its own instance (see Clone).
type Backoff struct {
	initial time.Duration
	max     time.Duration
	factor  float64
	jitter  Jitter
	rng     *lockedRand

	mu   sync.Mutex
	prev time.Duration
}

// NewBackoff returns a backoff starting at initial and growing by factor up to maxDelay, with
// DecorrelatedJitter. An optional rand source makes the jitter reproducible; without one the
// runtime's global generator is used. initial <= 0 becomes 1ms, maxDelay < initial becomes
// initial, factor < 1 becomes 1 (constant delay).
func NewBackoff(initial, maxDelay time.Duration, factor float64, src ...rand.Source) *Backoff {
	if initial <= 0 {
		initial = time.Millisecond
	}
	if maxDelay < initial {
		maxDelay = initial
	}
	if factor < 1 || math.IsNaN(factor) {
		factor = 1
	}
	b := &Backoff{initial: initial, max: maxDelay, factor: factor}
	if len(src) > 0 && src[0] != nil {
		b.rng = &lockedRand{r: rand.New(src[0])}
	}
	return b
}

// WithJitter sets the jitter mode and returns b, so it can be chained after NewBackoff.
func (b *Backoff) WithJitter(j Jitter) *Backoff {
	b.mu.Lock()
	b.jitter = j
	b.prev = 0
	b.mu.Unlock()
	return b
}

// Initial returns the smallest un-jittered delay.
func (b *Backoff) Initial() time.Duration { return b.initial }

// Max returns the cap.
func (b *Backoff) Max() time.Duration { return b.max }

// Clone returns a backoff with the same settings and random source but its own history.
func (b *Backoff) Clone() *Backoff {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &Backoff{initial: b.initial, max: b.max, factor: b.factor, jitter: b.jitter, rng: b.rng}
}

// Ceiling returns the un-jittered delay for a 1-based attempt: initial*factor^(attempt-1),
// capped at max. Attempts below 1 count as 1.
func (b *Backoff) Ceiling(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	// Computed in float64 so that large attempts saturate at max instead of overflowing.
	d := float64(b.initial) * math.Pow(b.factor, float64(attempt-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d >= float64(b.max) {
		return b.max
	}
	return time.Duration(d)
}

// Next returns the delay before the given 1-based attempt. Every result lies in [0, max];
// with DecorrelatedJitter it lies in [initial, max], and attempt only matters in that
// attempt <= 1 starts a new sequence.
func (b *Backoff) Next(attempt int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.jitter {
	case NoJitter:
		return b.Ceiling(attempt)
	case FullJitter:
		return b.between(0, b.Ceiling(attempt))
	default:
		if attempt <= 1 || b.prev < b.initial {
			b.prev = b.initial
		}
		hi := b.max
		if f := float64(b.prev) * b.factor; f < float64(b.max) {
			hi = time.Duration(f)
		}
		b.prev = b.between(b.initial, hi)
		return b.prev
	}
}

// between returns a uniform duration in [lo, hi].
func (b *Backoff) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(b.rng.int64n(int64(hi-lo)+1))
}

// lockedRand serialises a caller-supplied source: *rand.Rand is not safe for concurrent use
// and clones share it so that one seed reproduces a whole run.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) int64n(n int64) int64 {
	if l == nil {
		return rand.Int64N(n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}
