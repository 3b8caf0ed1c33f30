package actors

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestFirstPollSlots checks that first polls land on a few wall-clock
// instants (so their journal commits and platform messages are shared)
// while still spread over the first period.
func TestFirstPollSlots(t *testing.T) {
	now := time.Unix(1_700_000_000, 123_456_789)
	for _, tc := range []struct {
		period, slot time.Duration
		slots        int64
	}{
		{time.Second, 100 * time.Millisecond, 10},
		{5 * time.Second, 100 * time.Millisecond, 10}, // spread over at most 1 s, as before
		{200 * time.Millisecond, 20 * time.Millisecond, 10},
	} {
		seen := map[time.Duration]bool{}
		for i := range tc.slots + 3 {
			pick := func(n int64) int64 {
				if n != tc.slots {
					t.Fatalf("period %s: %d slots offered, want %d", tc.period, n, tc.slots)
				}
				return i % n
			}
			d := firstPoll(now, tc.period, pick)
			at := now.Add(d)
			if at.UnixNano()%int64(tc.slot) != 0 {
				t.Errorf("period %s: first poll at %s is off the %s grid", tc.period, at.Format(time.RFC3339Nano), tc.slot)
			}
			if d < 0 || d >= min(tc.period, time.Second)+tc.slot {
				t.Errorf("period %s: delay %s outside the first period", tc.period, d)
			}
			seen[d] = true
		}
		if int64(len(seen)) != tc.slots {
			t.Errorf("period %s: %d distinct start times, want %d", tc.period, len(seen), tc.slots)
		}
	}
	// Below a millisecond per slot the grid is not worth it: any instant.
	if d := firstPoll(now, 5*time.Millisecond, func(n int64) int64 { return n - 1 }); d != 5*time.Millisecond-1 {
		t.Errorf("5 ms period: delay %s", d)
	}
	if d := firstPoll(now, 0, func(int64) int64 { t.Fatal("no period, no pick"); return 0 }); d != 0 {
		t.Errorf("no period: delay %s", d)
	}
}

// TestNextTick: polls stay on their grid; a poll that ran past the next tick
// is followed at once by that tick's poll while the device answers, and
// only ticks a whole period or more behind are skipped; after a failed poll
// every passed tick is skipped.
func TestNextTick(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	p := 20 * time.Millisecond
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		now     time.Time
		catchUp bool
		next    time.Time
		skipped int64
	}{
		{"on time", ms(3), true, ms(20), 0},
		{"ends at the next tick", ms(20), true, ms(20), 0},
		{"ran past the next tick: it runs now", ms(27), true, ms(20), 0},
		{"ran past two ticks: the later runs now", ms(47), true, ms(40), 1},
		{"ran past five ticks", ms(105), true, ms(100), 4},
		{"failed, on time", ms(3), false, ms(20), 0},
		{"failed, ran past the next tick", ms(27), false, ms(40), 1},
		{"failed, ran past five ticks", ms(105), false, ms(120), 5},
	} {
		next, skipped := nextTick(t0, tc.now, p, tc.catchUp)
		if !next.Equal(tc.next) || skipped != tc.skipped {
			t.Errorf("%s: next %s skipped %d, want %s and %d", tc.name,
				next.Sub(t0), skipped, tc.next.Sub(t0), tc.skipped)
		}
	}
}

// TestPollDeadline: the reusable poll context keeps WithTimeout's semantics
// (Done closes and Err says DeadlineExceeded at the deadline, never before)
// and costs no allocation per poll once made, whether or not Done is asked.
func TestPollDeadline(t *testing.T) {
	var p pollContext
	c := p.start(time.Now(), time.Hour)
	if dl, ok := c.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
		t.Fatalf("deadline %v %v", dl, ok)
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed before the deadline")
	default:
	}
	if c.Err() != nil || c.Value("k") != nil {
		t.Fatalf("Err %v Value %v before the deadline", c.Err(), c.Value("k"))
	}
	p.stop()

	if n := testing.AllocsPerRun(100, func() {
		c := p.start(time.Now(), time.Hour)
		_ = c.Err()
		select {
		case <-c.Done():
		default:
		}
		p.stop()
	}); n != 0 {
		t.Fatalf("%v allocations per poll, want 0", n)
	}

	// The timer closes Done at the deadline.
	c = p.start(time.Now(), 20*time.Millisecond)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v after Done", c.Err())
	}
	p.stop()
	// The next poll gets an open channel again.
	c2 := p.start(time.Now(), time.Hour)
	if c2 == c || c2.Err() != nil {
		t.Fatal("a fired deadline was reused")
	}
	select {
	case <-c2.Done():
		t.Fatal("the next poll's Done is closed")
	default:
	}
	p.stop()

	// Without a timer, Err follows the clock and closes Done with it.
	c = p.start(time.Now().Add(-2*time.Second), time.Second)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v past the deadline", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Err said expired but Done is open")
	}
	p.stop()
	if c3 := p.start(time.Now(), time.Hour); c3 == c || c3.Err() != nil {
		t.Fatal("an expired deadline was reused")
	}
	p.stop()
}
