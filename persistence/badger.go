package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// On-disk layout. Records live in segments (see segment.go) under segPrefix, keyed by the
// big-endian seq of their last record so that key order is seq order. A few meta keys sit
// outside that prefix so record iteration never sees them. Journals written before segments
// kept one key per record under legacyPrefix; OpenBadger converts them (migrate.go).
var (
	cursorKey = []byte("m/cursor")
	// lastKey holds the highest seq ever handed out. Without it a journal whose records were
	// all acked, or whose cursor lags deletions after a crash, could not tell which seqs were
	// used and would reuse them; and finding the tail by a reverse seek would crawl over every
	// tombstone of the acked history.
	lastKey = []byte("m/last")
)

const (
	timeLen = 8

	// valueThreshold keeps every segment (at most segMaxBytes of records plus a small header)
	// inline in the LSM, where reading it is free during scans; only a single event bigger
	// than that goes to the value log. Badger requires it under its batch limit, 15% of the
	// memtable (~310 KB; ~470 KB with 32-bit int).
	valueThreshold = 64 << 10
	// table32Size is the one table size with 32-bit int, and its memtable size (tableSizes).
	table32Size = 3 << 20
	// blockSize holds whole segments: badger's table builder grows a block that an entry
	// overflows by doubling its buffer inside an arena, wasting about twice the entry size per
	// segment with the default 4 KB blocks, and that arena too is kept in the pool.
	blockSize = 64 << 10

	defaultGCInterval = 5 * time.Minute
	gcDiscardRatio    = 0.5
	// gcMaxRounds caps one GC tick so that Close never waits behind a long rewrite streak.
	gcMaxRounds = 8
)

// memTableSize was 4 MB when every record was a key of its own, then 3 MB once segments had
// removed the per-key overhead; it is 2 MB with 64-bit int. It sizes what badger keeps
// resident: the memtable's arena (allocated whole, with room for one more batch), an immutable
// one while it flushes, the mmap'ed write-ahead log and the L0 tables flushed from it. At 1000
// devices, 2 MB and the quiet GC target of 25 % (cmd/iotgw) took the gateway's RSS without the
// binary's pages from 29–34 MB to 22–24 MB. The price is more flushes at the peak, where 11 MB/s
// of records is five a second. Its L0 tables stay within the 4 MB (2 x BaseTableSize) that
// badger's pooled table-builder allocators start with: bigger tables make them grow by a
// doubled buffer, which the pool then retains (tens of MB of RSS). A group commit above 15 % of
// it costs a second transaction, and with SyncWrites a second sync; at the peak one holds about
// 220 KB. With 32-bit int the memtable must be the one table size (tableSizes).
var memTableSize int64 = func() int64 {
	if strconv.IntSize == 32 {
		return table32Size
	}
	return 2 << 20
}()

// Badger is the durable Journal.
//
// Durability contract: when Append or Ack returns nil the change is committed to badger's
// write-ahead log. With SyncWrites=false that survives a process crash (SIGKILL, panic, OOM
// kill) but not power loss; with SyncWrites=true it also survives power loss, provided the
// storage honours flushes.
type Badger struct {
	dir  string
	db   *badger.DB
	opts Options
	now  func() time.Time
	log  zerolog.Logger

	// wmu serialises everything that writes (Append, Ack, Enforce, Close) so that seq
	// allocation, deletion ranges and the ledger cannot interleave.
	wmu sync.Mutex
	// closeMu is held shared by readers for the whole badger read so Close can wait for
	// them before closing the DB underneath.
	closeMu sync.RWMutex
	// mu guards l and closed for the cheap accessors and for reader snapshots.
	mu     sync.RWMutex
	l      ledger
	closed bool
	dl     dropLog    // only touched under wmu
	disk   *diskGuard // only touched under wmu

	// A deferred acknowledgement (AckDeferred) not yet on disk: the ledger already moved the
	// cursor to ackTo, and ackDels are the segments it fully covers. The next write that
	// persists a cursor (Append, FlushAcks, Ack, a bound drop, Close) carries it. Under wmu.
	ackPending bool
	ackTo      uint64
	ackDels    []uint64
	ackBuf     []byte // keys of a folded ack, alive until its transaction commits
	// packBuf holds an Append's compressed segment values until its last commit; badger has
	// copied them into its log and memtable by then, so the next Append reuses it. Under wmu.
	packBuf []byte
	// plainOnly: the journal is still marked layout 2 (marking it 3 failed at open), so no
	// segment may be packed: an older build would take one for damage. Set before use.
	plainOnly bool

	commits atomic.Uint64 // write transactions committed since open

	// tail holds the latest committed records, ending at l.last (tail.go). Written under wmu
	// and mu; Read takes the slice under mu and uses it after.
	tail      tailView
	tailBytes int

	stopGC chan struct{}
	gcDone chan struct{}
}

