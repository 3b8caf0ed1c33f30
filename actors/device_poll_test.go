package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
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
		taken = append(taken, s.take(time.Second, "", false, last))
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
		s.take(time.Second, "", false, first)
	}
	for i, c := range s.used[time.Second].devices {
		if c != 33 {
			t.Fatalf("330 devices: slot %d holds %d, want 33 everywhere: %v", i, c, s.used[time.Second].devices)
		}
	}
	// Another period has slots of its own.
	if got := s.take(5*time.Second, "", false, first); got != 0 || s.used[5*time.Second].devices[0] != 1 {
		t.Errorf("5 s period: slot %d, %v", got, s.used[5*time.Second].devices)
	}
	// A released place is taken again.
	s.release(time.Second, "", taken[0])
	if got := s.take(time.Second, "", false, first); got != taken[0] {
		t.Errorf("after a release from slot %d: took %d", taken[0], got)
	}
	// No grid, no slot; a nil plan picks.
	if got := s.take(5*time.Millisecond, "", false, first); got != -1 {
		t.Errorf("5 ms period: slot %d, want -1", got)
	}
	var none *slotPlan
	if got := none.take(time.Second, "", false, last); got != 9 {
		t.Errorf("nil plan: slot %d, want the pick's 9", got)
	}
	none.release(time.Second, "", 9)
	s.release(time.Second, "", -1)
}

// TestSlotPlanLinks: the devices of one slow link spread over slots
// linkFill at a time while the slots still fill: five lines of 20 devices
// take five slots, none with more than linkFill of one line, and a
// released place of a line goes back to its slot.
func TestSlotPlanLinks(t *testing.T) {
	var s slotPlan
	first := func(int64) int64 { return 0 }
	perLink := map[string][]int{}
	for l := range 5 {
		link := fmt.Sprintf("rtu:///dev/ttyUSB%d", l)
		for range 20 {
			perLink[link] = append(perLink[link], s.take(time.Second, link, true, first))
		}
	}
	ps := s.used[time.Second]
	if want := []int32{20, 20, 20, 20, 20, 0, 0, 0, 0, 0}; !slices.Equal(ps.devices, want) {
		t.Errorf("slots %v, want %v", ps.devices, want)
	}
	for link, slots := range ps.links {
		for i, c := range slots.devices {
			if c > linkFill {
				t.Errorf("%s: %d devices in slot %d, more than %d", link, c, i, linkFill)
			}
		}
	}
	link := "rtu:///dev/ttyUSB4"
	s.release(time.Second, link, perLink[link][19])
	if got := s.take(time.Second, link, true, first); got != perLink[link][19] {
		t.Errorf("after a release from slot %d: took %d", perLink[link][19], got)
	}
}

