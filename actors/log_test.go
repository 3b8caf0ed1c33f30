package actors

import (
	"testing"
	"time"
)

func TestRateLimiterOneLinePerInterval(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &rateLimiter{interval: 10 * time.Second}
	if !r.allow(t0) {
		t.Fatal("first line refused")
	}
	for _, d := range []time.Duration{time.Second, 9999 * time.Millisecond} {
		if r.allow(t0.Add(d)) {
			t.Fatalf("line allowed %v after the last", d)
		}
	}
	if !r.allow(t0.Add(10 * time.Second)) {
		t.Fatal("line refused a whole interval later")
	}
	if n := r.takeSuppressed(); n != 2 {
		t.Fatalf("suppressed %d, want 2", n)
	}
	r.reset()
	if !r.allow(t0.Add(11 * time.Second)) {
		t.Fatal("line refused after reset")
	}
	var def rateLimiter
	if !def.allow(t0) || def.allow(t0.Add(defaultLogInterval-time.Millisecond)) || !def.allow(t0.Add(defaultLogInterval)) {
		t.Fatal("default interval not applied")
	}
}