var (
	_ Journal  = (*Badger)(nil)
	_ Enforcer = (*Badger)(nil)
)

// OpenBadger opens (or creates) the journal in dir with options tuned for a small edge box
// (about 12 MB RSS after open instead of badger's defaults of hundreds of MB). Only one
// process may open a directory at a time.
func OpenBadger(dir string, opts Options) (*Badger, error) {
	db, err := badger.Open(badgerOptions(dir, opts))
	if err != nil {
		return nil, fmt.Errorf("persistence: open badger %s: %w", dir, err)
	}
	b := &Badger{
		dir:    dir,
		db:     db,
		opts:   opts,
		now:    opts.clock(),
		log:    opts.Logger,
		dl:     dropLog{log: opts.Logger},
		disk:   newDiskGuard(dir, opts),
		stopGC: make(chan struct{}),
		gcDone: make(chan struct{}),
	}
	if err := b.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	// Limits may have been lowered since the last run, or the records aged while we were down.
	if err := b.Enforce(); err != nil {
		_ = db.Close()
		return nil, err
	}
	every := opts.GCInterval
	if every <= 0 {
		every = defaultGCInterval
	}
	go b.gcLoop(every)
	return b, nil
}

// tableSizes gives badger's base table size and the factor by which table sizes grow per
// level. With 64-bit int: 2 MB and badger's 2. With 32-bit int, every table a builder makes
// must fit the first buffer of its arena: badger builds tables in pooled arena allocators
// (ristretto's z.Allocator) whose first buffer is 2 x the table size rounded up to a power
// of two, and moving to a second buffer stores (bufIdx+1)<<32 in an int, which is 0 with
// 32-bit int: the allocator hands out its first buffer again and the table's blocks
// overwrite each other (a corrupt table, "slice bounds out of range" in
// blockIterator.setIdx on the next read: journal data lost; still so in ristretto v2.4.2).
// The pool also hands any pooled allocator to any builder, whatever size it asked for, so
// the smallest first buffer must hold the largest table: one table size for every level
// and the memtable (an L0 flush holds a whole memtable, and L0->L0 compactions build tables
// of the memtable size), no growth per level. A block is at least about half full (a segment
// is at most half a block or fills one), so a table takes at most about 2 x its data: 3 MB of
// data in an 8 MB buffer.
func tableSizes() (base int64, multiplier int) {
	if strconv.IntSize == 32 {
		return table32Size, 1
	}
	return 2 << 20, 2
}

func badgerOptions(dir string, o Options) badger.Options {
	base, growth := tableSizes()
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(o.SyncWrites).
		WithMemTableSize(memTableSize). // default 64 MB, multiplied by NumMemtables
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(base).
		WithBaseLevelSize(8 << 20).
		WithBlockSize(blockSize).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(16 << 20). // small files so value-log GC can actually reclaim (it skips the active file)
		WithNumCompactors(2).           // badger rejects 1
		WithCompression(options.None).  // compression with BlockCacheSize 0 panics in badger
		WithBlockCacheSize(0).
		WithIndexCacheSize(4 << 20). // default 0 keeps every index and bloom filter in RAM
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // single writer: conflict tracking only costs memory
		// WithLoggingLevel would replace the logger with badger's own, so the level filter
		// lives in the adapter.
		WithLogger(badgerLogger{o.Logger})
	opts.TableSizeMultiplier = growth // no setter in badger
	return opts
}

// badgerLogger routes badger's warnings and errors to zerolog; its Info chatter (replaying
// files, compaction) is noise for a gateway operator.
type badgerLogger struct{ l zerolog.Logger }

func (a badgerLogger) Errorf(f string, args ...any) {
	a.l.Error().Str("component", "badger").Msgf(strings.TrimSpace(f), args...)
}

