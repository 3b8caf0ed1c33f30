package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestSegmentRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + rng.IntN(40)
		recs := make([][]byte, n)
		recBytes := 0
		for i := range recs {
			recs[i] = bytes.Repeat([]byte{byte(i)}, rng.IntN(300))
			recBytes += encodedLen(recs[i])
		}
		last := uint64(n) + rng.Uint64N(1<<40)
		v := appendSegValue(nil, 42, recs)
		if len(v) != segValueLen(n, recBytes) {
			t.Fatalf("value %d bytes, segValueLen %d", len(v), segValueLen(n, recBytes))
		}
		// Stored packed or plain, the value decodes to the same records.
		stored, _ := packSegValue(nil, v)
		s, err := decodeSegment(last, stored)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			seq, d, ok, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				if i != n {
					t.Fatalf("%d records decoded, want %d", i, n)
				}
				break
			}
			if seq != last-uint64(n)+1+uint64(i) || !bytes.Equal(d, recs[i]) || s.ts != 42 {
				t.Fatalf("record %d: seq %d (last %d) ts %d data %v", i, seq, last, s.ts, d)
			}
		}
	}
}

func TestSegmentSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		data [][]byte
		want []int // segment ends
	}{
		{"small", batch(1, 500, 200), []int{162, 324, 486, 500}},
		{"tiny records hit the record cap", batch(1, 3000, 1), []int{1024, 2048, 3000}},
		{"big record alone", [][]byte{payload(1, 10), payload(2, 40<<10), payload(3, 10)}, []int{1, 2, 3}},
		{"big record first", [][]byte{payload(1, 40<<10), payload(2, 10)}, []int{1, 2}},
	} {
		var got []int
		for start := 0; start < len(tc.data); {
			end, recBytes := segmentEnd(tc.data, start)
			if end-start > 1 && recBytes > segMaxBytes {
				t.Fatalf("%s: segment %d..%d holds %d bytes", tc.name, start, end, recBytes)
			}
			got = append(got, end)
			start = end
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: ends %v, want %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: ends %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}

// walkSegment decodes every record; it must fail cleanly, never panic, on any input.
func walkSegment(last uint64, v []byte) (int, error) {
	s, err := decodeSegment(last, v)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, _, ok, err := s.next()
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

func TestSegmentCorruptDecode(t *testing.T) {
	good := appendSegValue(nil, 7, batch(1, 5, 20))
	for _, tc := range []struct {
		name, want string
		last       uint64
		v          []byte
	}{
		{"empty", "value of 0 bytes", 5, nil},
		{"time only", "value of 8 bytes", 5, good[:8]},
		{"bad count varint", "bad record count", 5, append(good[:8:8], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"zero count", "record count 0", 5, append(good[:8:8], 0, 1, 'x')},
		{"count above last seq", "record count 5", 4, good},
		{"count above bytes", "record count 200", 500, append(append(good[:8:8], 200, 1), good[9:]...)},
		{"truncated record", "record 5: length 20 exceeds the 10 bytes left", 5, good[:len(good)-10]},
		{"missing record", "record 5: bad length", 5, good[:len(good)-21]},
		{"bad length varint", "record 1: bad length", 5, append(good[:9:9], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"trailing bytes", "3 trailing bytes after record 5", 5, append(good[:len(good):len(good)], 1, 2, 3)},
	} {
		_, err := walkSegment(tc.last, tc.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "s/") {
			t.Errorf("%s: err %v, want one naming the segment and %q", tc.name, err, tc.want)
		}
	}
	// Every truncation of a valid value is detected.
	for i := range len(good) {
		if _, err := walkSegment(5, good[:i]); err == nil {
			t.Fatalf("truncation to %d bytes not detected", i)
		}
	}
	// Random damage never panics.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		v := bytes.Clone(good)
		for range 1 + rng.IntN(4) {
			v[rng.IntN(len(v))] = byte(rng.Uint32())
		}
		_, _ = walkSegment(rng.Uint64N(10), v)
	}
}

func FuzzDecodeSegment(f *testing.F) {
	f.Add(uint64(5), appendSegValue(nil, 7, batch(1, 5, 20)))
	packed, _ := packSegValue(nil, appendSegValue(nil, 7, batch(1, 20, 30)))
	f.Add(uint64(20), packed)
	f.Add(uint64(1), appendSegValue(nil, 7, [][]byte{{}}))
	f.Add(uint64(1<<64-1), appendSegValue(nil, 7, batch(1, 3, 0)))
	f.Add(uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, last uint64, v []byte) {
		n, err := walkSegment(last, v)
		if err != nil {
			return
		}
		s, _ := decodeSegment(last, v)
		if uint64(n) != s.last-s.first+1 {
			t.Fatalf("%d records decoded from a segment of %d..%d", n, s.first, s.last)
		}
	})
}

// TestBadgerCorruptSegment: a damaged segment never panics or yields wrong data, and never
// stops the journal: reads skip it, the Ack that passes it deletes it and counts its records
// as dropped ("corrupt"), and a journal opened with one drops it at once.
func TestBadgerCorruptSegment(t *testing.T) {
	good := appendSegValue(nil, 7, batch(1, 5, 20))
	packed, _ := packSegValue(nil, appendSegValue(nil, 7, batch(6, 5, 60)))
	if !isPacked(packed) {
		t.Fatal("the packed case is not packed")
	}
	for _, tc := range []struct {
		name string
		key  []byte
		v    []byte
		lost uint64 // a damaged key hides which seqs it held
	}{
		{"truncated", segKey(10), good[:len(good)-3], 5},
		{"bad count", segKey(10), append(append(good[:8:8], 99), good[9:]...), 5},
		{"bad length", segKey(10), append(good[:9:9], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 5},
		{"short key", []byte("s/xyz"), good, 0},
		{"packed, truncated", segKey(10), packed[:len(packed)-3], 5},
		{"packed, too big", segKey(10), append(binary.BigEndian.AppendUint64(nil, 7|segPacked), binary.AppendUvarint(nil, 1<<20)...), 5},
	} {
		corrupt := func(t *testing.T, j *Badger) {
			t.Helper()
			if err := j.db.Update(func(txn *badger.Txn) error {
				if err := txn.Delete(segKey(10)); err != nil {
					return err
				}
				return txn.Set(tc.key, tc.v)
			}); err != nil {
				t.Fatal(err)
			}
		}
		fill := func(t *testing.T, j *Badger) {
			mustAppend(t, j, batch(1, 5, 20))  // segment s/5
			mustAppend(t, j, batch(6, 5, 20))  // segment s/10
			mustAppend(t, j, batch(11, 5, 20)) // segment s/15
		}
		t.Run(tc.name, func(t *testing.T) {
			// Damage under a live journal is read from disk: the in-memory tail would
			// still hold the records as they were committed (TestTailOutlivesDiskDamage).
			j := openBadger(t, t.TempDir(), Options{noTail: true})
			fill(t, j)
			corrupt(t, j)
			wantSeqs(t, mustRead(t, j, 0, 5, 0), 1, 5)
			recs := mustRead(t, j, 0, 0, 0)
			if got := seqs(recs); len(got) != 10 || got[4] != 5 || got[5] != 11 || got[9] != 15 {
				t.Fatalf("read %v, want 1-5 and 11-15", got)
			}
			checkData(t, recs, 20)
			wantSeqs(t, mustRead(t, j, 7, 0, 0), 11, 15)
			mustAck(t, j, 3) // an ack short of it leaves it alone
			wantDrops(t, j, "corrupt", 0)
			mustAck(t, j, 15)
			wantDrops(t, j, "corrupt", tc.lost)
			if s := j.Stats(); s.Depth != 0 || s.DepthBytes != 0 || s.Acked != 10 {
				t.Fatalf("after the ack: %+v", s)
			}
			if n := countKeys(t, j.db, segPrefix); n != 0 {
				t.Fatalf("%d segment keys left", n)
			}
			mustAppend(t, j, batch(16, 2, 20))
			wantSeqs(t, mustRead(t, j, 0, 0, 0), 16, 17)
		})
		t.Run(tc.name+"/at open", func(t *testing.T) {
			dir := t.TempDir()
			j := openBadger(t, dir, Options{})
			fill(t, j)
			corrupt(t, j)
			mustClose(t, j)
			j = openBadger(t, dir, Options{})
			wantDrops(t, j, "corrupt", tc.lost)
			recs := mustRead(t, j, 0, 0, 0)
			if got := seqs(recs); len(got) != 10 || got[5] != 11 {
				t.Fatalf("read %v, want 1-5 and 11-15", got)
			}
			if s := j.Stats(); s.Depth != 10 {
				t.Fatalf("after open: %+v", s)
			}
			mustAck(t, j, 15)
			if s := j.Stats(); s.Depth != 0 {
				t.Fatalf("after the ack: %+v", s)
			}
		})
	}
}

// writeLegacy writes records in the layout of the previous version (one key per record,
// values above 1 KB in the value log, as that version's threshold was).
type legacyRec struct {
	seq  uint64
	ts   int64
	data []byte
}

func writeLegacy(t *testing.T, dir string, cursor, last uint64, recs []legacyRec, extra func(*badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, Options{}).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	put := func(k, v []byte) {
		if err := wb.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	put(cursorKey, binary.BigEndian.AppendUint64(nil, cursor))
	put(lastKey, binary.BigEndian.AppendUint64(nil, last))
	for _, r := range recs {
		k := binary.BigEndian.AppendUint64(append([]byte(nil), legacyPrefix...), r.seq)
		put(k, append(binary.BigEndian.AppendUint64(nil, uint64(r.ts)), r.data...))
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		if err := db.Update(extra); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadgerMigrateLegacy(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	t1 := clk.Now().UnixNano()
	t2, t3 := t1+int64(time.Second), t1+int64(2*time.Second)
	var recs []legacyRec
	add := func(from, to uint64, ts int64, size int) {
		for s := from; s <= to; s++ {
			recs = append(recs, legacyRec{s, ts, payload(s, size)})
		}
	}
	add(2, 2, t1, 100)        // below the cursor: cannot be left by the old version; deleted
	add(4, 1500, t1, 100)     // one big old Append: several segments
	add(1501, 1510, t2, 50)   // the next Append, consecutive seqs but another time
	add(1511, 1511, t2, 5000) // in the value log
	add(1512, 1520, t2, 50)
	add(2000, 2010, t3, 30) // after a gap (claimed but unwritten, or a failed Append)
	var wantBytes uint64
	for _, r := range recs[1:] {
		wantBytes += uint64(len(r.data))
	}
	writeLegacy(t, dir, 3, 2600, recs, nil)

	clk.Advance(3 * time.Second)
	opts := Options{Now: clk.Now}
	j := openBadger(t, dir, opts)
	check := func() {
		t.Helper()
		s := j.Stats()
		if j.Cursor() != 3 || j.LastSeq() != 2600 || s.Depth != uint64(len(recs)-1) || s.DepthBytes != wantBytes || s.OldestAge != 3*time.Second {
			t.Fatalf("Cursor %d LastSeq %d %+v", j.Cursor(), j.LastSeq(), s)
		}
		got := mustRead(t, j, 0, 0, 0)
		if len(got) != len(recs)-1 {
			t.Fatalf("read %d records, want %d", len(got), len(recs)-1)
		}
		for i, r := range got {
			w := recs[i+1]
			if r.Seq != w.seq || r.Time != w.ts || !bytes.Equal(r.Data, w.data) {
				t.Fatalf("record %d: seq %d time %d data %.30q, want %d %d %.30q", i, r.Seq, r.Time, r.Data, w.seq, w.ts, w.data)
			}
		}
		if n := countKeys(t, j.db, legacyPrefix); n != 0 {
			t.Fatalf("%d legacy keys left", n)
		}
	}
	check()
	// 4..1500: 324 records of 101 encoded bytes per segment, so 5; 1501..1520; 2000..2010.
	if n := countKeys(t, j.db, segPrefix); n != 7 {
		t.Fatalf("%d segments", n)
	}
	mustClose(t, j)
	j = openBadger(t, dir, opts)
	check()

	mustAck(t, j, 1505)
	wantSeqs(t, mustRead(t, j, 0, 3, 0), 1506, 1508)
	if s := j.Stats(); s.Acked != 1502 || s.OldestAge != 2*time.Second {
		t.Fatalf("after ack %+v", s)
	}
	if f, _ := mustAppend(t, j, batch(2601, 1, 10)); f != 2601 {
		t.Fatalf("seq after migration %d", f)
	}
	mustAck(t, j, 2010)
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 2601, 2601)
	mustClose(t, j)
	j = openBadger(t, dir, opts)
	// Recovery skips the claimed but unwritten 2011..2600.
	if j.Cursor() != 2600 || j.Stats().Depth != 1 {
		t.Fatalf("after reopen Cursor %d %+v", j.Cursor(), j.Stats())
	}
}

// TestBadgerMigrateResumes opens a journal whose conversion stopped part-way: some runs are
// segments already, the rest still per-record keys, and the layout marker is not written.
func TestBadgerMigrateResumes(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	ts := clk.Now().UnixNano()
	var recs []legacyRec
	for s := uint64(6); s <= 10; s++ {
		recs = append(recs, legacyRec{s, ts, payload(s, 40)})
	}
	writeLegacy(t, dir, 0, 10, recs, func(txn *badger.Txn) error {
		return txn.Set(segKey(5), appendSegValue(nil, ts, batch(1, 5, 40)))
	})
	j := openBadger(t, dir, Options{Now: clk.Now})
	got := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, got, 1, 10)
	checkData(t, got, 40)
	if s := j.Stats(); s.Depth != 10 || s.DepthBytes != 400 {
		t.Fatalf("%+v", s)
	}
	mustAck(t, j, 10)
	if n := countKeys(t, j.db, segPrefix) + countKeys(t, j.db, legacyPrefix); n != 0 {
		t.Fatalf("%d record keys left after acking everything", n)
	}
}

// TestSegmentsPacked: segments whose records compress are stored compressed and read back the
// same, from the tail, from disk and after a restart; records that do not compress are stored
// plain; a layout-2 journal (plain segments only) opens as layout 3 and reads both.
func TestSegmentsPacked(t *testing.T) {
	dir := t.TempDir()
	j := openBadger(t, dir, Options{})
	mustAppend(t, j, batch(1, 200, 100))        // s/200: compressible
	mustAppend(t, j, noiseBatch(201, 100, 100)) // s/300: not
	plainLen := segValueLen(200, 200*encodedLen(batch(1, 1, 100)[0]))
	if v := storedSeg(t, j, 200); !isPacked(v) || len(v) > plainLen/2 {
		t.Fatalf("compressible segment stored in %d bytes (plain %d), packed flag %v", len(v), plainLen, isPacked(v))
	}
	if v := storedSeg(t, j, 300); isPacked(v) {
		t.Fatal("incompressible segment stored packed")
	}
	check := func(j *Badger) {
		t.Helper()
		recs := mustRead(t, j, 0, 0, 0)
		wantSeqs(t, recs, 1, 300)
		checkData(t, recs[:200], 100)
		for i, d := range noiseBatch(201, 100, 100) {
			if !bytes.Equal(recs[200+i].Data, d) {
				t.Fatalf("record %d differs", recs[200+i].Seq)
			}
		}
		for i, r := range recs {
			if first := recs[i/200*200]; r.Time != first.Time || r.Time <= 0 {
				t.Fatalf("record %d: time %d, want %d as its batch's", r.Seq, r.Time, first.Time)
			}
		}
	}
	check(j)
	mustClose(t, j)

	// As a layout-2 journal would be: its segments read the same, and it opens as layout 3.
	markLayout2(t, dir)
	j = openBadger(t, dir, Options{noTail: true})
	check(j)
	wantLayout(t, j, layoutPacked)
	mustAck(t, j, 250)
	wantSeqs(t, mustRead(t, j, 0, 0, 0), 251, 300)
}

// TestLayoutMarkFails: when marking a layout-2 journal as layout 3 fails at open (a full
// disk), the journal still opens, stays layout 2 and stores its segments plain, so that an
// older build can still read everything; a later open marks it and packs again.
func TestLayoutMarkFails(t *testing.T) {
	dir := t.TempDir()
	j := openBadger(t, dir, Options{})
	mustAppend(t, j, batch(1, 5, 20))
	mustClose(t, j)
	markLayout2(t, dir)

	j = openBadger(t, dir, Options{beforeLayout: func() error { return errors.New("no space left on device") }})
	wantLayout(t, j, layoutSegments)
	_, last := mustAppend(t, j, batch(6, 200, 100))
	if v := storedSeg(t, j, last); isPacked(v) {
		t.Fatal("a layout-2 journal stored a packed segment")
	}
	mustClose(t, j)

	j = openBadger(t, dir, Options{noTail: true})
	wantLayout(t, j, layoutPacked)
	_, last = mustAppend(t, j, batch(206, 200, 100))
	if v := storedSeg(t, j, last); !isPacked(v) {
		t.Fatal("the journal, marked layout 3, did not pack")
	}
	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, 1, 405)
	checkData(t, recs[:5], 20)
	checkData(t, recs[5:], 100)
}

// markLayout2 marks the closed journal in dir as the previous version left it.
func markLayout2(t *testing.T, dir string) {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set(layoutKey, binary.BigEndian.AppendUint64(nil, layoutSegments))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantLayout(t *testing.T, j *Badger, want uint64) {
	t.Helper()
	if err := j.db.View(func(txn *badger.Txn) error {
		l, err := getUint64(txn, layoutKey)
		if err == nil && l != want {
			t.Errorf("layout %d, want %d", l, want)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// storedSeg is the stored value of the segment ending at last.
func storedSeg(t *testing.T, j *Badger, last uint64) []byte {
	t.Helper()
	var v []byte
	if err := j.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(segKey(last))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatalf("segment s/%d: %v", last, err)
	}
	return v
}

// isPacked reports whether a stored segment value is compressed.
func isPacked(v []byte) bool { return binary.BigEndian.Uint64(v)&segPacked != 0 }
