package persistence

import (
	"errors"
	"sync"
	"testing"
)

// dropSegments deletes every segment key behind the journal's back, so that only the tail can
// still answer for those records.
func dropSegments(t *testing.T, j *Badger) {
	t.Helper()
	if err := j.db.DropPrefix(segPrefix); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, j.db, segPrefix); n != 0 {
		t.Fatalf("%d segment keys left", n)
	}
}

// TestTailOutlivesDiskDamage: reads and acks of the latest records come from the tail, which
// holds them exactly as committed: removing them from disk changes nothing a reader sees.
func TestTailOutlivesDiskDamage(t *testing.T) {
	j := openBadger(t, t.TempDir(), Options{})
	mustAppend(t, j, batch(1, 5, 20))
	mustAppend(t, j, batch(6, 5, 20))
	dropSegments(t, j)

	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, 1, 10)
	checkData(t, recs, 20)
	wantSeqs(t, mustRead(t, j, 3, 4, 0), 4, 7)
	wantSeqs(t, mustRead(t, j, 0, 0, 50), 1, 2)

	mustAck(t, j, 7)
	if s := j.Stats(); s.Depth != 3 || s.DepthBytes != 60 || s.Acked != 7 {
		t.Fatalf("after ack 7: %+v", s)
	}
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 8, 10)
	mustAck(t, j, 10)
	if s := j.Stats(); s.Depth != 0 || s.OldestAge != 0 {
		t.Fatalf("after ack 10: %+v", s)
	}
	if len(j.tail) != 0 || j.tailBytes != 0 {
		t.Fatalf("tail holds %d records, %d bytes after everything was acked", len(j.tail), j.tailBytes)
	}
}

// TestTailBound: past tailMaxBytes the oldest records leave the tail and are read and acked
// from disk.
func TestTailBound(t *testing.T) {
	j := openBadger(t, t.TempDir(), Options{})
	const size = 40 << 10
	n := tailMaxBytes/size + 8
	for i := 1; i <= n; i++ {
		mustAppend(t, j, batch(uint64(i), 1, size))
	}
	if j.tailBytes > tailMaxBytes || len(j.tail) == 0 || j.tail[0].Seq == 1 {
		t.Fatalf("tail of %d bytes from seq %d, bound %d", j.tailBytes, j.tail[0].Seq, tailMaxBytes)
	}
	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, 1, uint64(n))
	checkData(t, recs, size)

	// The ack through the records before the tail walks the disk, the next one the tail.
	first := j.tail[0].Seq
	mustAck(t, j, first-1)
	if s := j.Stats(); s.Depth != uint64(n)-first+1 || s.DepthBytes != s.Depth*size {
		t.Fatalf("after ack %d: %+v", first-1, s)
	}
	dropSegments(t, j) // from here only the tail holds them
	recs = mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, first, uint64(n))
	checkData(t, recs, size)
	mustAck(t, j, uint64(n))
	if s := j.Stats(); s.Depth != 0 || s.Acked != uint64(n) {
		t.Fatalf("after the ack: %+v", s)
	}

	// One batch bigger than the bound is not kept at all.
	big := batch(uint64(n+1), tailMaxBytes/size+2, size)
	mustAppend(t, j, big)
	if len(j.tail) != 0 {
		t.Fatalf("a batch over the bound left %d records in the tail", len(j.tail))
	}
	recs = mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, uint64(n+1), uint64(n+len(big)))
	checkData(t, recs, size)
}

// TestTailAfterFailedAppend: an Append that failed after committing part of itself claims its
// seqs without records; the tail must not bridge that gap, and what follows reads and acks.
func TestTailAfterFailedAppend(t *testing.T) {
	fail := false
	commits := 0
	j := openBadger(t, t.TempDir(), Options{beforeCommit: func() error {
		commits++
		if fail && commits > 1 {
			return errors.New("injected")
		}
		return nil
	}})
	mustAppend(t, j, batch(1, 3, 20))
	// 20 records of 40 KB need more than one transaction; the second commit fails.
	fail, commits = true, 0
	if _, _, err := j.Append(batch(4, 20, 40<<10)); err == nil {
		t.Fatal("append did not fail")
	}
	fail = false
	if j.LastSeq() != 23 {
		t.Fatalf("LastSeq %d, want the failed batch's range claimed (23)", j.LastSeq())
	}
	mustAppend(t, j, batch(24, 2, 20))
	recs := mustRead(t, j, 0, 0, 0)
	if got := seqs(recs); len(got) != 5 || got[2] != 3 || got[3] != 24 {
		t.Fatalf("read %v, want 1-3 and 24-25", got)
	}
	wantSeqs(t, mustRead(t, j, 24, 0, 0), 25, 25)
	mustAck(t, j, 25)
	if s := j.Stats(); s.Depth != 0 || s.Acked != 5 {
		t.Fatalf("after the ack: %+v", s)
	}
	if n := countKeys(t, j.db, segPrefix); n != 0 {
		t.Fatalf("%d segment keys left", n)
	}
}

// TestTailConcurrentReaders: readers see whole, correct records while the writer appends,
// acks and trims the tail (run with -race).
func TestTailConcurrentReaders(t *testing.T) {
	j := openBadger(t, t.TempDir(), Options{})
	const batches, per, size = 300, 7, 300
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	done := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var after uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				recs, err := j.Read(after, 16, 0)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range recs {
					if string(r.Data) != string(payload(r.Seq, size)) {
						errs <- errors.New("record " + string(r.Data[:12]) + " read wrong")
						return
					}
					after = r.Seq
				}
			}
		}()
	}
	for i := range batches {
		mustAppend(t, j, batch(uint64(i*per+1), per, size))
		if i%3 == 2 {
			mustAck(t, j, uint64((i-1)*per))
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	recs := mustRead(t, j, 0, 0, 0)
	checkData(t, recs, size)
}
