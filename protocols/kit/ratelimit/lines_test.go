package ratelimit

import (
	"testing"
	"time"
)

func TestLinesOneLinePerInterval(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Lines{Interval: 10 * time.Second}
	if ok, _ := r.Allow(t0); !ok {
		t.Fatal("first line refused")
	}
	for _, d := range []time.Duration{time.Second, 9999 * time.Millisecond} {
		if ok, _ := r.Allow(t0.Add(d)); ok {
			t.Fatalf("line allowed %v after the last", d)
		}
	}
	ok, n := r.Allow(t0.Add(10 * time.Second))
	if !ok || n != 2 {
		t.Fatalf("a whole interval later: allowed %v, suppressed %d; want true, 2", ok, n)
	}
	r.Reset()
	if ok, _ := r.Allow(t0.Add(11 * time.Second)); !ok {
		t.Fatal("line refused after reset")
	}
	var def Lines
	a, _ := def.Allow(t0)
	b, _ := def.Allow(t0.Add(DefaultLineInterval - time.Millisecond))
	c, _ := def.Allow(t0.Add(DefaultLineInterval))
	if !a || b || !c {
		t.Fatal("default interval not applied")
	}
}

func TestKeyedLinesKeysAreIndependent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var k KeyedLines
	if ok, _ := k.Allow("a", t0); !ok {
		t.Fatal("first a refused")
	}
	if ok, _ := k.Allow("b", t0); !ok {
		t.Fatal("b silenced by a")
	}
	if ok, _ := k.Allow("a", t0.Add(time.Second)); ok {
		t.Fatal("second a allowed")
	}
	if ok, n := k.Allow("a", t0.Add(DefaultLineInterval)); !ok || n != 1 {
		t.Fatalf("a after the interval: %v, %d", ok, n)
	}
}
