package persistence

import (
	"math/bits"
	"strconv"
	"testing"
)

// TestBadgerTablesFitTheirArena checks the reasoning of tableSizes for 32-bit int, where a
// table that outgrows the first buffer of its builder's arena is silently corrupt: every
// table badger builds (an L0 flush holds a whole memtable, a compaction fills a table of its
// level's size) takes at most about 2 x its data in blocks, and must fit the smallest first
// buffer any pooled builder may have (2 x the table size it was made for, rounded up to a
// power of two).
func TestBadgerTablesFitTheirArena(t *testing.T) {
	base, growth := tableSizes()
	if strconv.IntSize != 32 {
		t.Skipf("64-bit int: arenas grow safely (tables %d, growth %d)", base, growth)
	}
	firstBuffer := func(tableSize int64) int64 { return 1 << bits.Len64(uint64(2*tableSize-1)) }
	sizes := []int64{memTableSize} // L0 flushes and L0->L0 compactions
	for level, sz := 1, base; level < 7; level, sz = level+1, sz*int64(growth) {
		sizes = append(sizes, sz)
	}
	smallest, largest := firstBuffer(sizes[0]), sizes[0]
	for _, sz := range sizes {
		smallest, largest = min(smallest, firstBuffer(sz)), max(largest, sz)
	}
	if need := 2*largest + 2*blockSize; need > smallest {
		t.Fatalf("a %d B table may take %d B of blocks; the smallest arena buffer is %d B", largest, need, smallest)
	}
}

// TestBadgerManyTablesReadBack writes enough to make badger flush and compact tables through
// several levels, then reopens the journal and reads every record back: on 32-bit ARM this
// lost data while a table could outgrow its arena (see tableSizes).
func TestBadgerManyTablesReadBack(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 30 MB")
	}
	dir := t.TempDir()
	j := openBadger(t, dir, Options{})
	for i := 0; i < 1500; i++ {
		if _, _, err := j.Append(batch(j.LastSeq()+1, 100, 200)); err != nil {
			t.Fatal(err)
		}
	}
	last := j.LastSeq()
	mustClose(t, j)
	j = openBadger(t, dir, Options{})
	defer mustClose(t, j)
	readBackAll(t, j, last, 200)
}

// readBackAll reads records 1..last of j in pages and checks their seqs and
// their size-byte data.
func readBackAll(t testing.TB, j Journal, last uint64, size int) {
	t.Helper()
	for after := uint64(0); after < last; {
		recs := mustRead(t, j, after, 10_000, 0)
		if len(recs) == 0 {
			t.Fatalf("nothing after %d of %d", after, last)
		}
		wantSeqs(t, recs, after+1, after+uint64(len(recs)))
		checkData(t, recs, size)
		after = recs[len(recs)-1].Seq
	}
}