func (a badgerLogger) Warningf(f string, args ...any) {
	a.l.Warn().Str("component", "badger").Msgf(strings.TrimSpace(f), args...)
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// recover converts a journal of the previous layout, then rebuilds the ledger with one
// forward scan from the persisted cursor.
func (b *Badger) recover() error {
	if err := b.migrate(); err != nil {
		return fmt.Errorf("persistence: recover journal: %w", err)
	}
	var cursor, last uint64
	var h heldSummary
	var corrupt []corruptSeg
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		if cursor, err = getUint64(txn, cursorKey); err != nil {
			return err
		}
		if last, err = getUint64(txn, lastKey); err != nil {
			return err
		}
		h, corrupt, err = summarize(txn, cursor)
		return err
	})
	if err != nil {
		return fmt.Errorf("persistence: recover journal: %w", err)
	}
	last = max(last, cursor, h.lastSeq)
	// Seqs between the cursor and the first record were deleted by an Ack whose cursor write
	// did not make it before a crash, or were claimed by an Append that did not complete:
	// either way nothing is there to deliver, and skipping them saves every later Read from
	// seeking across their tombstones.
	newCursor := last
	if h.depth > 0 {
		newCursor = h.firstSeq - 1
	}
	if newCursor != cursor {
		if err := b.update(func(txn *badger.Txn) error {
			return txn.Set(cursorKey, binary.BigEndian.AppendUint64(nil, newCursor))
		}); err != nil {
			return fmt.Errorf("persistence: recover journal: %w", err)
		}
	}
	b.l = ledger{cursor: newCursor, last: last, depth: h.depth, bytes: h.bytes, headTime: h.headTime}
	// Damaged segments go now, all of them: one below the new cursor would never be met again.
	b.dropCorrupt(corrupt, math.MaxUint64)
	return nil
}

// heldSummary is what one scan of the held records yields.
type heldSummary struct {
	depth, bytes      uint64
	firstSeq, lastSeq uint64
	headTime          int64
}

func summarize(txn *badger.Txn, cursor uint64) (heldSummary, []corruptSeg, error) {
	var h heldSummary
	w := newRecWalker(txn, cursor)
	defer w.close()
	for {
		r, ok, err := w.next()
		if err != nil || !ok {
			return h, w.corrupt, err
		}
		if h.depth == 0 {
			h.firstSeq, h.headTime = r.seq, r.time
		}
		h.depth++
		h.bytes += r.size
		h.lastSeq = r.seq
	}
}

// recWalker yields the held records with Seq > after, oldest first, walking the records inside
// the segments. Records of the segment straddling after (acknowledged, but the segment also
// holds later ones) are skipped. lasts collects the last seq of every segment visited, in
// order, so that the caller can delete the ones it has fully consumed. A damaged segment is
// skipped whole and noted in corrupt: stopping there would stop the journal for good.
type recWalker struct {
	it      *badger.Iterator
	after   uint64
	prev    uint64 // last seq of the previous segment visited (or after)
	buf     []held // the current segment's records (a badger value dies with its callback)
	recs    []held // those not yet yielded
	loaded  bool   // the iterator's item has been decoded into buf
	lasts   []uint64
	corrupt []corruptSeg
}

// corruptSeg is a damaged segment a walk skipped.
type corruptSeg struct {
	key  []byte
	last uint64 // 0 when the key itself is damaged
	lost uint64 // the seqs it covered past the previous segment: its records, as far as can be told
	err  error
}

func newRecWalker(txn *badger.Txn, after uint64) *recWalker {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: segPrefix})
	it.Seek(segKey(after + 1))
	return &recWalker{it: it, after: after, prev: after}
}

func (w *recWalker) close() { w.it.Close() }

// next has the signature planDrops wants.
func (w *recWalker) next() (held, bool, error) {
	for len(w.recs) == 0 {
		if w.loaded {
			w.it.Next()
			w.loaded = false
		}
		if !w.it.ValidForPrefix(segPrefix) {
			return held{}, false, nil
		}
		item := w.it.Item()
		w.loaded = true
		w.buf = w.buf[:0]
		last, err := eachRecord(item, w.after, func(seq uint64, ts int64, d []byte) bool {
			w.buf = append(w.buf, held{seq: seq, time: ts, size: uint64(len(d))})
			return true
		})
		var ce *CorruptSegmentError
		if errors.As(err, &ce) {
			c := corruptSeg{key: item.KeyCopy(nil), last: last, err: err}
			if last > w.prev {
				c.lost = last - w.prev
			}
			if last > 0 {
				w.lasts = append(w.lasts, last)
				w.prev = max(w.prev, last)
			}
			w.corrupt = append(w.corrupt, c)
			continue
		}
		if err != nil {
			return held{}, false, err
		}
		w.recs = w.buf
		w.lasts = append(w.lasts, last)
		w.prev = max(w.prev, last)
	}
	r := w.recs[0]
	w.recs = w.recs[1:]
	return r, true, nil
}

