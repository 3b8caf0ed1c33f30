package main

import (
	"sort"
	"testing"
	"time"
)

func TestTailShapeCountsTheSlowestBySecond(t *testing.T) {
	window := time.Date(2026, 12, 7, 10, 0, 0, 600e6, time.UTC)
	var s []latSample
	// 300 fast polls spread over the window's seconds 0..29, then a burst of
	// four slow ones in second 12 and one in second 3.
	for i := range 300 {
		s = append(s, latSample{window.Add(time.Duration(i) * 100 * time.Millisecond), 5 * time.Millisecond})
	}
	burst := window.Truncate(time.Second).Add(12*time.Second + 300*time.Millisecond)
	for i := range 4 {
		s = append(s, latSample{burst.Add(time.Duration(i) * time.Millisecond), time.Duration(40+i) * time.Millisecond})
	}
	s = append(s, latSample{window.Truncate(time.Second).Add(3*time.Second + 900*time.Millisecond), 30 * time.Millisecond})
	sort.Slice(s, func(i, j int) bool { return s[i].lat < s[j].lat })

	threshold, n, secs := tailShape(s, 0.99, window)
	if threshold != 30*time.Millisecond || n != 5 {
		t.Fatalf("threshold %s, %d polls; want 30ms, 5", threshold, n)
	}
	want := []tailSecond{{12, 4}, {3, 1}}
	if len(secs) != len(want) || secs[0] != want[0] || secs[1] != want[1] {
		t.Fatalf("seconds %v, want %v", secs, want)
	}
	if _, n, _ := tailShape(nil, 0.99, window); n != 0 {
		t.Fatalf("no samples: %d in the tail", n)
	}
}

func TestTailShapeKeepsTiesAtTheThreshold(t *testing.T) {
	window := time.Unix(1000, 0)
	s := make([]latSample, 200)
	for i := range s {
		s[i] = latSample{window.Add(time.Duration(i) * 10 * time.Millisecond), 8 * time.Millisecond}
	}
	if th, n, secs := tailShape(s, 0.99, window); th != 8*time.Millisecond || n != 200 || len(secs) != 2 {
		t.Fatalf("all equal: threshold %s, %d polls in %d seconds; want 8ms, 200 in 2", th, n, len(secs))
	}
}
