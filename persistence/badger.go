package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// On-disk layout. Records live under recPrefix with a big-endian seq so that key order is seq
// order; the value is an 8-byte big-endian Time followed by the event bytes. Two small meta keys
// sit outside the record prefix so record iteration never sees them.
var (
	recPrefix = []byte("q/")
	cursorKey = []byte("m/cursor")
	// lastKey holds the highest seq ever handed out. Without it a journal whose records were
	// all acked, or whose cursor lags deletions after a crash, could not tell which seqs were
	// used and would reuse them; and finding the tail by a reverse seek would crawl over every
	// tombstone of the acked history.
	lastKey = []byte("m/last")
)

const (
	recKeyLen = 2 + 8
	timeLen   = 8

	// valueThreshold keeps typical events (well under 1 KB) inline in the LSM, where reading
	// them is free during scans; it must stay under 15% of the memtable (badger's batch limit).
	valueThreshold = 1 << 10
	memTableSize   = 4 << 20

	defaultGCInterval = 5 * time.Minute
	gcDiscardRatio    = 0.5
	// gcMaxRounds caps one GC tick so that Close never waits behind a long rewrite streak.
	gcMaxRounds = 8
)

func appendRecKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, recPrefix...), seq)
}

func recKey(seq uint64) []byte { return appendRecKey(make([]byte, 0, recKeyLen), seq) }

func seqOfKey(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(recPrefix):]) }

func decodeValue(seq uint64, v []byte) (int64, []byte, error) {
	if len(v) < timeLen {
		return 0, nil, fmt.Errorf("persistence: record %d corrupt: value of %d bytes", seq, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[timeLen:], nil
}

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
	dl     dropLog // only touched under wmu

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

func badgerOptions(dir string, o Options) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(o.SyncWrites).
		WithMemTableSize(memTableSize). // default 64 MB, multiplied by NumMemtables
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
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

// recover rebuilds the ledger with one forward scan from the persisted cursor.
func (b *Badger) recover() error {
	var cursor, last uint64
	var h heldSummary
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		if cursor, err = getUint64(txn, cursorKey); err != nil {
			return err
		}
		if last, err = getUint64(txn, lastKey); err != nil {
			return err
		}
		h, err = summarize(txn, cursor)
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
		if err := b.db.Update(func(txn *badger.Txn) error {
			return txn.Set(cursorKey, binary.BigEndian.AppendUint64(nil, newCursor))
		}); err != nil {
			return fmt.Errorf("persistence: recover journal: %w", err)
		}
	}
	b.l = ledger{cursor: newCursor, last: last, depth: h.depth, bytes: h.bytes, headTime: h.headTime}
	return nil
}

// heldSummary is what one scan of the held records yields.
type heldSummary struct {
	depth, bytes      uint64
	firstSeq, lastSeq uint64
	headTime          int64
}

func summarize(txn *badger.Txn, cursor uint64) (heldSummary, error) {
	var h heldSummary
	it := txn.NewIterator(badger.IteratorOptions{Prefix: recPrefix})
	defer it.Close()
	for it.Seek(recKey(cursor + 1)); it.ValidForPrefix(recPrefix); it.Next() {
		item := it.Item()
		seq := seqOfKey(item.Key())
		err := item.Value(func(v []byte) error {
			ts, d, err := decodeValue(seq, v)
			if err != nil {
				return err
			}
			if h.depth == 0 {
				h.firstSeq, h.headTime = seq, ts
			}
			h.depth++
			h.bytes += uint64(len(d))
			h.lastSeq = seq
			return nil
		})
		if err != nil {
			return h, err
		}
	}
	return h, nil
}

// resync recounts the held records after a deletion failed part-way, when some of its
// transactions may have committed and the ledger no longer matches the disk. The cursor stays
// where it was: the retried Ack or drop moves it.
func (b *Badger) resync() {
	var h heldSummary
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		h, err = summarize(txn, b.l.cursor)
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

// Append writes the batch in one badger transaction. A batch too big for one transaction
// (about 1.2 MB of small records with these options) is split into consecutive transactions;
// then a crash can leave a prefix of the batch committed, which is harmless for an
// at-least-once journal because the caller did not get nil and will resend.
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
	// so the batch costs one allocation instead of two per record.
	total := 0
	for _, d := range data {
		total += recKeyLen + timeLen + len(d)
	}
	buf := make([]byte, 0, total)

	committed, committedBytes := 0, uint64(0) // records in already committed transactions
	pending, pendingBytes := 0, uint64(0)
	txn := b.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	commit := func() error {
		if err := txn.Commit(); err != nil {
			return err
		}
		committed += pending
		committedBytes += pendingBytes
		pending, pendingBytes = 0, 0
		txn = b.db.NewTransaction(true)
		return nil
	}
	// Claim the whole range up front, in the first transaction: if only part of the batch
	// survives a crash, the unwritten seqs stay claimed and are never reused.
	err = txn.Set(lastKey, binary.BigEndian.AppendUint64(nil, last))
	for i := 0; err == nil && i < len(data); i++ {
		off := len(buf)
		buf = appendRecKey(buf, first+uint64(i))
		k := buf[off:len(buf):len(buf)]
		off = len(buf)
		buf = binary.BigEndian.AppendUint64(buf, uint64(ts))
		buf = append(buf, data[i]...)
		v := buf[off:len(buf):len(buf)]
		err = txn.Set(k, v)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = commit(); err == nil {
				err = txn.Set(k, v)
			}
		}
		if err == nil {
			pending++
			pendingBytes += uint64(len(data[i]))
		}
	}
	if err == nil {
		err = commit()
	}
	if committed > 0 {
		// Whatever committed is durable and the range is claimed on disk; account for it even
		// on error so the ledger matches the disk.
		b.mu.Lock()
		b.l.last = last
		b.l.added(uint64(committed), committedBytes, ts)
		b.mu.Unlock()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("persistence: append: %w", err)
	}
	if err := b.enforce(now); err != nil {
		// The batch is durable; failing Append now would only make the caller resend it.
		b.log.Error().Err(err).Msg("journal bound enforcement failed")
	}
	return first, last, nil
}

