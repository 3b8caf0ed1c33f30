package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// TestFirstPollSlots checks that first polls land on a few wall-clock
// instants (so their journal commits and platform messages are shared)
// while still spread over the first period, and that the devices of one
// slot share its instants whenever they start.
func TestFirstPollSlots(t *testing.T) {
	now := time.Unix(1_700_000_000, 123_456_789)
	noPick := func(int64) int64 { t.Fatal("a slotted first poll needs no pick"); return 0 }
	for _, tc := range []struct {
		period, slot time.Duration
		slots        int
	}{
		{time.Second, 100 * time.Millisecond, 10},
		{5 * time.Second, 100 * time.Millisecond, 10}, // spread over at most 1 s, as before
		{200 * time.Millisecond, 20 * time.Millisecond, 10},
	} {
		cycle := min(tc.period, time.Second)
		if size, n := slotGrid(tc.period); size != tc.slot || n != tc.slots {
			t.Errorf("period %s: grid %d × %s, want %d × %s", tc.period, n, size, tc.slots, tc.slot)
		}
		seen := map[time.Duration]bool{}
		for i := range tc.slots + 3 {
			d := firstPoll(now, tc.period, i, noPick)
			at := now.Add(d)
			if at.UnixNano()%int64(tc.slot) != 0 {
				t.Errorf("period %s: first poll at %s is off the %s grid", tc.period, at.Format(time.RFC3339Nano), tc.slot)
			}
			if d < 0 || d >= cycle {
				t.Errorf("period %s: delay %s outside the first cycle", tc.period, d)
			}
			seen[d] = true
			// A device of the same slot started later, up to a cycle on,
			// first polls a whole number of cycles after this one.
			for _, later := range []time.Duration{time.Millisecond, tc.slot, cycle - time.Nanosecond} {
				at2 := now.Add(later).Add(firstPoll(now.Add(later), tc.period, i, noPick))
				if gap := at2.Sub(at); gap < 0 || gap%cycle != 0 {
					t.Errorf("period %s slot %d: started %s later, it first polls %s after the first device (not on its instants)", tc.period, i, later, gap)
				}
			}
		}
		if len(seen) != tc.slots {
			t.Errorf("period %s: %d distinct start times, want %d", tc.period, len(seen), tc.slots)
		}
	}
	// Below a millisecond per slot the grid is not worth it: any instant.
	if d := firstPoll(now, 5*time.Millisecond, -1, func(n int64) int64 { return n - 1 }); d != 5*time.Millisecond-1 {
		t.Errorf("5 ms period: delay %s", d)
	}
	if d := firstPoll(now, 0, -1, func(int64) int64 { t.Fatal("no period, no pick"); return 0 }); d != 0 {
		t.Errorf("no period: delay %s", d)
	}
}

// TestSlotPlan: a slot fills to slotFill before the next opens, the next
// one is any of the empty ones, past slotFill everywhere each device goes
// to the least loaded slot, and released places are taken again.
func TestSlotPlan(t *testing.T) {
	var s slotPlan
	first := func(int64) int64 { return 0 }
	last := func(n int64) int64 { return n - 1 }
	var taken []int
	for range 100 {
		taken = append(taken, s.take(time.Second, "", last))
	}
	// The first slot is the last of the ten empty ones (pick), then the
	// last of the nine left, and so on.
	got, want := map[int]int32{}, map[int]int32{}
	for i, c := range s.used[time.Second].devices {
		if c > 0 {
			got[i] = c
		}
	}
	for i, left := 9, 100; left > 0; i, left = i-1, left-slotFill {
		want[i] = int32(min(left, slotFill))
	}
	if !maps.Equal(got, want) {
		t.Fatalf("100 devices: %v, want %v", got, want)
	}
	for range 330 - 100 {
		s.take(time.Second, "", first)
	}
	for i, c := range s.used[time.Second].devices {
		if c != 33 {
			t.Fatalf("330 devices: slot %d holds %d, want 33 everywhere: %v", i, c, s.used[time.Second].devices)
		}
	}
	// Another period has slots of its own.
	if got := s.take(5*time.Second, "", first); got != 0 || s.used[5*time.Second].devices[0] != 1 {
		t.Errorf("5 s period: slot %d, %v", got, s.used[5*time.Second].devices)
	}
	// A released place is taken again.
	s.release(time.Second, "", taken[0])
	if got := s.take(time.Second, "", first); got != taken[0] {
		t.Errorf("after a release from slot %d: took %d", taken[0], got)
	}
	// No grid, no slot; a nil plan picks.
	if got := s.take(5*time.Millisecond, "", first); got != -1 {
		t.Errorf("5 ms period: slot %d, want -1", got)
	}
	var none *slotPlan
	if got := none.take(time.Second, "", last); got != 9 {
		t.Errorf("nil plan: slot %d, want the pick's 9", got)
	}
	none.release(time.Second, "", 9)
	s.release(time.Second, "", -1)
}

// TestSlotPlanLinks: the devices of one link spread over slots linkFill at
// a time while the slots still fill: five links of 20 devices take five
// slots, none with more than linkFill of one link, and a released place
// of a link goes back to its slot.
func TestSlotPlanLinks(t *testing.T) {
	var s slotPlan
	first := func(int64) int64 { return 0 }
	perLink := map[string][]int{}
	for l := range 5 {
		link := fmt.Sprintf("rtu:///dev/ttyUSB%d", l)
		for range 20 {
			perLink[link] = append(perLink[link], s.take(time.Second, link, first))
		}
	}
	ps := s.used[time.Second]
	if want := []int32{20, 20, 20, 20, 20, 0, 0, 0, 0, 0}; !slices.Equal(ps.devices, want) {
		t.Errorf("slots %v, want %v", ps.devices, want)
	}
	for link, slots := range ps.links {
		for i, c := range slots {
			if c > linkFill {
				t.Errorf("%s: %d devices in slot %d, more than %d", link, c, i, linkFill)
			}
		}
	}
	link := "rtu:///dev/ttyUSB4"
	s.release(time.Second, link, perLink[link][19])
	if got := s.take(time.Second, link, first); got != perLink[link][19] {
		t.Errorf("after a release from slot %d: took %d", perLink[link][19], got)
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
