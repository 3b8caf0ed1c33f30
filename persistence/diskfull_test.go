package persistence

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// fakeDisk is the injectable free-space figure.
type fakeDisk struct {
	free  atomic.Uint64
	calls atomic.Int64
}

func (d *fakeDisk) freeSpace(string) (uint64, error) {
	d.calls.Add(1)
	return d.free.Load(), nil
}

func logsWith(t *testing.T, buf *lockedBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range buf.lines(t) {
		if m, _ := l["message"].(string); strings.Contains(m, msg) {
			out = append(out, l)
		}
	}
	return out
}

const refusedMsg = "below its free-space reserve"

// TestBadgerDiskReserve: below the reserve Append refuses whole batches (typed error, counted
// as disk_full, warned about at once and then rate-limited), acks still work, and appends
// resume when space comes back, which is logged once.
func TestBadgerDiskReserve(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	disk := &fakeDisk{}
	disk.free.Store(100 << 20)
	var logs lockedBuffer
	opts := Options{
		Now: clk.Now, Logger: zerolog.New(&logs), freeSpace: disk.freeSpace,
		Limits: Limits{MinFreeBytes: 10 << 20},
	}
	j := openBadger(t, dir, opts)
	mustAppend(t, j, batch(1, 10, 100))

	disk.free.Store(9 << 20)
	mustAppend(t, j, batch(11, 10, 100)) // the figure is fresh: not measured again yet
	clk.Advance(diskCheckEvery)
	_, _, err := j.Append(batch(21, 7, 100))
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append below the reserve: %v, want ErrDiskFull", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
	if _, _, err := j.Append(batch(21, 3, 100)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("second Append below the reserve: %v", err)
	}
	s := j.Stats()
	if j.LastSeq() != 20 || s.Depth != 20 || s.Dropped != 10 || s.DroppedByCause["disk_full"] != 10 {
		t.Fatalf("after refusals LastSeq %d %+v", j.LastSeq(), s)
	}
	warns := logsWith(t, &logs, refusedMsg)
	if len(warns) != 1 || warns[0]["dir"] != dir || warns[0]["free_bytes"] != float64(9<<20) || warns[0]["refused"] != float64(7) {
		t.Fatalf("refusal warnings %v, want one naming the dir and free bytes", warns)
	}
	mustAck(t, j, 5) // acks free space, so they go on below the reserve

	disk.free.Store(11 << 20)
	if _, _, err := j.Append(batch(21, 1, 100)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("refused until measured again: %v", err)
	}
	clk.Advance(dropLogEvery)
	mustEnforce(t, j) // the periodic Enforce logs what the rate limit held back
	if warns := logsWith(t, &logs, refusedMsg); len(warns) != 2 || warns[1]["refused"] != float64(4) || warns[1]["refused_since_full"] != float64(11) {
		t.Fatalf("refusal warnings after Enforce %v", warns)
	}
	if f, _ := mustAppend(t, j, batch(21, 5, 100)); f != 21 {
		t.Fatalf("first seq after the disk had room again %d, want 21", f)
	}
	back := logsWith(t, &logs, "room again")
	if len(back) != 1 || back[0]["refused"] != float64(11) {
		t.Fatalf("resume lines %v, want one counting 11 refused", back)
	}
	mustClose(t, j)
	if warns := logsWith(t, &logs, refusedMsg); len(warns) != 2 {
		t.Fatalf("nothing left for Close to log: %v", warns)
	}
	j = openBadger(t, dir, Options{})
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 6, 25)
}

// TestBadgerDiskCheckCadence: free space is measured once per interval, or sooner when the
// bytes appended could have used a quarter of the headroom, never per append.
func TestBadgerDiskCheckCadence(t *testing.T) {
	clk := newFakeClock()
	disk := &fakeDisk{}
	disk.free.Store(1<<20 + 400<<10) // 400 KB above the reserve
	j := openBadger(t, t.TempDir(), Options{Now: clk.Now, freeSpace: disk.freeSpace, Limits: Limits{MinFreeBytes: 1 << 20}})
	for i := range 50 {
		mustAppend(t, j, batch(uint64(i+1), 1, 100)) // 5 KB in all, far below 100 KB
	}
	if n := disk.calls.Load(); n != 1 {
		t.Fatalf("%d free-space checks for 50 small appends within one interval, want 1", n)
	}
	clk.Advance(diskCheckEvery)
	mustAppend(t, j, batch(51, 1, 100))
	if n := disk.calls.Load(); n != 2 {
		t.Fatalf("%d checks after the interval, want 2", n)
	}
	// A burst eats the headroom faster than the clock moves.
	disk.free.Store(1<<20 - 1)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, _, err = j.Append(batch(j.LastSeq()+1, 10, 3000))
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a burst of 300 KB into 400 KB of headroom was never measured: %v (%d checks)", err, disk.calls.Load())
	}

	// Without a reserve nothing is measured.
	disk2 := &fakeDisk{}
	j2 := openBadger(t, t.TempDir(), Options{freeSpace: disk2.freeSpace})
	mustAppend(t, j2, batch(1, 1, 10))
	if n := disk2.calls.Load(); n != 0 {
		t.Fatalf("%d checks without a reserve", n)
	}
}