// dropCorrupt deletes the damaged segments a walk skipped that are at or below upTo (a
// damaged key, whose seqs are unknown, whenever it is met), counts their records as dropped
// and logs them, then recounts the ledger, which counted those records when they were
// appended. A failed deletion is only logged: the records are gone either way, and the caller's
// own work (an Ack, a drop) is done. Caller holds wmu.
func (b *Badger) dropCorrupt(cs []corruptSeg, upTo uint64) {
	var lost uint64
	var gone []corruptSeg
	for _, c := range cs {
		if c.last <= upTo {
			gone = append(gone, c)
			lost += c.lost
		}
	}
	if len(gone) == 0 {
		return
	}
	err := b.update(func(txn *badger.Txn) error {
		for _, c := range gone {
			if err := txn.Delete(c.key); err != nil {
				return err
			}
		}
		return nil
	})
	for _, c := range gone {
		b.log.Error().Err(c.err).Uint64("records", c.lost).Msg("journal segment damaged on disk; its records are dropped")
	}
	if err != nil {
		b.log.Error().Err(err).Int("segments", len(gone)).Msg("deleting damaged journal segments failed; they stay on disk")
	}
	b.mu.Lock()
	b.l.dropped += lost
	b.l.droppedBy[causeCorrupt] += lost
	b.mu.Unlock()
	b.resync()
}

// eachRecord decodes the segment at item and calls f with each of its records above after, in
// order, until f returns false. d aliases badger's memory and is valid only during f. A key or
// value not in the segment format gives a *CorruptSegmentError.
func eachRecord(item *badger.Item, after uint64, f func(seq uint64, ts int64, d []byte) bool) (last uint64, err error) {
	if last, err = segKeySeq(item.Key()); err != nil {
		return 0, err
	}
	return last, item.Value(func(v []byte) error {
		s, err := decodeSegment(last, v)
		if err != nil {
			return err
		}
		for {
			seq, d, ok, err := s.next()
			if err != nil || !ok {
				return err
			}
			if seq > after && !f(seq, s.ts, d) {
				return nil
			}
		}
	})
}

// coveredThrough returns the prefix of lasts (ascending segment last seqs) whose segments hold
// no record above upTo: those can be deleted. A segment straddling upTo stays; the cursor
// hides its acknowledged prefix.
func coveredThrough(lasts []uint64, upTo uint64) []uint64 {
	n := 0
	for n < len(lasts) && lasts[n] <= upTo {
		n++
	}
	return lasts[:n]
}

// resync recounts the held records after a deletion failed part-way, when some of its
// transactions may have committed and the ledger no longer matches the disk. The cursor stays
// where it was: the retried Ack or drop moves it.
func (b *Badger) resync() {
	var h heldSummary
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		h, _, err = summarize(txn, b.l.cursor)
		return err
	})
	if err != nil {
		b.log.Error().Err(err).Msg("journal resync failed")
		return
	}
	b.mu.Lock()
	b.l.depth, b.l.bytes, b.l.headTime = h.depth, h.bytes, h.headTime
	b.mu.Unlock()
}

// packBufMax bounds the compression buffer kept between Appends: a group commit's segments at
// the peak, not a rare huge batch's.
const packBufMax = 256 << 10

// releasePackBuf readies packBuf for the next Append, once this one's transactions are done.
func (b *Badger) releasePackBuf() {
	if cap(b.packBuf) > packBufMax {
		b.packBuf = nil
		return
	}
	b.packBuf = b.packBuf[:0]
}

// update runs fn in one write transaction and counts its commit.
func (b *Badger) update(fn func(txn *badger.Txn) error) error {
	if err := b.db.Update(fn); err != nil {
		return err
	}
	b.commits.Add(1)
	return nil
}

func getUint64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("persistence: meta key %q corrupt", key)
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

// Dir is the journal's badger directory.
func (b *Badger) Dir() string { return b.dir }

