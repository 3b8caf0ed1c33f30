package supervisor

import (
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestCrashLoopUnhealthyAfterLimitInWindow(t *testing.T) {
	c := NewCrashLoop(3, time.Second, 5*time.Second)
	for i, ms := range []time.Duration{0, 100, 200} {
		now := at(ms * time.Millisecond)
		streak, unhealthy := c.Failure(now)
		if streak != i+1 {
			t.Fatalf("failure %d: streak %d", i+1, streak)
		}
		if want := i == 2; unhealthy != want {
			t.Fatalf("failure %d: unhealthy %v, want %v", i+1, unhealthy, want)
		}
		c.Restarted(now.Add(10 * time.Millisecond))
	}
}

func TestCrashLoopSpreadFailuresStayHealthy(t *testing.T) {
	c := NewCrashLoop(3, time.Second, 5*time.Second)
	for i := range 20 {
		now := at(time.Duration(i) * 600 * time.Millisecond)
		streak, unhealthy := c.Failure(now)
		if unhealthy {
			t.Fatalf("failure %d at %v: unhealthy, but never 3 within 1s", i+1, now.Sub(t0))
		}
		// Uptime (590ms) stays below the quiet period, so this is one long streak.
		if streak != i+1 {
			t.Fatalf("failure %d: streak %d", i+1, streak)
		}
		c.Restarted(now.Add(10 * time.Millisecond))
	}
}

func TestCrashLoopRecoversAfterQuietPeriod(t *testing.T) {
	c := NewCrashLoop(2, time.Second, 5*time.Second)
	c.Failure(at(0))
	c.Restarted(at(10 * time.Millisecond))
	if _, unhealthy := c.Failure(at(20 * time.Millisecond)); !unhealthy {
		t.Fatal("want unhealthy after 2 failures in 20ms")
	}
	restart := at(time.Second) // slow retry pending until then
	c.Restarted(restart)
	if !c.Unhealthy(at(500 * time.Millisecond)) {
		t.Fatal("must stay unhealthy while the restart is pending")
	}
	if !c.Unhealthy(restart.Add(5*time.Second - time.Nanosecond)) {
		t.Fatal("must stay unhealthy until the quiet period has passed")
	}
	if c.Unhealthy(restart.Add(5 * time.Second)) {
		t.Fatal("must be healthy after the quiet period")
	}
	streak, unhealthy := c.Failure(restart.Add(6 * time.Second))
	if streak != 1 || unhealthy {
		t.Fatalf("after recovery: streak %d unhealthy %v, want a fresh streak", streak, unhealthy)
	}
}

func TestCrashLoopRemainsUnhealthyWhileFailing(t *testing.T) {
	c := NewCrashLoop(3, time.Second, 5*time.Second)
	now := t0
	for i := range 100 {
		_, unhealthy := c.Failure(now)
		if want := i >= 2; unhealthy != want {
			t.Fatalf("failure %d: unhealthy %v, want %v", i+1, unhealthy, want)
		}
		// Three quick failures, then slow retries 2s apart: outside the 1s window, but the
		// child never stays up for the quiet period, so it must not be declared healthy.
		step := 10 * time.Millisecond
		if i >= 2 {
			step = 2 * time.Second
		}
		c.Restarted(now.Add(step / 2))
		now = now.Add(step)
	}
}

func TestCrashLoopMemoryBounded(t *testing.T) {
	c := NewCrashLoop(4, time.Minute, time.Hour)
	for i := range 100000 {
		c.Failure(at(time.Duration(i) * time.Second))
	}
	if len(c.times) != 4 || cap(c.times) != 4 {
		t.Fatalf("history grew to len %d cap %d", len(c.times), cap(c.times))
	}
	if c.Streak() != 100000 {
		t.Fatalf("streak %d", c.Streak())
	}
}

func TestCrashLoopDisabled(t *testing.T) {
	c := NewCrashLoop(0, time.Second, time.Second)
	for i := range 50 {
		if _, unhealthy := c.Failure(at(time.Duration(i))); unhealthy {
			t.Fatal("limit 0 must never report unhealthy")
		}
	}
}
