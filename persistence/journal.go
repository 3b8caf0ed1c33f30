// Package persistence is the gateway's event journal: every accepted event is appended here
// with a sequence number and kept until the uplink acknowledges it (or a bound drops it).
//
// Two implementations share one contract: Badger (durable, survives restarts and process
// crashes) and Memory (volatile, for tests and for deployments that accept loss on restart).
package persistence

import (
	"errors"
	"time"

	"github.com/rs/zerolog"
)

// ErrClosed is returned by every operation on a closed journal.
var ErrClosed = errors.New("persistence: journal closed")

// ErrDiskFull is wrapped by the error of an Append that the Badger journal refused because its
// filesystem is below Limits.MinFreeBytes or reported no space left: none of the batch was
// stored, and its events are counted under the drop cause "disk_full".
var ErrDiskFull = errors.New("persistence: journal disk full")

// Record is one journaled event.
type Record struct {
	Seq  uint64 // monotonically increasing, starts at 1, never reused even after restart
	Time int64  // unix nanoseconds when appended (used for the age bound)
	Data []byte // opaque encoded event
}

// Journal is safe for concurrent use by one appender/acker and concurrent readers.
type Journal interface {
	// Append commits all data in ONE write (group commit) and returns the seq of the first and last record.
	// When it returns nil the data is durable per the implementation's contract.
	// An empty slice writes nothing and returns (0, 0, nil).
	Append(data [][]byte) (first, last uint64, err error)
	// Read returns up to max records (and roughly at most maxBytes of Data, but always at least one record if any) with Seq > after, in order.
	// Data slices returned must not alias internal buffers that get reused.
	// max <= 0 or maxBytes <= 0 means no limit of that kind.
	Read(after uint64, max int, maxBytes int) ([]Record, error)
	// Ack deletes every record with Seq <= upTo and persists the cursor (upTo). Acks below the cursor are no-ops. Acking beyond the last appended seq is clamped.
	Ack(upTo uint64) error
	// Cursor is the last acknowledged (or dropped) seq; reading resumes after it on start.
	Cursor() uint64
	// LastSeq is the last appended seq.
	LastSeq() uint64
	Stats() Stats
	Close() error
}

// DeferredAcker is implemented by journals whose Ack costs a write of its own (Badger: one
// transaction, so one sync with SyncWrites). AckDeferred acknowledges at once in memory: Read,
// Cursor and Stats stop seeing the records, as after Ack. Only their deletion on disk (and the
// persisted cursor) waits: the next Append writes it in its own transaction, so a steady
// stream of appends and acks costs one write each, not two. Until it is written a crash
// brings the records back and they are delivered again (at-least-once, the same as a crash
// between a PUBACK and its Ack). The owner bounds that window by calling FlushAcks when no
// Append came for a while, and Close writes what is pending.
type DeferredAcker interface {
	AckDeferred(upTo uint64) error
	// FlushAcks writes a deferred acknowledgement now; with none pending it writes nothing.
	FlushAcks() error
}

// Enforcer is implemented by both journals. Bounds are checked on every Append, but an idle
// journal would otherwise keep expired records forever, so the owner calls Enforce on a timer.
type Enforcer interface {
	Enforce() error
}

// Stats is a point-in-time snapshot of a journal.
type Stats struct {
	Appended, Acked uint64            // counts since open
	Depth           uint64            // records currently held (LastSeq - Cursor)
	DepthBytes      uint64            // bytes of Data currently held
	OldestAge       time.Duration     // age of the oldest held record (0 when empty)
	Dropped         uint64            // total dropped by bounds
	DroppedByCause  map[string]uint64 // "max_bytes", "max_age", "max_records", "corrupt" (Badger: damaged segments skipped), "disk_full" (Badger: appends refused)
	DiskBytes       int64             // on-disk size (badger) or 0
	// Commits counts the write transactions committed since open (Badger; 0 for memory):
	// appends, acks, drops. With SyncWrites each one is a sync.
	Commits uint64
}