// Append writes the batch in one badger transaction, as a few segments of consecutive records
// (one key per segMaxBytes rather than one per record). A batch too big for one transaction
// (about 310 KB as stored, compressed or not, with these options) is split into consecutive
// transactions at segment boundaries; then a crash can leave a prefix of the batch committed,
// which is harmless for an at-least-once journal because the caller did not get nil and will
// resend. A failed commit (rather than a crash) removes the prefix again, so an error means
// none of the batch is held.
//
// Below the disk reserve (Limits.MinFreeBytes), or after a write reported no space, the batch
// is refused with ErrDiskFull before anything is written (see diskguard.go).
//
// A deferred acknowledgement (AckDeferred) is written in the first transaction too, so the
// append and the ack cost one commit. It stays pending if that transaction fails.
func (b *Badger) Append(data [][]byte) (first, last uint64, err error) {
	if len(data) == 0 {
		return 0, 0, nil
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return 0, 0, ErrClosed
	}
	now := b.now()
	ts := now.UnixNano()
	first = b.l.last + 1
	last = b.l.last + uint64(len(data))

	// Keys and values must stay untouched until commit; one exact-size buffer holds them all
	// so the batch costs one allocation. ends are the segment boundaries.
	var endsBuf [8]int
	ends := endsBuf[:0]
	var valsBuf [8][]byte
	vals := valsBuf[:0] // the segment values, for the tail
	total := 0
	for start := 0; start < len(data); {
		end, recBytes := segmentEnd(data, start)
		ends = append(ends, end)
		total += segKeyLen + segValueLen(end-start, recBytes)
		start = end
	}
	if err := b.disk.admit(now, len(data), uint64(total)); err != nil {
		b.refuse(len(data))
		return 0, 0, err
	}
	buf := make([]byte, 0, total)
	// A huge deferred ack (many segments) goes on its own, ahead: it must not push the first
	// transaction over badger's limit.
	if b.ackPending && len(b.ackDels) > maxFoldDels {
		if err := b.flushAcks(); err != nil {
			b.log.Error().Err(err).Msg("journal ack write failed; it stays pending")
		}
	}
	ackInTxn := false

	committed, committedBytes := 0, uint64(0) // records in already committed transactions
	pending, pendingBytes := 0, uint64(0)
	var committedSegs []uint64 // last seqs of the segments already committed
	pendingSegs := 0
	txn := b.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	commit := func() error {
		if b.opts.beforeCommit != nil {
			if err := b.opts.beforeCommit(); err != nil {
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		b.commits.Add(1)
		if ackInTxn {
			ackInTxn = false
			b.ackWritten()
		}
		committed += pending
		committedBytes += pendingBytes
		for _, end := range ends[len(committedSegs) : len(committedSegs)+pendingSegs] {
			committedSegs = append(committedSegs, first+uint64(end-1))
		}
		pending, pendingBytes, pendingSegs = 0, 0, 0
		txn = b.db.NewTransaction(true)
		return nil
	}
	// Claim the whole range up front, in the first transaction: if only part of the batch
	// survives a crash, the unwritten seqs stay claimed and are never reused.
	err = txn.Set(lastKey, binary.BigEndian.AppendUint64(nil, last))
	if err == nil && b.ackPending {
		err = b.setAck(txn)
		ackInTxn = err == nil
	}
	start := 0
	for i := 0; err == nil && i < len(ends); i++ {
		end := ends[i]
		off := len(buf)
		buf = appendSegKey(buf, first+uint64(end-1))
		k := buf[off:len(buf):len(buf)]
		off = len(buf)
		buf = appendSegValue(buf, ts, data[start:end])
		v := buf[off:len(buf):len(buf)]
		vals = append(vals, v)
		stored := v
		if !b.plainOnly {
			stored, b.packBuf = packSegValue(b.packBuf, v)
		}
		err = txn.Set(k, stored)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = commit(); err == nil {
				err = txn.Set(k, stored)
			}
		}
		if err == nil {
			pending += end - start
			pendingSegs++
			for _, d := range data[start:end] {
				pendingBytes += uint64(len(d))
			}
		}
		start = end
	}
	if err == nil {
		err = commit()
	}
	b.releasePackBuf()
	if err != nil && committed > 0 {
		// The caller counts the whole batch as failed, so the committed prefix goes too: kept,
		// it would be delivered while counted lost, and a device told "failed" resends it.
		if rerr := b.deleteSegs(committedSegs); rerr != nil {
			b.log.Error().Err(rerr).Int("events", committed).Msg("journal append failed part-way and its committed part could not be removed; it will be delivered")
		} else {
			committed, committedBytes = 0, 0
		}
	}
	if err != nil && len(committedSegs) > 0 {
		// The first transaction claimed the range on disk; its seqs are never reused.
		b.mu.Lock()
		b.l.last = last
		b.mu.Unlock()
	}
	if committed > 0 {
		// Whatever committed is durable and the range is claimed on disk; account for it so
		// the ledger matches the disk.
		b.mu.Lock()
		b.l.last = last
		b.l.added(uint64(committed), committedBytes, ts)
		if err == nil {
			b.addTail(first, ts, data, ends, vals, int(committedBytes))
		}
		b.mu.Unlock()
	}
	if err != nil {
		if isNoSpace(err) {
			b.disk.noSpace(now, len(data)-committed, err)
			b.refuse(len(data) - committed)
			return 0, 0, fmt.Errorf("persistence: append %d events: %w: %w", len(data), ErrDiskFull, err)
		}
		return 0, 0, fmt.Errorf("persistence: append: %w", err)
	}
	if err := b.enforce(now); err != nil {
		// The batch is durable; failing Append now would only make the caller resend it.
		b.log.Error().Err(err).Msg("journal bound enforcement failed")
	}
	return first, last, nil
}

// maxFoldDels bounds the segment deletions a deferred ack adds to an Append's first
// transaction: about 50 bytes of badger's batch limit each.
const maxFoldDels = 256

// setAck adds the pending deferred ack to txn: its segment deletions, then the cursor, in one
// transaction so neither can land without the other. Caller holds wmu.
func (b *Badger) setAck(txn *badger.Txn) error {
	// Keys must stay untouched until the commit; the next use of ackBuf comes after it.
	need := segKeyLen*len(b.ackDels) + 8
	if cap(b.ackBuf) < need {
		b.ackBuf = make([]byte, 0, need)
	}
	buf := b.ackBuf[:0]
	for _, last := range b.ackDels {
		off := len(buf)
		buf = appendSegKey(buf, last)
		if err := txn.Delete(buf[off:len(buf):len(buf)]); err != nil {
			return err
		}
	}
	off := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, b.ackTo)
	return txn.Set(cursorKey, buf[off:len(buf):len(buf)])
}

