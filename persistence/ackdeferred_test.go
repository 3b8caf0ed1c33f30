package persistence

import (
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// segLasts lists the last seqs of the segments on disk, acknowledged or not.
func segLasts(t *testing.T, b *Badger) []uint64 {
	t.Helper()
	var out []uint64
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: segPrefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(segPrefix); it.Next() {
			last, err := segKeySeq(it.Item().Key())
			if err != nil {
				return err
			}
			out = append(out, last)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diskCursor(t *testing.T, b *Badger) uint64 {
	t.Helper()
	var c uint64
	if err := b.db.View(func(txn *badger.Txn) (err error) {
		c, err = getUint64(txn, cursorKey)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAckDeferred(t *testing.T, j *Badger, upTo uint64) {
	t.Helper()
	if err := j.AckDeferred(upTo); err != nil {
		t.Fatalf("AckDeferred(%d): %v", upTo, err)
	}
}

// TestBadgerDeferredAck: a deferred ack hides the records at once, costs no commit of its own,
// and reaches the disk with the next Append (one commit for both), with FlushAcks, with a
// synchronous Ack, with a bound drop, or at Close; until then the disk still holds the records.
func TestBadgerDeferredAck(t *testing.T) {
	dir := t.TempDir()
	j := openBadger(t, dir, Options{})
	// One segment per Append: 4 appends of 5 records.
	for i := range 4 {
		mustAppend(t, j, batch(uint64(5*i+1), 5, 50))
	}
	commits := j.Stats().Commits

	mustAckDeferred(t, j, 10)
	if j.Cursor() != 10 || j.Stats().Depth != 10 || j.Stats().Acked != 10 {
		t.Fatalf("after AckDeferred: cursor %d stats %+v", j.Cursor(), j.Stats())
	}
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 11, 20)
	if got := j.Stats().Commits; got != commits {
		t.Fatalf("AckDeferred committed: %d commits, want %d", got, commits)
	}
	if c, segs := diskCursor(t, j), segLasts(t, j); c != 0 || len(segs) != 4 {
		t.Fatalf("before the next write: disk cursor %d, segments %v; want 0 and all four", c, segs)
	}

	// The next Append carries it: one commit.
	mustAppend(t, j, batch(21, 5, 50))
	if got := j.Stats().Commits; got != commits+1 {
		t.Fatalf("Append with a folded ack: %d commits, want %d", got, commits+1)
	}
	if c, segs := diskCursor(t, j), segLasts(t, j); c != 10 || len(segs) != 3 || segs[0] != 15 {
		t.Fatalf("after the folding Append: disk cursor %d, segments %v; want 10 and [15 20 25]", c, segs)
	}

	// FlushAcks writes a pending one once, and nothing when none is pending.
	mustAckDeferred(t, j, 12) // straddles the segment ending at 15: it stays
	commits = j.Stats().Commits
	if err := j.FlushAcks(); err != nil {
		t.Fatal(err)
	}
	if err := j.FlushAcks(); err != nil {
		t.Fatal(err)
	}
	if got := j.Stats().Commits; got != commits+1 {
		t.Fatalf("two FlushAcks: %d commits, want %d", got, commits+1)
	}
	if c, segs := diskCursor(t, j), segLasts(t, j); c != 12 || len(segs) != 3 {
		t.Fatalf("after FlushAcks: disk cursor %d, segments %v", c, segs)
	}

	// Two deferred acks then a synchronous Ack below the cursor: Ack still promises the disk.
	mustAckDeferred(t, j, 15)
	mustAckDeferred(t, j, 20)
	mustAck(t, j, 14)
	if c, segs := diskCursor(t, j), segLasts(t, j); c != 20 || len(segs) != 1 || segs[0] != 25 {
		t.Fatalf("after Ack below a deferred one: disk cursor %d, segments %v", c, segs)
	}

	// Close writes a pending one.
	mustAckDeferred(t, j, 25)
	mustClose(t, j)
	j = openBadger(t, dir, Options{})
	if j.Cursor() != 25 || j.LastSeq() != 25 || j.Stats().Depth != 0 {
		t.Fatalf("after Close with a deferred ack: cursor %d last %d %+v", j.Cursor(), j.LastSeq(), j.Stats())
	}
	if segs := segLasts(t, j); len(segs) != 0 {
		t.Fatalf("segments left after everything was acked: %v", segs)
	}
}

// TestBadgerDeferredAckWithDrop: a bound drop writes the cursor past a pending deferred ack, so
// it must delete that ack's segments in the same write or they would sit below the persisted
// cursor, never visited again.
func TestBadgerDeferredAckWithDrop(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	j := openBadger(t, dir, Options{Now: clk.Now, Limits: Limits{MaxAge: time.Minute}})
	for i := range 3 {
		mustAppend(t, j, batch(uint64(5*i+1), 5, 50))
	}
	clk.Advance(time.Minute)
	mustAppend(t, j, batch(16, 5, 50))
	mustAckDeferred(t, j, 5)
	clk.Advance(time.Second) // the first three segments expire
	mustEnforce(t, j)
	if j.Cursor() != 15 || j.Stats().Dropped != 10 || j.Stats().Acked != 5 {
		t.Fatalf("cursor %d after the drop, stats %+v", j.Cursor(), j.Stats())
	}
	if c, segs := diskCursor(t, j), segLasts(t, j); c != 15 || len(segs) != 1 || segs[0] != 20 {
		t.Fatalf("disk cursor %d, segments %v; want 15 and [20]", c, segs)
	}
}
