// Package ratelimit enforces "at most Count units per Per" limits, such as
// a platform's "10:1,300:60" message limits, and gates log lines.
//
// Every window is enforced as a sliding window: in no interval of length Per
// do more than Count units pass. That is stricter than a token bucket
// refilled continuously (which lets up to twice its capacity through in one
// window after an idle period) and than fixed windows (twice the count
// around a boundary), so the counterpart never sees more than Count in any
// window however it aligns or refills its own.
//
// A Limiter is plain data driven by the caller's clock: it never sleeps and
// is not safe for concurrent use, which keeps it deterministic in tests.
// Gate adds locking and waiting on top.
package ratelimit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is one limit: at most Count units in any interval of length Per.
type Window struct {
	Count int
	Per   time.Duration
}

func (w Window) String() string {
	return strconv.Itoa(w.Count) + ":" + strconv.FormatFloat(w.Per.Seconds(), 'f', -1, 64)
}

// Parse reads a "count:seconds" list such as "10:1,300:60" (',' or ';'
// separated, blanks ignored). "0:0" and other entries with a zero count or
// period mean "no limit" and are left out, so "" and "0:0," give none.
func Parse(s string) ([]Window, error) {
	var out []Window
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, p, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("rate limit %q: want count:seconds", part)
		}
		count, err1 := strconv.Atoi(strings.TrimSpace(c))
		secs, err2 := strconv.Atoi(strings.TrimSpace(p))
		if err1 != nil || err2 != nil || count < 0 || secs < 0 {
			return nil, fmt.Errorf("rate limit %q: want non-negative integers", part)
		}
		// An hour is the longest window platforms use; far longer ones are
		// typos, and their Duration would overflow.
		if secs > 10*365*24*3600 {
			return nil, fmt.Errorf("rate limit %q: window longer than ten years", part)
		}
		if count == 0 || secs == 0 {
			continue
		}
		out = append(out, Window{Count: count, Per: time.Duration(secs) * time.Second})
	}
	return out, nil
}

// Scale multiplies every count by factor, rounding down but keeping at
// least 1 so a limit never turns into a standstill.
func Scale(ws []Window, factor float64) []Window {
	if len(ws) == 0 {
		return nil
	}
	out := make([]Window, len(ws))
	for i, w := range ws {
		out[i] = Window{Count: max(1, int(float64(w.Count)*factor)), Per: w.Per}
	}
	return out
}

// slotsPerWindow bounds a window's memory: takes closer together than
// Per/slotsPerWindow share one entry, which expires with its latest take.
// That errs on the safe side by at most Per/slotsPerWindow.
const slotsPerWindow = 64

type entry struct {
	first, last time.Time
	n           int
}

type window struct {
	Window
	used    int
	log     []entry // takes still inside the window, oldest first
	head    int     // log[:head] have expired
	blocked time.Time
}

func (w *window) expire(now time.Time) {
	for w.head < len(w.log) && !now.Before(w.log[w.head].last.Add(w.Per)) {
		w.used -= w.log[w.head].n
		w.head++
	}
	if w.head == len(w.log) {
		w.log, w.head = w.log[:0], 0
	} else if w.head > 32 && w.head > len(w.log)/2 {
		w.log = w.log[:copy(w.log, w.log[w.head:])]
		w.head = 0
	}
}

// delay is how long until n units fit; the caller has expired the log.
func (w *window) delay(now time.Time, n int) time.Duration {
	if now.Before(w.blocked) {
		return w.blocked.Sub(now)
	}
	if w.used+n <= w.Count || w.used == 0 {
		// More than a whole window's worth goes alone once the window is
		// empty: refusing it for ever would stall everything behind it.
		return 0
	}
	free := w.used + n - w.Count
	if n > w.Count {
		free = w.used
	}
	for i := w.head; i < len(w.log); i++ {
		free -= w.log[i].n
		if free <= 0 {
			return w.log[i].last.Add(w.Per).Sub(now)
		}
	}
	return w.Per // not reached: the log holds all of used
}

func (w *window) take(now time.Time, n int) {
	if n <= 0 {
		return
	}
	w.used += n
	if l := len(w.log); l > w.head && now.Sub(w.log[l-1].first) < w.Per/slotsPerWindow {
		w.log[l-1].last = now
		w.log[l-1].n += n
		return
	}
	w.log = append(w.log, entry{first: now, last: now, n: n})
}