// ackWritten notes that the pending deferred ack is on disk. Caller holds wmu.
func (b *Badger) ackWritten() {
	b.ackPending = false
	b.ackDels = b.ackDels[:0]
	if cap(b.ackDels) > 4*maxFoldDels {
		b.ackDels = nil // an outage's drain must not pin its list
	}
}

// refuse counts events Append did not store for lack of disk space. Caller holds wmu.
func (b *Badger) refuse(events int) {
	b.mu.Lock()
	b.l.dropped += uint64(events)
	b.l.droppedBy[causeDiskFull] += uint64(events)
	b.mu.Unlock()
}

// deleteSegs removes the segments whose last seqs are lasts, in one transaction: they are the
// few segments of one failed Append.
func (b *Badger) deleteSegs(lasts []uint64) error {
	return b.update(func(txn *badger.Txn) error {
		for _, last := range lasts {
			if err := txn.Delete(segKey(last)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Read seeks straight to the segment holding after+1 (segments are keyed by their last seq):
// starting at the head of the prefix would walk every tombstone left by acks until compaction
// removes them.
func (b *Badger) Read(after uint64, maxRecords, maxBytes int) ([]Record, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	b.mu.RLock()
	closed, cursor, lastSeq, tail := b.closed, b.l.cursor, b.l.last, b.tail
	b.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	after = max(after, cursor)
	if after >= lastSeq {
		return nil, nil
	}
	if t, ok := tail.from(after+1, lastSeq); ok {
		return t.read(maxRecords, maxBytes), nil
	}
	var out []Record
	var arena []byte
	size := 0
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: segPrefix})
		defer it.Close()
		for it.Seek(segKey(after + 1)); it.ValidForPrefix(segPrefix); it.Next() {
			if maxRecords > 0 && len(out) >= maxRecords {
				return nil
			}
			item := it.Item()
			full := false
			mark, markSize := len(out), size
			_, err := eachRecord(item, after, func(seq uint64, ts int64, d []byte) bool {
				if (maxRecords > 0 && len(out) >= maxRecords) ||
					(maxBytes > 0 && len(out) > 0 && size+len(d) > maxBytes) {
					full = true
					return false
				}
				// d belongs to badger and is only valid inside the txn: copy into an arena
				// that is never reused, sharing chunks between records to limit allocations.
				if cap(arena)-len(arena) < len(d) {
					arena = make([]byte, 0, readChunk(len(d), maxBytes))
				}
				off := len(arena)
				arena = append(arena, d...)
				out = append(out, Record{Seq: seq, Time: ts, Data: arena[off:len(arena):len(arena)]})
				size += len(d)
				return true
			})
			var ce *CorruptSegmentError
			if errors.As(err, &ce) {
				// Skipped whole, as the walks that count and delete do; the Ack that passes
				// it drops and counts its records.
				b.log.Error().Err(err).Msg("journal segment damaged on disk; skipping it")
				out, size, err = out[:mark], markSize, nil
				continue
			}
			if err != nil || full {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persistence: read: %w", err)
	}
	return out, nil
}

func readChunk(need, maxBytes int) int {
	c := 32 << 10
	if maxBytes > 0 && maxBytes < c {
		c = maxBytes
	}
	return max(c, need)
}

// Ack deletes the segments holding only records <= upTo and persists the cursor (upTo), with
// any deferred ack still pending, in one write. A segment straddling upTo stays until a later
// Ack covers it: the cursor hides its prefix.
func (b *Badger) Ack(upTo uint64) error { return b.ack(upTo, true) }

// AckDeferred acknowledges like Ack but leaves the write to the next Append, FlushAcks, Ack,
// bound drop or Close (see DeferredAcker).
func (b *Badger) AckDeferred(upTo uint64) error { return b.ack(upTo, false) }

// FlushAcks writes a pending deferred ack now.
func (b *Badger) FlushAcks() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return ErrClosed
	}
	return b.flushAcks()
}

// flushAcks writes the pending deferred ack in a transaction of its own. Caller holds wmu.
func (b *Badger) flushAcks() error {
	if !b.ackPending {
		return nil
	}
	if err := b.deleteThrough(nil, b.ackTo); err != nil {
		return fmt.Errorf("persistence: write ack %d: %w", b.ackTo, err)
	}
	return nil
}

func (b *Badger) ack(upTo uint64, write bool) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return ErrClosed
	}
	upTo = min(upTo, b.l.last)
	if upTo <= b.l.cursor {
		if write {
			// The cursor may be ahead in memory only: Ack promises it on disk.
			return b.flushAcks()
		}
		return nil
	}
	n, bytes, head, dels, corrupt, err := b.scanThrough(upTo)
	if err != nil {
		return fmt.Errorf("persistence: ack %d: %w", upTo, err)
	}
	if write {
		if err := b.deleteThrough(dels, upTo); err != nil {
			b.resync()
			return fmt.Errorf("persistence: ack %d: %w", upTo, err)
		}
	} else {
		b.ackDels = append(b.ackDels, dels...)
		b.ackTo, b.ackPending = upTo, true
	}
	b.mu.Lock()
	b.l.removed(upTo, n, bytes, head)
	b.l.acked += n
	b.trimTail(upTo)
	b.mu.Unlock()
	b.dropCorrupt(corrupt, upTo)
	return nil
}