// Read seeks straight to the first wanted key: starting at the head of the prefix would walk
// every tombstone left by acks until compaction removes them.
func (b *Badger) Read(after uint64, maxRecords, maxBytes int) ([]Record, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	b.mu.RLock()
	closed, cursor, lastSeq := b.closed, b.l.cursor, b.l.last
	b.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	after = max(after, cursor)
	if after >= lastSeq {
		return nil, nil
	}
	var out []Record
	var arena []byte
	size := 0
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recPrefix})
		defer it.Close()
		for it.Seek(recKey(after + 1)); it.ValidForPrefix(recPrefix); it.Next() {
			if maxRecords > 0 && len(out) >= maxRecords {
				return nil
			}
			item := it.Item()
			seq := seqOfKey(item.Key())
			full := false
			err := item.Value(func(v []byte) error {
				ts, d, err := decodeValue(seq, v)
				if err != nil {
					return err
				}
				if maxBytes > 0 && len(out) > 0 && size+len(d) > maxBytes {
					full = true
					return nil
				}
				// v belongs to badger and is only valid inside the txn: copy into an arena
				// that is never reused, sharing chunks between records to limit allocations.
				if cap(arena)-len(arena) < len(d) {
					arena = make([]byte, 0, readChunk(len(d), maxBytes))
				}
				off := len(arena)
				arena = append(arena, d...)
				out = append(out, Record{Seq: seq, Time: ts, Data: arena[off:len(arena):len(arena)]})
				size += len(d)
				return nil
			})
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

// Ack deletes (cursor, upTo] and persists the new cursor.
func (b *Badger) Ack(upTo uint64) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return ErrClosed
	}
	upTo = min(upTo, b.l.last)
	if upTo <= b.l.cursor {
		return nil
	}
	n, bytes, head, err := b.scanThrough(upTo)
	if err != nil {
		return fmt.Errorf("persistence: ack %d: %w", upTo, err)
	}
	if err := b.deleteThrough(upTo); err != nil {
		b.resync()
		return fmt.Errorf("persistence: ack %d: %w", upTo, err)
	}
	b.mu.Lock()
	b.l.removed(upTo, n, bytes, head)
	b.l.acked += n
	b.mu.Unlock()
	return nil
}

