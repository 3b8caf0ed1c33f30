package arrays

import (
	"testing"

	"github.com/industryos/gateway/protocols/kit/race"
)

// TestPool: slices come zeroed, as long as asked, with a power-of-two
// capacity up to the largest class; a recycled array is cleared over its
// whole capacity, whatever its length and class.
func TestPool(t *testing.T) {
	var p Pool[*int]
	if s := p.Make(0); s != nil {
		t.Fatalf("Make(0) = %v", s)
	}
	x := 1
	for _, n := range []int{1, 2, 3, 100, 128, 129, 1 << maxClass, 1<<maxClass + 1} {
		s := p.Make(n)
		if len(s) != n || cap(s) < n || (n <= 1<<maxClass && cap(s)&(cap(s)-1) != 0) {
			t.Fatalf("Make(%d): len %d cap %d", n, len(s), cap(s))
		}
		for i := range s {
			if s[i] != nil {
				t.Fatalf("Make(%d): element %d not zero", n, i)
			}
			s[i] = &x
		}
		full := s[:cap(s)]
		p.Recycle(s[:n/2])
		if n <= 1<<maxClass {
			for i := range full {
				if full[i] != nil {
					t.Fatalf("Make(%d): element %d of the recycled array not cleared", n, i)
				}
			}
		}
	}
	own := []*int{&x, &x, &x, &x, &x} // capacity 5: pooled in class 2
	p.Recycle(own[:1])
	for i := range own {
		if own[i] != nil {
			t.Fatalf("a 5-element array: element %d not cleared", i)
		}
	}
}

// TestPoolReuses: a warm Make and Recycle allocate nothing (sync.Pool
// drops items at random under -race).
func TestPoolReuses(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	var p Pool[byte]
	p.Recycle(p.Make(60_000))
	if n := testing.AllocsPerRun(100, func() { p.Recycle(p.Make(60_000)) }); n != 0 {
		t.Fatalf("%.1f allocations per Make and Recycle, want 0", n)
	}
}
