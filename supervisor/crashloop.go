package supervisor

import "time"

// CrashLoop decides whether one child is crash-looping. Limit failures within window make
// it unhealthy; a child that then stays up for the quiet period is healthy again and its
// history is forgotten. It stores at most limit timestamps, unlike protoactor's
// RestartStatistics, whose failure list is never trimmed for children that fail now and
// then (upstream #712).
//
// The caller passes the clock in, which keeps the type deterministic under test. It is not
// safe for concurrent use; Strategy guards it with its own lock.
type CrashLoop struct {
	limit  int
	window time.Duration
	quiet  time.Duration

	times     []time.Time // ring of the last limit failure times
	next      int
	count     int
	streak    int
	unhealthy bool
	up        time.Time // when the child was last (re)started; may lie in the future while a restart is pending
}

// NewCrashLoop returns the accounting for one child. limit <= 0 disables the unhealthy
// verdict (streaks are still counted). window <= 0 means limit failures in one streak are
// enough, however far apart. quiet <= 0 defaults to window, or to one minute without one.
func NewCrashLoop(limit int, window, quiet time.Duration) *CrashLoop {
	c := &CrashLoop{}
	c.init(limit, window, quiet)
	return c
}

func (c *CrashLoop) init(limit int, window, quiet time.Duration) {
	if quiet <= 0 {
		quiet = window
	}
	if quiet <= 0 {
		quiet = time.Minute
	}
	c.limit, c.window, c.quiet = limit, window, quiet
	if limit > 0 {
		c.times = make([]time.Time, limit)
	}
}

// Failure records a failure at now. It returns the number of failures in the current streak
// (1 for the first failure after a quiet period), which is the backoff attempt, and whether
// the child is now unhealthy.
func (c *CrashLoop) Failure(now time.Time) (streak int, unhealthy bool) {
	if c.recovered(now) {
		c.reset()
	}
	c.streak++
	if c.limit > 0 {
		c.times[c.next] = now
		c.next = (c.next + 1) % c.limit
		if c.count < c.limit {
			c.count++
		}
		// After advancing, c.next is the oldest of the last limit failures.
		if c.count == c.limit && (c.window <= 0 || now.Sub(c.times[c.next]) < c.window) {
			c.unhealthy = true
		}
	}
	return c.streak, c.unhealthy
}

// Restarted records when the child is running again; pass the time the restart fires.
func (c *CrashLoop) Restarted(at time.Time) { c.up = at }

// Unhealthy reports whether the child is crash-looping at now.
func (c *CrashLoop) Unhealthy(now time.Time) bool {
	return c.unhealthy && !c.recovered(now)
}

// Streak returns the failures in the current streak as of the last Failure.
func (c *CrashLoop) Streak() int { return c.streak }

// recovered reports whether the child has been up, failure-free, for the quiet period.
func (c *CrashLoop) recovered(now time.Time) bool {
	return c.streak > 0 && !c.up.IsZero() && now.Sub(c.up) >= c.quiet
}

func (c *CrashLoop) reset() {
	clear(c.times)
	c.next, c.count, c.streak, c.unhealthy = 0, 0, 0, false
}