// Limits bound what the journal holds. When exceeded the oldest records are dropped.
type Limits struct {
	MaxBytes   int64         // 0 = unlimited; bound on DepthBytes
	MaxAge     time.Duration // 0 = unlimited
	MaxRecords int64         // 0 = unlimited
	// MinFreeBytes (Badger only) is the space left free on the journal's filesystem: below it
	// Append refuses new batches with ErrDiskFull instead of dropping the oldest records (see
	// diskguard.go for why). 0 = no reserve: a batch is refused only after a write reported
	// the disk full. The memory journal has no filesystem and ignores it.
	MinFreeBytes int64
}

// Options configure a journal.
type Options struct {
	Limits Limits
	Logger zerolog.Logger
	// Now is the clock used for record times and the age bound; nil = time.Now.
	Now func() time.Time
	// SyncWrites (Badger only): false survives a process crash (the WAL is mmap'ed, the page
	// cache keeps it), true also survives power loss at roughly 1 ms per commit.
	SyncWrites bool
	// GCInterval (Badger only) is how often value-log GC runs; 0 = 5 minutes.
	GCInterval time.Duration

	// Seams for tests of a full disk.
	freeSpace    func(dir string) (uint64, error) // nil = the filesystem's free space (statfs)
	beforeCommit func() error                     // runs before each commit of Append; an error fails the commit
	beforeLayout func() error                     // runs before a layout-2 journal is marked layout 3; an error fails that write
	diskEvery    time.Duration                    // free-space check interval; 0 = diskCheckEvery
	noTail       bool                             // Badger reads and acks from disk only (tail.go)
}

func (o Options) clock() func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// Drop causes, in the order they are checked: an expired record is reported as such even if
// the journal is also over its count or size bound, because it would have gone anyway.
// causeCorrupt is not a bound: it counts the records of segments the Badger journal found
// damaged on disk and skipped. causeDiskFull counts events refused by Append (they never got a
// seq), never head records.
const (
	causeAge = iota
	causeRecords
	causeBytes
	causeCorrupt
	causeDiskFull
	numCauses
)

var causeNames = [numCauses]string{"max_age", "max_records", "max_bytes", "corrupt", "disk_full"}

// ledger is the bookkeeping both implementations keep in RAM so that Stats, Cursor and the
// bound checks never touch storage.
type ledger struct {
	cursor, last uint64
	depth        uint64
	bytes        uint64
	headTime     int64 // Time of the oldest held record; meaningless when depth == 0

	appended, acked, dropped uint64
	droppedBy                [numCauses]uint64
}

func (l *ledger) stats(now time.Time) Stats {
	s := Stats{
		Appended:       l.appended,
		Acked:          l.acked,
		Depth:          l.depth,
		DepthBytes:     l.bytes,
		Dropped:        l.dropped,
		DroppedByCause: make(map[string]uint64, numCauses),
	}
	for c, n := range l.droppedBy {
		s.DroppedByCause[causeNames[c]] = n
	}
	if l.depth > 0 {
		// A clock that stepped backwards must not report a negative age.
		s.OldestAge = max(0, time.Duration(now.UnixNano()-l.headTime))
	}
	return s
}

// added accounts for records that are now durable.
func (l *ledger) added(n, bytes uint64, ts int64) {
	if l.depth == 0 {
		l.headTime = ts
	}
	l.depth += n
	l.bytes += bytes
	l.appended += n
}

// removed accounts for records (cursor, upTo] that are gone; head is the Time of the new oldest
// record when any remain.
func (l *ledger) removed(upTo, n, bytes uint64, head int64) {
	l.cursor = upTo
	l.depth -= min(n, l.depth)
	l.bytes -= min(bytes, l.bytes)
	if l.depth > 0 {
		l.headTime = head
	}
}

