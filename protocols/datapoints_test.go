package protocols

import "testing"

// TestMakeDatapoints: a slice comes zeroed and as long as asked, a recycled
// array is cleared (it pins no keys or values) and serves a later request
// of its class, and sizes outside the classes still work.
func TestMakeDatapoints(t *testing.T) {
	if s := MakeDatapoints(0); s != nil {
		t.Fatalf("0: %v", s)
	}
	// A driver's own array (append-grown, any capacity) is cleared whole.
	own := make([]Datapoint, 5)
	for i := range own {
		own[i] = Datapoint{Key: "k", Value: String("pinned")}
	}
	RecycleDatapoints(own[:2])
	for i := range own {
		if own[i] != (Datapoint{}) {
			t.Fatalf("a 5-element array: element %d is %+v after recycling, want cleared", i, own[i])
		}
	}
	for _, n := range []int{1, 2, 3, 10, 100, 128, 129, 4096, 4097} {
		s := MakeDatapoints(n)
		if len(s) != n || cap(s) < n {
			t.Fatalf("%d: len %d cap %d", n, len(s), cap(s))
		}
		for i := range s {
			if s[i] != (Datapoint{}) {
				t.Fatalf("%d: element %d is %+v, want zero", n, i, s[i])
			}
			s[i] = Datapoint{Key: "k", Value: String("pinned")}
		}
		full := s[:cap(s)]
		RecycleDatapoints(s[:n/2]) // as the filter leaves it: shorter, same array
		if n <= 1<<maxPooledClass {
			for i := range full {
				if full[i] != (Datapoint{}) {
					t.Fatalf("%d: recycled element %d is %+v, want cleared", n, i, full[i])
				}
			}
		}
	}
}

// TestMakeDatapointsReuses: a poll's Make and the journal's Recycle cost no
// allocation once warm (sync.Pool drops items at random under -race).
func TestMakeDatapointsReuses(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	RecycleDatapoints(MakeDatapoints(100))
	if n := testing.AllocsPerRun(100, func() { RecycleDatapoints(MakeDatapoints(100)) }); n != 0 {
		t.Fatalf("%.1f allocations per Make and Recycle, want 0", n)
	}
}
