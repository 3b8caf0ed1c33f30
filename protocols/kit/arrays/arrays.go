// Package arrays reuses the slices a hot path makes for every message and
// hands on to another goroutine that ends with them (a poll's datapoints,
// a platform message's payload), where a single owner's free list cannot
// serve.
package arrays

import (
	"math/bits"
	"sync"
	"unsafe"
)

// maxClass: arrays of up to 2^20 elements are pooled; larger ones are rare
// and left to the GC.
const maxClass = 20

// Pool keeps arrays of T by power-of-two capacity. Each class holds a
// pointer to the first element: a pointer in an interface costs no
// allocation, a slice header would. The zero Pool is ready to use.
type Pool[T any] struct {
	classes [maxClass + 1]sync.Pool
}

// Make returns a zeroed slice of length n, on a recycled array when one of
// its class is pooled. Its capacity is n rounded up to a power of two.
func (p *Pool[T]) Make(n int) []T {
	if n <= 0 {
		return nil
	}
	c := bits.Len(uint(n - 1)) // smallest class with 1<<c >= n
	if c > maxClass {
		return make([]T, n)
	}
	if e, ok := p.classes[c].Get().(*T); ok {
		return unsafe.Slice(e, 1<<c)[:n]
	}
	return make([]T, n, 1<<c)
}

// Recycle hands s's array back for Make. The caller must hold the only
// reference to it: nothing may read s, or a slice of the same array,
// afterwards. The array is zeroed here, over its whole capacity, so a
// pooled array pins nothing its elements pointed to.
func (p *Pool[T]) Recycle(s []T) {
	n := cap(s)
	if n == 0 {
		return
	}
	c := bits.Len(uint(n)) - 1 // largest class with 1<<c <= cap
	if c > maxClass {
		return
	}
	full := s[:n]
	clear(full)
	p.classes[c].Put(&full[0])
}