// scanThrough counts the held records in (cursor, upTo], returns the Time of the first record
// after upTo, which becomes the oldest, and the last seqs of the segments that upTo fully
// covers. The tail answers when it holds every record after the cursor; otherwise this walks
// the LSM (segments are inline in it). Caller holds wmu.
func (b *Badger) scanThrough(upTo uint64) (n, bytes uint64, head int64, dels []uint64, corrupt []corruptSeg, err error) {
	if t, ok := b.tail.from(b.l.cursor+1, b.l.last); ok {
		n, bytes, head, dels = t.through(upTo)
		return n, bytes, head, dels, nil, nil
	}
	err = b.db.View(func(txn *badger.Txn) error {
		w := newRecWalker(txn, b.l.cursor)
		defer w.close()
		for {
			r, ok, err := w.next()
			if err != nil || !ok {
				dels, corrupt = coveredThrough(w.lasts, upTo), w.corrupt
				return err
			}
			if r.seq > upTo {
				head = r.time
				dels, corrupt = coveredThrough(w.lasts, upTo), w.corrupt
				return nil
			}
			n++
			bytes += r.size
		}
	})
	return n, bytes, head, dels, corrupt, err
}

// deleteThrough deletes the segments whose last seqs are dels and then writes the cursor upTo,
// in as few transactions as badger allows, committed in order. The cursor goes last so that a
// crash part-way leaves the cursor behind, never ahead of, the deletions: segments below a
// persisted cursor are never visited again, so they would leak on disk forever. For the same
// reason a pending deferred ack (whose segments sit below every later cursor) is written with
// it. Caller holds wmu.
func (b *Badger) deleteThrough(dels []uint64, upTo uint64) error {
	folded := b.ackPending
	if folded {
		dels = append(slices.Clip(b.ackDels), dels...)
		upTo = max(upTo, b.ackTo)
	}
	txn := b.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	set := func(op func() error) error {
		err := op()
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			b.commits.Add(1)
			txn = b.db.NewTransaction(true)
			err = op()
		}
		return err
	}
	// Keys must stay untouched until their transaction commits: one buffer holds them all.
	keys := make([]byte, 0, segKeyLen*len(dels))
	for _, last := range dels {
		off := len(keys)
		keys = appendSegKey(keys, last)
		k := keys[off:len(keys):len(keys)]
		if err := set(func() error { return txn.Delete(k) }); err != nil {
			return err
		}
	}
	cur := binary.BigEndian.AppendUint64(nil, upTo)
	if err := set(func() error { return txn.Set(cursorKey, cur) }); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	b.commits.Add(1)
	if folded {
		b.ackWritten()
	}
	return nil
}

