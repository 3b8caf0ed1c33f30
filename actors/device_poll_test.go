package actors

import (
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