// TestSlotPlanOverran: a link whose polls run past their slot gets the
// fill that would have ended in time, and a device past it moves to the
// fullest slot with room on the link; nothing moves for a poll within the
// slot, a slot within the fill, a device of no link, or when no slot has
// room.
func TestSlotPlanOverran(t *testing.T) {
	var s slotPlan
	first := func(int64) int64 { return 0 }
	const tcp = "rtuovertcp://10.0.0.5:4001"
	var slot int
	for range 20 {
		slot = s.take(time.Second, tcp, false, first)
	}
	ps := s.used[time.Second]
	if l := ps.links[tcp]; l.devices[slot] != 20 || l.fill != slotFill {
		t.Fatalf("a fast link fills a slot like no link: %v, fill %d", l.devices, l.fill)
	}
	const at = 1
	if _, ok := s.overran(time.Second, tcp, slot, at, 100*time.Millisecond); ok {
		t.Error("moved after a poll that ended within its 100 ms slot")
	}
	if _, ok := s.overran(100*time.Millisecond, tcp, slot, at, 40*time.Millisecond); ok {
		t.Error("moved after 40 ms at a 100 ms period (minOverrun)")
	}
	// The last of 20 ended 400 ms after the slot: 20 ms each, a slot
	// holds 5.
	to, ok := s.overran(time.Second, tcp, slot, at, 400*time.Millisecond)
	l := ps.links[tcp]
	if !ok || to == slot || l.fill != 5 || l.devices[slot] != 19 || l.devices[to] != 1 || ps.devices[to] != 1 {
		t.Fatalf("moved %v to %d, fill %d, link %v, slots %v", ok, to, l.fill, l.devices, ps.devices)
	}
	// An earlier one's estimate never raises the fill; it joins the first
	// mover (the fullest slot with room).
	if to2, ok := s.overran(time.Second, tcp, slot, at, 150*time.Millisecond); !ok || to2 != to || l.fill != 5 {
		t.Fatalf("second mover: %v to %d (want %d), fill %d", ok, to2, to, l.fill)
	}
	// The others of that instant: the queue they waited in still held
	// those that moved, so the fill stays.
	for l.devices[slot] > l.fill {
		if _, ok := s.overran(time.Second, tcp, slot, at, 380*time.Millisecond); !ok {
			t.Fatalf("stuck at %v, fill %d", l.devices, l.fill)
		}
	}
	if l.fill != 5 {
		t.Errorf("fill %d after the movers of one instant, want 5", l.fill)
	}
	for i, c := range l.devices {
		if c > l.fill {
			t.Errorf("slot %d holds %d of the link, fill %d", i, c, l.fill)
		}
	}
	if _, ok := s.overran(time.Second, "", slot, at, time.Second); ok {
		t.Error("a device of no link moved")
	}
	// A device alone on its link in a slot whose poll takes longer than
	// the slot stays: no slot would serve it sooner.
	lone := s.take(time.Second, "tcp://10.0.0.9:502", false, first)
	if _, ok := s.overran(time.Second, "tcp://10.0.0.9:502", lone, at, 300*time.Millisecond); ok {
		t.Error("a device alone on its link moved")
	}
	// A line busy for its whole period: every slot holds its fill of one.
	var full slotPlan
	const line = "rtu:///dev/ttyS0"
	full.take(time.Second, line, true, first)
	full.used[time.Second].links[line].fill = 1
	for range 10 {
		slot = full.take(time.Second, line, true, first)
	}
	if _, ok := full.overran(time.Second, line, slot, at, time.Second); ok {
		t.Errorf("moved with no slot free on the line: %v", full.used[time.Second].links[line].devices)
	}
	var none *slotPlan
	if _, ok := none.overran(time.Second, tcp, 0, at, time.Second); ok {
		t.Error("a nil plan moved a device")
	}
}

// lineDevice is a polled device on a shared line that answers one request
// at a time, each after a round trip.
type lineDevice struct {
	name string
	line *sync.Mutex
	rtt  time.Duration
}

func (d *lineDevice) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: d.name, Type: "test", PollPeriod: time.Second}
}

func (d *lineDevice) Poll(context.Context) (protocols.Reading, error) {
	d.line.Lock()
	defer d.line.Unlock()
	time.Sleep(d.rtt) // the line's round trip, not a wait for an event
	return protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "v", Value: protocols.Int(1)}}}, nil
}

func (d *lineDevice) Close() error         { return nil }
func (d *lineDevice) Link() (string, bool) { return "rtuovertcp://10.0.0.5:4001", false }

// TestDevicesSpreadOverASlowLink: ten devices behind one link its config
// does not show as slow (a serial gateway behind TCP) start in one slot,
// where the last waits 300 ms for the link; their polls running past the
// slot move them until a slot holds no more than the link serves in one
// (three of 30 ms round trips in a 100 ms slot).
func TestDevicesSpreadOverASlowLink(t *testing.T) {
	sys := bareSystem(t)
	journal, journaled := spawnProbe(t, sys, "journal", nil)
	registry, _ := spawnProbe(t, sys, "registry", nil)
	env := testDeviceEnv(journal, registry)
	env.slots = &slotPlan{}
	line := &sync.Mutex{}
	for i := range 10 {
		dev := &lineDevice{name: fmt.Sprintf("d%d", i), line: line, rtt: 30 * time.Millisecond}
		sys.Root.Spawn((&propsKit{}).props(func() actor.Actor {
			return newDeviceActor(dev, protocols.DeviceInfo{}, nil, "conn", env, zerolog.Nop())
		}))
	}
	counts := func() (slots []int32, fill int32) {
		env.slots.mu.Lock()
		defer env.slots.mu.Unlock()
		if ps := env.slots.used[time.Second]; ps != nil && ps.links["rtuovertcp://10.0.0.5:4001"] != nil {
			l := ps.links["rtuovertcp://10.0.0.5:4001"]
			return slices.Clone(l.devices), l.fill
		}
		return nil, 0
	}
	spread := func() bool {
		slots, fill := counts()
		var sum int32
		for _, c := range slots {
			if c > 3 {
				return false
			}
			sum += c
		}
		return sum == 10 && fill <= 3
	}
	deadline := time.After(waitLimit)
	for !spread() {
		select {
		case <-journaled: // each poll's telemetry
		case <-deadline:
			slots, fill := counts()
			t.Fatalf("not spread within %s: %v, fill %d", waitLimit, slots, fill)
		}
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