// TestBadgerAppendWriteError: a batch whose commit fails part-way leaves nothing of itself
// behind, the journal stays readable and consistent, and a failure for lack of space is a
// disk_full drop that refuses appends until space is measured again.
func TestBadgerAppendWriteError(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		full bool
	}{
		{"NoSpace", fmt.Errorf("write wal: %w", syscall.ENOSPC), true},
		{"IO", errors.New("write wal: input/output error"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newFakeClock()
			disk := &fakeDisk{}
			disk.free.Store(1 << 40)
			var commits atomic.Int64
			failAt := int64(-1)
			opts := Options{Now: clk.Now, freeSpace: disk.freeSpace, beforeCommit: func() error {
				if commits.Add(1) == failAt {
					return c.err
				}
				return nil
			}}
			j := openBadger(t, dir, opts)
			mustAppend(t, j, batch(1, 100, 200))
			mustAck(t, j, 10)

			// About 2.4 MB: several transactions, the second one fails.
			failAt = commits.Load() + 2
			_, _, err := j.Append(noiseBatch(101, 12_000, 200))
			if err == nil || !errors.Is(err, c.err) || errors.Is(err, ErrDiskFull) != c.full {
				t.Fatalf("Append with a failing commit: %v", err)
			}
			if commits.Load() < failAt {
				t.Fatalf("only %d commits: the batch was not split", commits.Load())
			}
			s := j.Stats()
			if s.Depth != 90 || s.DepthBytes != 90*200 || s.Appended != 100 {
				t.Fatalf("a failed batch left records behind: %+v", s)
			}
			if want := map[bool]uint64{true: 12_000}[c.full]; s.DroppedByCause["disk_full"] != want {
				t.Fatalf("disk_full drops %d, want %d", s.DroppedByCause["disk_full"], want)
			}
			recs := mustRead(t, j, 0, 0, 0)
			wantSeqs(t, recs, 11, 100)
			checkData(t, recs, 200)

			_, _, err = j.Append(batch(1, 1, 200))
			if c.full {
				if !errors.Is(err, ErrDiskFull) {
					t.Fatalf("Append right after no space: %v, want a refusal", err)
				}
				clk.Advance(diskCheckEvery)
				_, _, err = j.Append(batch(1, 1, 200))
			}
			if err != nil {
				t.Fatalf("Append once there is room: %v", err)
			}
			// The failed batch claimed its seqs (its first transaction committed): never reused.
			if j.LastSeq() != 100+12_000+1 {
				t.Fatalf("LastSeq %d, want %d", j.LastSeq(), 100+12_000+1)
			}
			mustClose(t, j)
			j = openBadger(t, dir, Options{})
			recs = mustRead(t, j, 0, 0, 0)
			if len(recs) != 91 || recs[0].Seq != 11 || recs[89].Seq != 100 || recs[90].Seq != 12_101 {
				t.Fatalf("after reopen %d records %v...", len(recs), seqs(recs[:min(3, len(recs))]))
			}
			if s := j.Stats(); s.Depth != 91 || s.DepthBytes != 91*200 {
				t.Fatalf("after reopen %+v", s)
			}
		})
	}
}

// TestBadgerDiskReserveWithoutMeasure: a free-space figure that cannot be had disables the
// reserve (logged once) rather than the journal.
func TestBadgerDiskReserveWithoutMeasure(t *testing.T) {
	clk := newFakeClock()
	var logs lockedBuffer
	j := openBadger(t, t.TempDir(), Options{
		Now: clk.Now, Logger: zerolog.New(&logs), Limits: Limits{MinFreeBytes: 1 << 20},
		freeSpace: func(string) (uint64, error) { return 0, errors.New("statfs: not supported") },
	})
	for range 3 {
		mustAppend(t, j, batch(j.LastSeq()+1, 1, 10))
		clk.Advance(diskCheckEvery)
	}
	if n := len(logsWith(t, &logs, "cannot measure")); n != 1 {
		t.Fatalf("%d warnings about the missing figure, want 1", n)
	}
}

func TestFreeSpace(t *testing.T) {
	free, err := freeSpace(t.TempDir())
	if err != nil {
		t.Skipf("not measured here: %v", err)
	}
	if free == 0 {
		t.Fatalf("no free space in the temp dir?")
	}
	if _, err := freeSpace(t.TempDir() + "/missing"); err == nil {
		t.Fatalf("statfs of a missing directory succeeded")
	}
}

func TestBlockBytes(t *testing.T) {
	if got := blockBytes(int64(-3), int32(4096)); got != 0 {
		t.Errorf("negative count: %d", got)
	}
	if got := blockBytes(uint64(10), int32(4096)); got != 40960 {
		t.Errorf("10 blocks: %d", got)
	}
	if got := blockBytes(uint64(1<<60), uint32(1<<10)); got != 1<<64-1 {
		t.Errorf("overflow not saturated: %d", got)
	}
}