// Enforce applies the bounds now; the owner calls it periodically so that the age bound also
// holds while nothing is appended.
func (b *Badger) Enforce() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return ErrClosed
	}
	now := b.now()
	err := b.enforce(now)
	b.dl.flush(&b.l, now, false)
	b.disk.flush(now, false)
	return err
}

// enforce drops head records over the bounds. Caller holds wmu. Like Ack, it deletes only
// the segments the drop fully covers.
func (b *Badger) enforce(now time.Time) error {
	if !overBounds(&b.l, b.opts.Limits, now) {
		return nil
	}
	var p dropPlan
	var dels []uint64
	var corrupt []corruptSeg
	err := b.db.View(func(txn *badger.Txn) error {
		w := newRecWalker(txn, b.l.cursor)
		defer w.close()
		var err error
		p, err = planDrops(&b.l, b.opts.Limits, now, w.next)
		dels, corrupt = coveredThrough(w.lasts, p.upTo), w.corrupt
		return err
	})
	if err != nil || p.n == 0 {
		return err
	}
	if err := b.deleteThrough(dels, p.upTo); err != nil {
		b.resync()
		return fmt.Errorf("persistence: drop through %d: %w", p.upTo, err)
	}
	b.mu.Lock()
	b.l.applyDrops(p)
	b.trimTail(b.l.cursor)
	b.mu.Unlock()
	b.dl.note(p, &b.l, now)
	b.dropCorrupt(corrupt, p.upTo)
	return nil
}

// gcLoop reclaims value-log space. Only segments above valueThreshold (single big events) live
// in the value log; the others are reclaimed by LSM compaction, which badger runs on its own.
func (b *Badger) gcLoop(every time.Duration) {
	defer close(b.gcDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stopGC:
			return
		case <-t.C:
		}
		for range gcMaxRounds {
			select {
			case <-b.stopGC:
				return
			default:
			}
			// ErrNoRewrite (nothing worth rewriting) is the normal way out.
			if err := b.db.RunValueLogGC(gcDiscardRatio); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					b.log.Warn().Err(err).Msg("journal value-log GC failed")
				}
				break
			}
		}
	}
}

// Cursor returns the last acknowledged or dropped seq.
func (b *Badger) Cursor() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.l.cursor
}

// LastSeq returns the last appended seq.
func (b *Badger) LastSeq() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.l.last
}

// Stats returns a snapshot. DiskBytes is the space the directory really occupies: badger
// pre-allocates sparse files, so apparent sizes would overstate it several times.
func (b *Badger) Stats() Stats {
	b.mu.RLock()
	s := b.l.stats(b.now())
	b.mu.RUnlock()
	s.DiskBytes = dirUsage(b.dir)
	s.Commits = b.commits.Load()
	return s
}

// Close stops value-log GC, waits for in-flight reads and closes badger, which flushes the
// memtables so the next open need not replay the WAL. It is idempotent.
func (b *Badger) Close() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return nil
	}
	close(b.stopGC)
	<-b.gcDone
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.mu.Lock()
	b.closed = true
	b.tail, b.tailBytes = nil, 0
	b.mu.Unlock()
	if err := b.flushAcks(); err != nil {
		b.log.Error().Err(err).Msg("journal ack write at close failed; the acknowledged records will be sent again")
	}
	b.dl.flush(&b.l, b.now(), true)
	b.disk.flush(b.now(), true)
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("persistence: close badger: %w", err)
	}
	return nil
}
