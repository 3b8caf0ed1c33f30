package ratelimit

import (
	"sync"
	"time"
)

// DefaultLineInterval is the interval of a Lines whose Interval is zero.
const DefaultLineInterval = 30 * time.Second

// Lines lets one log line through per Interval and counts the lines it
// refuses in between, so a flood (a dead device, a broken payload stream)
// costs one line per interval and the next line that passes says how many
// were suppressed. It is a Limiter of one unit per Interval. The zero value
// is ready; safe for concurrent use.
type Lines struct {
	// Interval is the least time between two lines (0: DefaultLineInterval).
	// Set it before the first Allow.
	Interval time.Duration

	mu         sync.Mutex
	lines      Limiter
	suppressed int
}

// Allow reports whether a line may be logged at now and, when it may, how
// many lines were refused since the last one that was; a refusal is counted.
func (r *Lines) Allow(now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lines.Limited() {
		iv := r.Interval
		if iv <= 0 {
			iv = DefaultLineInterval
		}
		r.lines.SetWindows([]Window{{Count: 1, Per: iv}})
	}
	if !r.lines.Allow(now, 1) {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.suppressed = 0
	return true, n
}

// Reset forgets the last line and the refusals, so the next line passes
// (a device that answers again starts a fresh episode).
func (r *Lines) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines, r.suppressed = Limiter{}, 0
}

// KeyedLines is a Lines per key, for one component's different warnings
// (corrupt records, refused messages) that must not silence each other.
// The zero value is ready; safe for concurrent use.
type KeyedLines struct {
	// Interval applies to every key (0: DefaultLineInterval).
	Interval time.Duration

	mu   sync.Mutex
	keys map[string]*Lines
}

// Allow is Lines.Allow for key.
func (k *KeyedLines) Allow(key string, now time.Time) (ok bool, suppressed int) {
	k.mu.Lock()
	if k.keys == nil {
		k.keys = map[string]*Lines{}
	}
	l := k.keys[key]
	if l == nil {
		l = &Lines{Interval: k.Interval}
		k.keys[key] = l
	}
	k.mu.Unlock()
	return l.Allow(now)
}
