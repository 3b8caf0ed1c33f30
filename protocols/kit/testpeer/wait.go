package testpeer

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// MinTimeout is the least any wait in this package (and in the helpers
// built on it) allows. A timeout only bounds a failure: the happy path
// returns as soon as the event happens, so a short one buys nothing and
// fails tests on a loaded machine (-race, parallel packages) that pass on a
// quiet one.
const MinTimeout = 20 * time.Second

// DefaultPoll is how often a Waiter re-checks a condition that nothing
// signals.
const DefaultPoll = 10 * time.Millisecond

// Timeout is d raised to MinTimeout.
func Timeout(d time.Duration) time.Duration { return max(d, MinTimeout) }

// Waiter is the tests' one way to wait for something to happen. The
// condition is checked at once, whenever Changed signals (for state whose
// changes the code under test announces) and every Poll (for state that
// can only be polled). A test proves that something does NOT happen by
// waiting for a later event that would come after it, never by sleeping.
type Waiter struct {
	// Timeout bounds the wait; it is raised to MinTimeout.
	Timeout time.Duration
	// Poll is the re-check interval; DefaultPoll when 0.
	Poll time.Duration
	// Changed, when set, returns a channel closed at the next change. It
	// is taken before each check, so no change between check and wait is
	// missed.
	Changed func() <-chan struct{}
	// Describe, when set, adds the state to the failure message.
	Describe func() string
}

// Wait blocks until cond returns nil and returns nil, or returns an error
// naming what and cond's last error after the timeout. It may run on any
// goroutine.
func (w Waiter) Wait(what string, cond func() error) error {
	timeout := Timeout(w.Timeout)
	poll := w.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		var changed <-chan struct{}
		if w.Changed != nil {
			changed = w.Changed()
		}
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			// One last look: the event may have come with the deadline.
			if err = cond(); err == nil {
				return nil
			}
			msg := fmt.Sprintf("timed out after %v waiting for %s: %v", timeout, what, err)
			if w.Describe != nil {
				msg += "; " + w.Describe()
			}
			return errors.New(msg)
		}
	}
}

// Until is Wait that fails t. Call it from the test goroutine.
func (w Waiter) Until(t testing.TB, what string, cond func() error) {
	t.Helper()
	if err := w.Wait(what, cond); err != nil {
		t.Fatal(err)
	}
}

// Eventually waits until cond returns nil, polling, and fails t with what
// and cond's last error after timeout (at least MinTimeout). Prefer a
// condition signalled by the code under test (Subscriber.WaitFor,
// sinktest.Recorder.Wait); this is for state that can only be polled.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	Waiter{Timeout: timeout}.Until(t, what, cond)
}

// True adapts a boolean condition to Eventually and Waiter: not yet is
// reported as "not yet".
func True(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}

var errNotYet = errors.New("not yet")
