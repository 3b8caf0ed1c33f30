package persistence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeClock is the injectable clock for age tests: time moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lockedBuffer lets the journal log into a buffer the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// opener creates a fresh, empty journal; the suite closes it.
type opener func(t *testing.T, opts Options) Journal

func payload(seq uint64, size int) []byte {
	p := fmt.Appendf(nil, "seq-%d|", seq)
	for len(p) < size {
		p = append(p, byte('a'+seq%26))
	}
	return p
}

func batch(firstSeq uint64, n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = payload(firstSeq+uint64(i), size)
	}
	return out
}

// noiseBatch is batch with incompressible payloads, for tests that need an Append to store
// about as many bytes as its records hold (Badger compresses segments).
func noiseBatch(firstSeq uint64, n, size int) [][]byte {
	r := rand.New(rand.NewPCG(firstSeq, uint64(size)))
	out := make([][]byte, n)
	for i := range out {
		p := fmt.Appendf(make([]byte, 0, size), "seq-%d|", firstSeq+uint64(i))
		for len(p) < size {
			p = append(p, byte(r.Uint32()))
		}
		out[i] = p
	}
	return out
}

func mustAppend(t testing.TB, j Journal, data [][]byte) (uint64, uint64) {
	t.Helper()
	first, last, err := j.Append(data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return first, last
}

func mustRead(t testing.TB, j Journal, after uint64, maxRecords, maxBytes int) []Record {
	t.Helper()
	recs, err := j.Read(after, maxRecords, maxBytes)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return recs
}

func mustAck(t testing.TB, j Journal, upTo uint64) {
	t.Helper()
	if err := j.Ack(upTo); err != nil {
		t.Fatalf("Ack(%d): %v", upTo, err)
	}
}

func mustEnforce(t testing.TB, j Journal) {
	t.Helper()
	if err := j.(Enforcer).Enforce(); err != nil {
		t.Fatalf("Enforce: %v", err)
	}
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func wantSeqs(t testing.TB, recs []Record, from, to uint64) {
	t.Helper()
	got := seqs(recs)
	if from > to {
		if len(got) != 0 {
			t.Fatalf("seqs = %v, want none", got)
		}
		return
	}
	if len(got) != int(to-from+1) || got[0] != from || got[len(got)-1] != to {
		if len(got) > 20 {
			t.Fatalf("%d seqs %d..%d, want %d..%d", len(got), got[0], got[len(got)-1], from, to)
		}
		t.Fatalf("seqs = %v, want %d..%d", got, from, to)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("seqs not contiguous: %v", got)
		}
	}
}

// checkLedger verifies the invariants that must hold after any operation on a journal that was
// empty when opened.
func checkLedger(t testing.TB, j Journal) {
	t.Helper()
	s := j.Stats()
	// Refused appends never got a seq: they count as dropped but not as appended.
	if held := s.Dropped - s.DroppedByCause["disk_full"]; s.Appended-s.Acked-held != s.Depth {
		t.Fatalf("Appended %d - Acked %d - Dropped %d (held first) != Depth %d", s.Appended, s.Acked, held, s.Depth)
	}
	if s.Depth != j.LastSeq()-j.Cursor() {
		t.Fatalf("Depth %d != LastSeq %d - Cursor %d", s.Depth, j.LastSeq(), j.Cursor())
	}
	var sum uint64
	for _, n := range s.DroppedByCause {
		sum += n
	}
	if sum != s.Dropped {
		t.Fatalf("DroppedByCause %v sums to %d, Dropped %d", s.DroppedByCause, sum, s.Dropped)
	}
	recs := mustRead(t, j, 0, 0, 0)
	var bytes uint64
	for _, r := range recs {
		bytes += uint64(len(r.Data))
	}
	if uint64(len(recs)) != s.Depth || bytes != s.DepthBytes {
		t.Fatalf("held %d records / %d bytes, Stats says %d / %d", len(recs), bytes, s.Depth, s.DepthBytes)
	}
	if len(recs) > 0 {
		wantSeqs(t, recs, j.Cursor()+1, j.LastSeq())
	}
}

func wantDrops(t testing.TB, j Journal, cause string, n uint64) {
	t.Helper()
	if got := j.Stats().DroppedByCause[cause]; got != n {
		t.Fatalf("dropped by %s = %d, want %d (stats %+v)", cause, got, n, j.Stats())
	}
}

// runConformance is the contract every Journal implementation must meet.
func runConformance(t *testing.T, open opener) {
	newJ := func(t *testing.T, opts Options) (Journal, *fakeClock) {
		clk := newFakeClock()
		if opts.Now == nil {
			opts.Now = clk.Now
		}
		j := open(t, opts)
		t.Cleanup(func() { _ = j.Close() })
		return j, clk
	}

	t.Run("AppendReadOrder", func(t *testing.T) {
		j, clk := newJ(t, Options{})
		if f, l, err := j.Append(nil); err != nil || f != 0 || l != 0 {
			t.Fatalf("empty Append = %d,%d,%v", f, l, err)
		}
		for _, tc := range []struct{ n, first, last uint64 }{{1, 1, 1}, {5, 2, 6}, {10, 7, 16}} {
			f, l := mustAppend(t, j, batch(tc.first, int(tc.n), 50))
			if f != tc.first || l != tc.last {
				t.Fatalf("Append = %d..%d, want %d..%d", f, l, tc.first, tc.last)
			}
		}
		if j.LastSeq() != 16 || j.Cursor() != 0 {
			t.Fatalf("LastSeq %d Cursor %d", j.LastSeq(), j.Cursor())
		}
		recs := mustRead(t, j, 0, 0, 0)
		wantSeqs(t, recs, 1, 16)
		for _, r := range recs {
			if !bytes.Equal(r.Data, payload(r.Seq, 50)) {
				t.Fatalf("record %d data %q", r.Seq, r.Data)
			}
			if r.Time != clk.Now().UnixNano() {
				t.Fatalf("record %d time %d, want %d", r.Seq, r.Time, clk.Now().UnixNano())
			}
		}
		checkLedger(t, j)
	})

	t.Run("ReadAfterCursor", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		mustAppend(t, j, batch(1, 16, 20))
		wantSeqs(t, mustRead(t, j, 5, 0, 0), 6, 16)
		wantSeqs(t, mustRead(t, j, 16, 0, 0), 1, 0)
		wantSeqs(t, mustRead(t, j, 1000, 0, 0), 1, 0)
		mustAck(t, j, 4)
		// A reader behind the cursor resumes after it rather than seeing acked records.
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 5, 16)
		wantSeqs(t, mustRead(t, j, 2, 3, 0), 5, 7)
	})

	t.Run("ReadLimits", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		mustAppend(t, j, batch(1, 10, 100))
		wantSeqs(t, mustRead(t, j, 0, 3, 0), 1, 3)
		wantSeqs(t, mustRead(t, j, 0, 0, 250), 1, 2)
		wantSeqs(t, mustRead(t, j, 0, 0, 300), 1, 3)
		wantSeqs(t, mustRead(t, j, 0, 0, 50), 1, 1) // always at least one record
		wantSeqs(t, mustRead(t, j, 0, 5, 100000), 1, 5)
		wantSeqs(t, mustRead(t, j, 7, 100, 100000), 8, 10)
	})

	t.Run("DataNotAliased", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		in := batch(1, 3, 30)
		mustAppend(t, j, in)
		for _, d := range in {
			clear(d) // the caller may reuse its buffers once Append returns
		}
		recs := mustRead(t, j, 0, 0, 0)
		for _, r := range recs {
			if !bytes.Equal(r.Data, payload(r.Seq, 30)) {
				t.Fatalf("record %d changed with caller's buffer: %q", r.Seq, r.Data)
			}
		}
		recs[0].Data = append(recs[0].Data, "overflow"...)
		clear(recs[1].Data)
		again := mustRead(t, j, 0, 0, 0)
		for _, r := range again {
			if !bytes.Equal(r.Data, payload(r.Seq, 30)) {
				t.Fatalf("record %d changed through a returned slice: %q", r.Seq, r.Data)
			}
		}
		if !bytes.Equal(recs[2].Data, payload(3, 30)) {
			t.Fatalf("appending to one returned record overwrote the next: %q", recs[2].Data)
		}
	})

	t.Run("AckDeletes", func(t *testing.T) {
		j, clk := newJ(t, Options{})
		mustAppend(t, j, batch(1, 10, 40))
		clk.Advance(time.Second)
		mustAck(t, j, 4)
		if j.Cursor() != 4 {
			t.Fatalf("Cursor %d", j.Cursor())
		}
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 5, 10)
		s := j.Stats()
		if s.Depth != 6 || s.DepthBytes != 6*40 || s.Acked != 4 || s.OldestAge != time.Second {
			t.Fatalf("stats after Ack(4): %+v", s)
		}
		checkLedger(t, j)
		mustAck(t, j, 10)
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 1, 0)
		s = j.Stats()
		if s.Depth != 0 || s.DepthBytes != 0 || s.OldestAge != 0 || s.Acked != 10 {
			t.Fatalf("stats after Ack(10): %+v", s)
		}
		checkLedger(t, j)
	})

	t.Run("AckBelowCursorNoop", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		mustAppend(t, j, batch(1, 10, 10))
		mustAck(t, j, 5)
		mustAck(t, j, 3)
		mustAck(t, j, 5)
		mustAck(t, j, 0)
		if j.Cursor() != 5 || j.Stats().Acked != 5 {
			t.Fatalf("Cursor %d Acked %d", j.Cursor(), j.Stats().Acked)
		}
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 6, 10)
		checkLedger(t, j)
	})

	t.Run("AckBeyondLastClamped", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		mustAck(t, j, 7) // nothing appended yet
		if j.Cursor() != 0 {
			t.Fatalf("Cursor %d after Ack on empty journal", j.Cursor())
		}
		mustAppend(t, j, batch(1, 5, 10))
		mustAck(t, j, 100)
		if j.Cursor() != 5 || j.LastSeq() != 5 || j.Stats().Acked != 5 {
			t.Fatalf("Cursor %d LastSeq %d Acked %d", j.Cursor(), j.LastSeq(), j.Stats().Acked)
		}
		f, l := mustAppend(t, j, batch(6, 2, 10))
		if f != 6 || l != 7 {
			t.Fatalf("Append after clamped ack = %d..%d", f, l)
		}
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 6, 7)
		checkLedger(t, j)
	})

	t.Run("StatsConsistent", func(t *testing.T) {
		j, clk := newJ(t, Options{Limits: Limits{MaxRecords: 300, MaxBytes: 40_000, MaxAge: time.Minute}})
		rng := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			switch op := rng.IntN(10); {
			case op < 6:
				n := 1 + rng.IntN(20)
				mustAppend(t, j, batch(j.LastSeq()+1, n, 1+rng.IntN(300)))
			case op < 9:
				mustAck(t, j, j.Cursor()+uint64(rng.IntN(30)))
			default:
				clk.Advance(time.Duration(rng.IntN(20)) * time.Second)
				mustEnforce(t, j)
			}
			checkLedger(t, j)
		}
		if s := j.Stats(); s.Dropped == 0 || s.Acked == 0 {
			t.Fatalf("random run exercised neither drops nor acks: %+v", s)
		}
	})

	t.Run("BoundRecords", func(t *testing.T) {
		j, _ := newJ(t, Options{Limits: Limits{MaxRecords: 5}})
		mustAppend(t, j, batch(1, 3, 10))
		mustAppend(t, j, batch(4, 3, 10))
		if j.Cursor() != 1 {
			t.Fatalf("Cursor %d, want oldest dropped", j.Cursor())
		}
		wantDrops(t, j, "max_records", 1)
		mustAppend(t, j, batch(7, 10, 10))
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 12, 16)
		wantDrops(t, j, "max_records", 11)
		wantDrops(t, j, "max_bytes", 0)
		wantDrops(t, j, "max_age", 0)
		checkLedger(t, j)
	})

	t.Run("BoundBytes", func(t *testing.T) {
		j, _ := newJ(t, Options{Limits: Limits{MaxBytes: 1000}})
		mustAppend(t, j, batch(1, 15, 100))
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 6, 15)
		wantDrops(t, j, "max_bytes", 5)
		if s := j.Stats(); s.DepthBytes != 1000 {
			t.Fatalf("DepthBytes %d", s.DepthBytes)
		}
		// A record bigger than the bound is still kept, as the only one.
		mustAppend(t, j, [][]byte{payload(16, 5000)})
		recs := mustRead(t, j, 0, 0, 0)
		wantSeqs(t, recs, 16, 16)
		if len(recs[0].Data) != 5000 || j.Stats().DepthBytes != 5000 {
			t.Fatalf("oversize record not kept: %+v", j.Stats())
		}
		mustAppend(t, j, [][]byte{payload(17, 100)})
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 17, 17)
		wantDrops(t, j, "max_bytes", 16)
		checkLedger(t, j)
	})

	t.Run("BoundAge", func(t *testing.T) {
		j, clk := newJ(t, Options{Limits: Limits{MaxAge: time.Minute}})
		mustAppend(t, j, batch(1, 5, 10))
		clk.Advance(30 * time.Second)
		mustAppend(t, j, batch(6, 5, 10))
		if age := j.Stats().OldestAge; age != 30*time.Second {
			t.Fatalf("OldestAge %v", age)
		}
		clk.Advance(30 * time.Second)
		mustEnforce(t, j) // exactly MaxAge old is still within the bound
		wantDrops(t, j, "max_age", 0)
		clk.Advance(time.Second)
		mustEnforce(t, j)
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 6, 10)
		wantDrops(t, j, "max_age", 5)
		if age := j.Stats().OldestAge; age != 31*time.Second {
			t.Fatalf("OldestAge after drop %v", age)
		}
		// Appends enforce age too, without waiting for the periodic Enforce.
		clk.Advance(time.Minute)
		mustAppend(t, j, batch(11, 1, 10))
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 11, 11)
		wantDrops(t, j, "max_age", 10)
		// Age alone may empty the journal.
		clk.Advance(2 * time.Minute)
		mustEnforce(t, j)
		if s := j.Stats(); s.Depth != 0 || s.OldestAge != 0 || j.Cursor() != 11 {
			t.Fatalf("after everything expired: %+v cursor %d", s, j.Cursor())
		}
		wantDrops(t, j, "max_age", 11)
		checkLedger(t, j)
	})

	t.Run("BoundCauses", func(t *testing.T) {
		j, clk := newJ(t, Options{Limits: Limits{MaxAge: time.Minute, MaxRecords: 8, MaxBytes: 500}})
		mustAppend(t, j, batch(1, 4, 10))
		clk.Advance(2 * time.Minute)
		// 4 expired, then 10 fresh records of 100 bytes: 2 over the count, then bytes.
		mustAppend(t, j, batch(5, 10, 100))
		wantDrops(t, j, "max_age", 4)
		wantDrops(t, j, "max_records", 2)
		wantDrops(t, j, "max_bytes", 3)
		wantSeqs(t, mustRead(t, j, 0, 0, 0), 10, 14)
		checkLedger(t, j)
	})

	t.Run("DropLogRateLimited", func(t *testing.T) {
		var buf lockedBuffer
		j, clk := newJ(t, Options{Limits: Limits{MaxRecords: 1}, Logger: zerolog.New(&buf)})
		mustAppend(t, j, batch(1, 2, 10)) // drop 1: logged at once
		clk.Advance(time.Second)
		mustAppend(t, j, batch(3, 1, 10)) // suppressed
		clk.Advance(5 * time.Second)
		mustAppend(t, j, batch(4, 2, 10)) // suppressed (2 more)
		if n := len(buf.lines(t)); n != 1 {
			t.Fatalf("%d log lines within 10 s, want 1", n)
		}
		clk.Advance(4 * time.Second)
		mustEnforce(t, j) // 10 s since the line: flushes what was suppressed
		lines := buf.lines(t)
		if len(lines) != 2 {
			t.Fatalf("%d log lines, want 2: %v", len(lines), lines)
		}
		if lines[0]["level"] != "warn" || lines[0]["dropped"] != 1.0 {
			t.Fatalf("first line %v", lines[0])
		}
		if lines[1]["dropped"] != 3.0 || lines[1]["max_records"] != 3.0 || lines[1]["dropped_total"] != 4.0 {
			t.Fatalf("second line %v, want the 3 suppressed drops", lines[1])
		}
		clk.Advance(time.Second)
		mustAppend(t, j, batch(6, 1, 10)) // suppressed until Close
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		lines = buf.lines(t)
		if len(lines) != 3 || lines[2]["dropped"] != 1.0 {
			t.Fatalf("Close did not flush the suppressed drop: %v", lines)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		j, _ := newJ(t, Options{})
		mustAppend(t, j, batch(1, 1, 10))
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, _, err := j.Append(batch(2, 1, 10)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
		if _, err := j.Read(0, 0, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if err := j.Ack(1); !errors.Is(err, ErrClosed) {
			t.Fatalf("Ack after Close: %v", err)
		}
		if err := j.(Enforcer).Enforce(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Enforce after Close: %v", err)
		}
	})

	t.Run("ConcurrentReaders", func(t *testing.T) {
		j, clk := newJ(t, Options{Limits: Limits{MaxRecords: 400}})
		const batches, perBatch, readers = 150, 10, 4
		done := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, readers+1)
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var after uint64
				for {
					finished := false
					select {
					case <-done:
						finished = true
					default:
					}
					recs, err := j.Read(after, 7+r*13, 2000)
					if err != nil {
						errs <- err
						return
					}
					for _, rec := range recs {
						if rec.Seq <= after {
							errs <- fmt.Errorf("reader %d: seq %d after %d", r, rec.Seq, after)
							return
						}
						if !bytes.Equal(rec.Data, payload(rec.Seq, 64)) {
							errs <- fmt.Errorf("reader %d: seq %d data %q", r, rec.Seq, rec.Data)
							return
						}
						after = rec.Seq
					}
					_ = j.Stats()
					if c := j.Cursor(); c > j.LastSeq() {
						errs <- fmt.Errorf("cursor %d beyond last", c)
						return
					}
					// Stop only after the writer is done and this reader drained what was
					// left: a deterministic end, whatever the interleaving.
					if finished && len(recs) == 0 {
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			for i := range batches {
				first, _, err := j.Append(batch(j.LastSeq()+1, perBatch, 64))
				if err != nil {
					errs <- err
					return
				}
				if i%3 == 0 {
					clk.Advance(time.Millisecond)
					if err := j.Ack(first - 1); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if j.LastSeq() != batches*perBatch {
			t.Fatalf("LastSeq %d", j.LastSeq())
		}
		checkLedger(t, j)
	})
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, opts Options) Journal { return OpenMemory(opts) })
}

func TestBadgerConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, opts Options) Journal {
		j, err := OpenBadger(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return j
	})
}

// TestBadgerConformanceFromDisk runs the contract with every read and ack going to badger, as
// they do for records older than the in-memory tail (a backlog, a restart).
func TestBadgerConformanceFromDisk(t *testing.T) {
	runConformance(t, func(t *testing.T, opts Options) Journal {
		opts.noTail = true
		j, err := OpenBadger(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return j
	})
}
