package platform

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	const minD, maxD = time.Second, 60 * time.Second
	cases := []struct {
		n      int
		r      float64
		lo, hi time.Duration
	}{
		{0, 0, minD, minD}, // jitter never goes below the minimum
		{0, 0.999, minD, 1100 * time.Millisecond},
		{1, 0.5, 2 * time.Second, 2 * time.Second},
		{3, 0, 7200 * time.Millisecond, 7200 * time.Millisecond},
		{3, 0.999, 8 * time.Second, 8800 * time.Millisecond},
		{6, 0.999, maxD, maxD}, // 64s capped
		{6, 0, 54 * time.Second, 54 * time.Second},
		{1000, 0.5, maxD, maxD},
	}
	for _, c := range cases {
		d := backoffDelay(c.n, minD, maxD, c.r)
		if d < c.lo || d > c.hi {
			t.Errorf("n=%d r=%v: %s not in [%s, %s]", c.n, c.r, d, c.lo, c.hi)
		}
	}
}

func TestReconnectorPacing(t *testing.T) {
	now := time.Unix(0, 0)
	r := newReconnector(time.Second, 8*time.Second)
	r.rnd = func() float64 { return 0.5 }
	r.now = func() time.Time { return now }

	if d := r.delay(0); d != 0 {
		t.Fatalf("first attempt delayed %s", d)
	}
	// Failed attempts back off exponentially up to the cap...
	var got []time.Duration
	for range 6 {
		got = append(got, r.delay(1))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v", got)
		}
	}
	// ...and a connection that drops right away does not reset them, even
	// though autopaho restarts its own attempt count at 0.
	r.up()
	now = now.Add(time.Second)
	r.down()
	if d := r.delay(0); d != 8*time.Second {
		t.Errorf("after a short-lived connection: %s", d)
	}
	// A connection that stayed up resets to the minimum, never to 0.
	r.up()
	now = now.Add(time.Hour)
	r.down()
	if d := r.delay(0); d != time.Second {
		t.Errorf("after a stable connection: %s", d)
	}
	if r.attemptCount() != 9 {
		t.Errorf("attempts %d", r.attemptCount())
	}
}
