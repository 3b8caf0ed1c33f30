package persistence

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func openBadger(t testing.TB, dir string, opts Options) *Badger {
	t.Helper()
	j, err := OpenBadger(dir, opts)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func mustClose(t testing.TB, j Journal) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func checkData(t testing.TB, recs []Record, size int) {
	t.Helper()
	for _, r := range recs {
		if !bytes.Equal(r.Data, payload(r.Seq, size)) {
			t.Fatalf("record %d: data %.40q…", r.Seq, r.Data)
		}
	}
}

func TestBadgerRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	opts := Options{Now: clk.Now}
	j := openBadger(t, dir, opts)
	if j.Dir() != dir {
		t.Fatalf("Dir %q", j.Dir())
	}
	mustAppend(t, j, batch(1, 6, 80))
	clk.Advance(time.Second)
	mustAppend(t, j, batch(7, 4, 80))
	mustAck(t, j, 4)
	mustClose(t, j)

	clk.Advance(time.Second)
	j = openBadger(t, dir, opts)
	if j.Cursor() != 4 || j.LastSeq() != 10 {
		t.Fatalf("after reopen Cursor %d LastSeq %d", j.Cursor(), j.LastSeq())
	}
	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, 5, 10)
	checkData(t, recs, 80)
	// The ledger is rebuilt from disk; counters since open start at zero.
	s := j.Stats()
	if s.Depth != 6 || s.DepthBytes != 6*80 || s.OldestAge != 2*time.Second || s.Appended != 0 || s.Acked != 0 {
		t.Fatalf("stats after reopen: %+v", s)
	}
	if s.DiskBytes <= 0 {
		t.Fatalf("DiskBytes %d", s.DiskBytes)
	}
	if f, _ := mustAppend(t, j, batch(11, 1, 80)); f != 11 {
		t.Fatalf("seq after reopen %d, want 11", f)
	}

	// Everything acked: the next seq must still continue, not restart from the cursor's view.
	mustAck(t, j, 11)
	mustClose(t, j)
	j = openBadger(t, dir, opts)
	if j.Cursor() != 11 || j.LastSeq() != 11 || j.Stats().Depth != 0 || j.Stats().OldestAge != 0 {
		t.Fatalf("after reopen empty: Cursor %d LastSeq %d %+v", j.Cursor(), j.LastSeq(), j.Stats())
	}
	if f, _ := mustAppend(t, j, batch(12, 1, 80)); f != 12 {
		t.Fatalf("seq reused: got %d, want 12", f)
	}
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 12, 12)
}

// TestBadgerRecoverAfterPartialWrites covers the states a crash can leave between badger
// transactions of one Append or Ack.
func TestBadgerRecoverAfterPartialWrites(t *testing.T) {
	t.Run("DeletesWithoutCursor", func(t *testing.T) {
		dir := t.TempDir()
		j := openBadger(t, dir, Options{})
		// Three Appends: three segments, 1..3, 4..6 and 7..10.
		mustAppend(t, j, batch(1, 3, 20))
		mustAppend(t, j, batch(4, 3, 20))
		mustAppend(t, j, batch(7, 4, 20))
		deleteSegments(t, j.db, 8) // an Ack(8) that died before writing its cursor
		mustClose(t, j)
		j = openBadger(t, dir, Options{})
		if j.Cursor() != 6 || j.LastSeq() != 10 || j.Stats().Depth != 4 || j.Stats().DepthBytes != 4*20 {
			t.Fatalf("Cursor %d LastSeq %d %+v", j.Cursor(), j.LastSeq(), j.Stats())
		}
		// The straddling segment is still whole: 7 and 8 are delivered again (at least once).
		recs := mustRead(t, j, 0, 0, 0)
		wantSeqs(t, recs, 7, 10)
		checkData(t, recs, 20)
		deleteSegments(t, j.db, 10)
		mustClose(t, j)
		j = openBadger(t, dir, Options{})
		if j.Cursor() != 10 || j.LastSeq() != 10 || j.Stats().Depth != 0 {
			t.Fatalf("all deleted: Cursor %d LastSeq %d %+v", j.Cursor(), j.LastSeq(), j.Stats())
		}
		if f, _ := mustAppend(t, j, batch(11, 1, 20)); f != 11 {
			t.Fatalf("seq reused: %d", f)
		}
	})
	t.Run("StraddlingSegment", func(t *testing.T) {
		// An Ack inside a segment keeps the segment; after a restart (or a crash) the cursor
		// alone hides the acknowledged prefix, from reads, the ledger and later acks.
		dir := t.TempDir()
		clk := newFakeClock()
		j := openBadger(t, dir, Options{Now: clk.Now})
		mustAppend(t, j, batch(1, 10, 30))
		clk.Advance(time.Second)
		mustAppend(t, j, batch(11, 10, 30))
		mustAck(t, j, 4)
		if n := countKeys(t, j.db, segPrefix); n != 2 {
			t.Fatalf("%d segments after an ack inside the first, want 2", n)
		}
		mustAck(t, j, 13)
		if n := countKeys(t, j.db, segPrefix); n != 1 {
			t.Fatalf("%d segments after an ack covering the first, want 1", n)
		}
		mustClose(t, j)
		j = openBadger(t, dir, Options{Now: clk.Now})
		s := j.Stats()
		if j.Cursor() != 13 || s.Depth != 7 || s.DepthBytes != 7*30 || s.OldestAge != 0 {
			t.Fatalf("after reopen Cursor %d %+v", j.Cursor(), s)
		}
		recs := mustRead(t, j, 0, 0, 0)
		wantSeqs(t, recs, 14, 20)
		checkData(t, recs, 30)
		wantSeqs(t, mustRead(t, j, 15, 2, 0), 16, 17)
		mustAck(t, j, 16)
		if s := j.Stats(); s.Depth != 4 || s.DepthBytes != 4*30 || s.Acked != 3 {
			t.Fatalf("after ack %+v", s)
		}
		mustAck(t, j, 20)
		if n := countKeys(t, j.db, segPrefix); n != 0 {
			t.Fatalf("%d segments left after acking everything", n)
		}
	})
	t.Run("ClaimedButUnwritten", func(t *testing.T) {
		dir := t.TempDir()
		j := openBadger(t, dir, Options{})
		mustAppend(t, j, batch(1, 5, 20))
		// The first transaction of a 20-record Append committed, the rest did not.
		if err := j.db.Update(func(txn *badger.Txn) error {
			return txn.Set(lastKey, binary.BigEndian.AppendUint64(nil, 20))
		}); err != nil {
			t.Fatal(err)
		}
		mustClose(t, j)
		j = openBadger(t, dir, Options{})
		if j.LastSeq() != 20 || j.Cursor() != 0 || j.Stats().Depth != 5 {
			t.Fatalf("LastSeq %d Cursor %d %+v", j.LastSeq(), j.Cursor(), j.Stats())
		}
		if f, _ := mustAppend(t, j, batch(21, 1, 20)); f != 21 {
			t.Fatalf("claimed seq reused: %d", f)
		}
		wantSeqs(t, mustRead(t, j, 5, 0, 0), 21, 21) // a read from inside the gap
		mustAck(t, j, 21)
		if s := j.Stats(); s.Depth != 0 || s.DepthBytes != 0 || s.Acked != 6 {
			t.Fatalf("after acking across the gap: %+v", s)
		}
	})
}