// held is what bound enforcement needs to know about one held record.
type held struct {
	seq  uint64
	time int64
	size uint64
}

// dropPlan says which head records a bound enforcement removes.
type dropPlan struct {
	upTo     uint64 // drop every record with Seq <= upTo
	n, bytes uint64
	by       [numCauses]uint64
	head     int64 // Time of the first record kept
}

// overBounds is the cheap check run on every Append: it only looks at the ledger, so the head
// is walked only when something will actually be dropped.
func overBounds(l *ledger, lim Limits, now time.Time) bool {
	if l.depth == 0 {
		return false
	}
	switch {
	case lim.MaxAge > 0 && l.headTime < now.UnixNano()-int64(lim.MaxAge):
		return true
	case lim.MaxRecords > 0 && l.depth > uint64(lim.MaxRecords):
		return true
	case lim.MaxBytes > 0 && l.bytes > uint64(lim.MaxBytes) && l.depth > 1:
		return true
	}
	return false
}

// planDrops walks held records oldest first (next yields them) and decides how many to drop.
// The newest record survives the size and count bounds so that an append is never refused;
// only age can empty the journal.
func planDrops(l *ledger, lim Limits, now time.Time, next func() (held, bool, error)) (dropPlan, error) {
	p := dropPlan{upTo: l.cursor}
	depth, bytes := l.depth, l.bytes
	cutoff := now.UnixNano() - int64(lim.MaxAge)
	for depth > 0 {
		r, ok, err := next()
		if err != nil {
			return p, err
		}
		if !ok {
			break
		}
		var c int
		switch {
		case lim.MaxAge > 0 && r.time < cutoff:
			c = causeAge
		case lim.MaxRecords > 0 && depth > uint64(lim.MaxRecords):
			c = causeRecords
		case lim.MaxBytes > 0 && bytes > uint64(lim.MaxBytes) && depth > 1:
			c = causeBytes
		default:
			p.head = r.time
			return p, nil
		}
		p.upTo = r.seq
		p.n++
		p.bytes += r.size
		p.by[c]++
		depth--
		bytes -= min(r.size, bytes)
	}
	return p, nil
}

func (l *ledger) applyDrops(p dropPlan) {
	l.removed(p.upTo, p.n, p.bytes, p.head)
	l.dropped += p.n
	for c, n := range p.by {
		l.droppedBy[c] += n
	}
}

// dropLogEvery keeps a journal that is permanently over its bound (uplink down for days) from
// flooding the log with one line per append.
const dropLogEvery = 10 * time.Second

// dropLog rate-limits the drop warning and carries the suppressed counts into the next line so
// that the log still adds up to the Dropped counter.
type dropLog struct {
	log       zerolog.Logger
	lastLine  time.Time
	logged    bool
	pending   uint64
	pendingBy [numCauses]uint64
}

func (d *dropLog) note(p dropPlan, l *ledger, now time.Time) {
	d.pending += p.n
	for c, n := range p.by {
		d.pendingBy[c] += n
	}
	d.flush(l, now, false)
}

// flush writes the pending summary if the interval has passed, or unconditionally with force
// (on Close, so that the last suppressed drops are not lost from the log).
func (d *dropLog) flush(l *ledger, now time.Time, force bool) {
	if d.pending == 0 {
		return
	}
	if !force && d.logged && now.Sub(d.lastLine) < dropLogEvery {
		return
	}
	ev := d.log.Warn().Uint64("dropped", d.pending)
	for c, n := range d.pendingBy {
		if n > 0 {
			ev = ev.Uint64(causeNames[c], n)
		}
	}
	ev.Uint64("dropped_total", l.dropped).
		Uint64("cursor", l.cursor).
		Uint64("depth", l.depth).
		Uint64("depth_bytes", l.bytes).
		Msg("journal bound exceeded, dropped oldest records")
	d.pending = 0
	d.pendingBy = [numCauses]uint64{}
	d.lastLine = now
	d.logged = true
}