// scanThrough counts the held records in (cursor, upTo] and returns the Time of the first
// record after upTo, which becomes the oldest. Values are inline for typical events, so this
// walks the LSM only.
func (b *Badger) scanThrough(upTo uint64) (n, bytes uint64, head int64, err error) {
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recPrefix})
		defer it.Close()
		for it.Seek(recKey(b.l.cursor + 1)); it.ValidForPrefix(recPrefix); it.Next() {
			item := it.Item()
			seq := seqOfKey(item.Key())
			stop := false
			err := item.Value(func(v []byte) error {
				ts, d, err := decodeValue(seq, v)
				if err != nil {
					return err
				}
				if seq > upTo {
					head, stop = ts, true
					return nil
				}
				n++
				bytes += uint64(len(d))
				return nil
			})
			if err != nil || stop {
				return err
			}
		}
		return nil
	})
	return n, bytes, head, err
}

// deleteThrough deletes the keys (cursor, upTo] and then writes the cursor, in as few
// transactions as badger allows, committed in order. The cursor goes last so that a crash
// part-way leaves the cursor behind, never ahead of, the deletions: records below a
// persisted cursor are never visited again, so they would leak on disk forever.
func (b *Badger) deleteThrough(upTo uint64) error {
	txn := b.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	set := func(op func() error) error {
		err := op()
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = b.db.NewTransaction(true)
			err = op()
		}
		return err
	}
	const slab = 4096 // keys per allocation; each must stay untouched until its txn commits
	var keys []byte
	for seq := b.l.cursor + 1; seq <= upTo; seq++ {
		if cap(keys)-len(keys) < recKeyLen {
			keys = make([]byte, 0, recKeyLen*min(slab, upTo-seq+1))
		}
		off := len(keys)
		keys = appendRecKey(keys, seq)
		k := keys[off:len(keys):len(keys)]
		if err := set(func() error { return txn.Delete(k) }); err != nil {
			return err
		}
	}
	cur := binary.BigEndian.AppendUint64(nil, upTo)
	if err := set(func() error { return txn.Set(cursorKey, cur) }); err != nil {
		return err
	}
	return txn.Commit()
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
	return err
}

// enforce drops head records over the bounds. Caller holds wmu.
func (b *Badger) enforce(now time.Time) error {
	if !overBounds(&b.l, b.opts.Limits, now) {
		return nil
	}
	var p dropPlan
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recPrefix})
		defer it.Close()
		it.Seek(recKey(b.l.cursor + 1))
		var err error
		p, err = planDrops(&b.l, b.opts.Limits, now, func() (held, bool, error) {
			if !it.ValidForPrefix(recPrefix) {
				return held{}, false, nil
			}
			item := it.Item()
			h := held{seq: seqOfKey(item.Key())}
			err := item.Value(func(v []byte) error {
				ts, d, err := decodeValue(h.seq, v)
				h.time, h.size = ts, uint64(len(d))
				return err
			})
			it.Next()
			return h, err == nil, err
		})
		return err
	})
	if err != nil || p.n == 0 {
		return err
	}
	if err := b.deleteThrough(p.upTo); err != nil {
		b.resync()
		return fmt.Errorf("persistence: drop through %d: %w", p.upTo, err)
	}
	b.mu.Lock()
	b.l.applyDrops(p)
	b.mu.Unlock()
	b.dl.note(p, &b.l, now)
	return nil
}

// gcLoop reclaims value-log space. Only events above valueThreshold live in the value log;
// the small ones are reclaimed by LSM compaction, which badger runs on its own.
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
	b.mu.Unlock()
	b.dl.flush(&b.l, b.now(), true)
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("persistence: close badger: %w", err)
	}
	return nil
}
