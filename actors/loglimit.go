package actors

import (
	"sync"
	"time"
)

// logLimiter rate-limits log lines per key: one line per key and interval,
// the lines refused in between counted and reported with the next one
// ("suppressed"), so a flood (a corrupt journal, a platform refusing every
// message) costs a line per interval and the log still adds up. The zero
// value is ready; safe for concurrent use.
type logLimiter struct {
	mu   sync.Mutex
	keys map[string]*rateLimiter
}

// allow reports whether a line for key may be logged now and how many lines
// for key were suppressed since the last one that was.
func (l *logLimiter) allow(key string) (bool, int) {
	l.mu.Lock()
	if l.keys == nil {
		l.keys = map[string]*rateLimiter{}
	}
	r := l.keys[key]
	if r == nil {
		r = &rateLimiter{}
		l.keys[key] = r
	}
	l.mu.Unlock()
	if !r.allow(time.Now()) {
		return false, 0
	}
	return true, r.takeSuppressed()
}