// deleteSegments deletes the segments holding only records <= upTo, as the first
// transactions of an Ack(upTo) do, without writing the cursor.
func deleteSegments(t *testing.T, db *badger.DB, upTo uint64) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: segPrefix})
		var keys [][]byte
		for it.Rewind(); it.ValidForPrefix(segPrefix); it.Next() {
			if last, _ := segKeySeq(it.Item().Key()); last <= upTo {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func countKeys(t testing.TB, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBadgerLargeBatches pushes an Append past badger's per-transaction limit (15% of the
// memtable) so the chunked path runs, and acks across many segments.
func TestBadgerLargeBatches(t *testing.T) {
	dir := t.TempDir()
	j := openBadger(t, dir, Options{})
	// About 310 KB of segments fit in one transaction (470 KB with 32-bit int), as stored:
	// incompressible records, so that ~2.4 MB in one Append needs several transactions.
	const n, size = 12_000, 200
	data := noiseBatch(1, n, size)
	commits := j.Stats().Commits
	first, last := mustAppend(t, j, data)
	if first != 1 || last != n {
		t.Fatalf("Append = %d..%d", first, last)
	}
	if c := j.Stats().Commits - commits; c < 4 {
		t.Fatalf("the Append took %d transactions: not split", c)
	}
	for j.LastSeq() < 30_000 {
		mustAppend(t, j, batch(j.LastSeq()+1, int(min(4000, 30_000-j.LastSeq())), 1))
	}
	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs[:n], 1, n)
	for i, r := range recs[:n] {
		if !bytes.Equal(r.Data, data[i]) {
			t.Fatalf("record %d differs", r.Seq)
		}
	}
	mustAck(t, j, 29_990) // dozens of segments deleted, the last one straddles
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 29_991, 30_000)
	checkLedger(t, j)
	mustClose(t, j)
	j = openBadger(t, dir, Options{})
	if j.Cursor() != 29_990 || j.Stats().Depth != 10 {
		t.Fatalf("after reopen Cursor %d %+v", j.Cursor(), j.Stats())
	}
}

// TestBadgerValueLog covers records above the value threshold, which badger keeps in the
// value log rather than inline, each in a segment of its own: sizes must still be exact, and GC
// must run safely alongside.
func TestBadgerValueLog(t *testing.T) {
	dir := t.TempDir()
	opts := Options{GCInterval: time.Millisecond}
	j := openBadger(t, dir, opts)
	const size = valueThreshold + 1000
	for range 20 {
		mustAppend(t, j, batch(j.LastSeq()+1, 6, size))
		mustAck(t, j, j.LastSeq()-3)
	}
	checkLedger(t, j)
	checkData(t, mustRead(t, j, 0, 0, 0), size)
	if s := j.Stats(); s.DepthBytes != 3*size {
		t.Fatalf("DepthBytes %d", s.DepthBytes)
	}
	mustClose(t, j)
	j = openBadger(t, dir, opts)
	if s := j.Stats(); s.Depth != 3 || s.DepthBytes != 3*size {
		t.Fatalf("after reopen %+v", s)
	}
	checkData(t, mustRead(t, j, 0, 0, 0), size)
}

func TestBadgerReopenEnforcesLimits(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	j := openBadger(t, dir, Options{Now: clk.Now})
	mustAppend(t, j, batch(1, 10, 10))
	clk.Advance(time.Minute)
	mustAppend(t, j, batch(11, 10, 10))
	mustClose(t, j)

	clk.Advance(30 * time.Second)
	j = openBadger(t, dir, Options{Now: clk.Now, Limits: Limits{MaxAge: time.Minute, MaxRecords: 5}})
	if j.Cursor() != 15 {
		t.Fatalf("Cursor %d after reopen with tighter limits", j.Cursor())
	}
	wantDrops(t, j, "max_age", 10)
	wantDrops(t, j, "max_records", 5)
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 16, 20)
	mustClose(t, j)
	j = openBadger(t, dir, Options{Now: clk.Now})
	if j.Cursor() != 15 {
		t.Fatalf("drop cursor not persisted: %d", j.Cursor())
	}
}