// Limiter enforces a set of windows at once: n units pass only when every
// window has room for them. The zero value and nil have no windows and
// allow everything. Not safe for concurrent use.
type Limiter struct {
	ws []window // by Per, shortest first
	// level counts exhaustions without a success in between; each one
	// blocks the next longer window.
	level int
}

// New returns a limiter for ws; an empty ws allows everything.
func New(ws ...Window) *Limiter {
	l := &Limiter{}
	l.SetWindows(ws)
	return l
}

// Limited reports whether the limiter has any window.
func (l *Limiter) Limited() bool { return l != nil && len(l.ws) > 0 }

// Windows returns the limiter's windows, shortest first.
func (l *Limiter) Windows() []Window {
	if l == nil {
		return nil
	}
	out := make([]Window, len(l.ws))
	for i := range l.ws {
		out[i] = l.ws[i].Window
	}
	return out
}

// SetWindows replaces the limits. A window whose Per is unchanged keeps
// what was taken in it, so new limits do not hand out a fresh allowance
// (the counterpart's accounting did not restart either).
func (l *Limiter) SetWindows(ws []Window) {
	old := l.ws
	next := make([]window, 0, len(ws))
	for _, w := range ws {
		if w.Count <= 0 || w.Per <= 0 {
			continue
		}
		nw := window{Window: w}
		for i := range old {
			if old[i].Per == w.Per {
				nw.used, nw.log, nw.head, nw.blocked = old[i].used, old[i].log, old[i].head, old[i].blocked
				old[i].Per = -1 // adopted; a duplicate Per starts empty
				break
			}
		}
		next = append(next, nw)
	}
	slices.SortStableFunc(next, func(a, b window) int { return int(a.Per - b.Per) })
	l.ws = next
	if l.level > len(next) {
		l.level = len(next)
	}
}

// Delay is how long from now until n units may be taken, 0 if at once.
// It is a lower bound: takes by others in between can push it further.
func (l *Limiter) Delay(now time.Time, n int) time.Duration {
	if l == nil {
		return 0
	}
	var d time.Duration
	for i := range l.ws {
		w := &l.ws[i]
		w.expire(now)
		d = max(d, w.delay(now, n))
	}
	return d
}

// Take records n units taken at now, whether or not they fitted.
func (l *Limiter) Take(now time.Time, n int) {
	if l == nil {
		return
	}
	for i := range l.ws {
		l.ws[i].expire(now)
		l.ws[i].take(now, n)
	}
}

// Allow takes n units if they fit now and reports whether they did.
func (l *Limiter) Allow(now time.Time, n int) bool {
	if l.Delay(now, n) > 0 {
		return false
	}
	l.Take(now, n)
	return true
}

// Exhaust records that the counterpart refused for lack of quota: one
// window is closed until a whole period has passed from now. The first
// refusal closes the shortest window; a refusal after that one reopened,
// without a success (Succeeded) in between, closes the next longer one, and
// so on, since the shorter windows evidently did not cover what the
// counterpart counts. Refusals while the last closed window is still closed
// belong to the same episode (several messages were in flight) and change
// nothing. It returns the window it closed, ok false when none.
func (l *Limiter) Exhaust(now time.Time) (closed Window, ok bool) {
	if l == nil || len(l.ws) == 0 {
		return Window{}, false
	}
	if l.level > 0 && now.Before(l.ws[min(l.level, len(l.ws))-1].blocked) {
		return Window{}, false
	}
	w := &l.ws[min(l.level, len(l.ws)-1)]
	w.blocked = now.Add(w.Per)
	l.level = min(l.level+1, len(l.ws))
	return w.Window, true
}

// Succeeded ends an exhaustion episode: the next Exhaust starts again at
// the shortest window.
func (l *Limiter) Succeeded() {
	if l != nil {
		l.level = 0
	}
}

// Cost is n units of one limiter, for taking from several at once.
type Cost struct {
	L *Limiter
	N int
}

// DelayAll is the longest Delay of costs.
func DelayAll(now time.Time, costs ...Cost) time.Duration {
	var d time.Duration
	for _, c := range costs {
		d = max(d, c.L.Delay(now, c.N))
	}
	return d
}

// TakeAll takes every cost.
func TakeAll(now time.Time, costs ...Cost) {
	for _, c := range costs {
		c.L.Take(now, c.N)
	}
}
