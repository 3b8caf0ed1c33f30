package protocols

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Datapoint slices are the largest allocation of a poll (64 B per value: a
// 100-register device makes 6.4 KB every poll), and at the throughput peak
// they were half of the gateway's allocated bytes and the GC work that
// follows. A driver that hands its readings over (OwnedReadingPoller) takes
// them from MakeDatapoints; the journal gives them back with
// RecycleDatapoints once it has encoded them.
//
// One pool per power-of-two capacity, holding a pointer to the first element
// (a pointer in an interface costs no allocation, a slice header would).
var datapointPools [maxPooledClass + 1]sync.Pool

// maxPooledClass: slices of up to 2^12 datapoints (256 KB) are pooled;
// larger ones are rare and left to the GC.
const maxPooledClass = 12

// MakeDatapoints returns a zeroed slice of n datapoints, reused when one
// was recycled.
func MakeDatapoints(n int) []Datapoint {
	if n <= 0 {
		return nil
	}
	c := bits.Len(uint(n - 1)) // smallest class with 1<<c >= n
	if c > maxPooledClass {
		return make([]Datapoint, n)
	}
	if p, ok := datapointPools[c].Get().(*Datapoint); ok {
		return unsafe.Slice(p, 1<<c)[:n]
	}
	return make([]Datapoint, n, 1<<c)
}

// RecycleDatapoints hands s's array back for MakeDatapoints. The caller
// must hold the only reference to it: nothing may read s, or a slice of
// the same array, afterwards.
func RecycleDatapoints(s []Datapoint) {
	n := cap(s)
	if n == 0 {
		return
	}
	c := bits.Len(uint(n)) - 1 // largest class with 1<<c <= cap
	if c > maxPooledClass {
		return
	}
	full := s[:n]
	// Zeroed here, not on reuse: a pooled array must not keep keys and
	// string values alive (all of it: a driver's own array may be longer
	// than its class).
	clear(full)
	datapointPools[c].Put(&full[0])
}
