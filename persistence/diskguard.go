package persistence

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// diskCheckEvery bounds how stale the free-space figure may get; statfs costs about a
// microsecond, so this is about not doing it per append, not about its price.
const diskCheckEvery = 250 * time.Millisecond

// diskGuard keeps the Badger journal from filling its filesystem (Limits.MinFreeBytes).
//
// A full disk refuses new batches instead of dropping the oldest records the way max_bytes
// does, for three reasons. Deleting in badger only writes tombstones: the space comes back
// when compaction rewrites the tables, which itself needs free space, so dropping would lose
// data without making room when it is needed. The space may be taken by something else (logs,
// another service), which no amount of dropping fixes. And what was accepted is still
// delivered once the uplink is back, whose acks then free space. max_bytes remains the bound
// that keeps the newest data; it should be sized under the free space.
//
// The reserve is also what keeps the process alive: badger writes its write-ahead log and
// tables through mmap'ed sparse files, and a write to such a page on a full filesystem gets
// SIGBUS from the kernel, not an error. Acks, bound drops and compactions go on below the
// reserve, since they are what frees space.
//
// Caller holds the journal's write lock for every method.
type diskGuard struct {
	dir     string
	reserve uint64
	free    func(dir string) (uint64, error)
	every   time.Duration
	log     zerolog.Logger

	checked  time.Time
	known    bool   // lastFree was measured (or could not be)
	lastFree uint64 // free bytes at checked
	since    uint64 // bytes appended since checked
	failed   bool   // the last statfs failed; logged once

	full        bool
	fullSince   time.Time
	episode     uint64 // events refused since the disk became full
	pending     uint64 // events refused since the last warning line
	lastWarning time.Time
}

func newDiskGuard(dir string, o Options) *diskGuard {
	g := &diskGuard{
		dir:     dir,
		reserve: uint64(max(o.Limits.MinFreeBytes, 0)),
		free:    o.freeSpace,
		every:   o.diskEvery,
		log:     o.Logger,
	}
	if g.free == nil {
		g.free = freeSpace
	}
	if g.every <= 0 {
		g.every = diskCheckEvery
	}
	return g
}

// admit decides whether a batch of events taking about bytes on disk may be written. It
// measures free space when the last figure is older than every, or when the bytes appended
// since could have eaten a quarter of the headroom it showed (badger writes data at least
// twice before compaction: log, then table), so a burst cannot run through the reserve
// between two checks. Without a reserve it measures only to learn that a full disk has room
// again.
func (g *diskGuard) admit(now time.Time, events int, bytes uint64) error {
	due := !g.known || now.Sub(g.checked) >= g.every
	if !g.full {
		if g.reserve == 0 {
			due = false
		} else if !due {
			due = sat(g.since, bytes) >= g.headroom()/4
		}
	}
	if due {
		g.check(now)
	}
	if !g.full {
		g.since = sat(g.since, bytes)
		return nil
	}
	g.refused(now, events)
	return fmt.Errorf("persistence: append %d events: %s has %d bytes free, %d reserved: %w", events, g.dir, g.lastFree, g.reserve, ErrDiskFull)
}

func (g *diskGuard) headroom() uint64 {
	if g.lastFree <= g.reserve {
		return 0
	}
	return g.lastFree - g.reserve
}

func (g *diskGuard) check(now time.Time) {
	free, err := g.free(g.dir)
	g.checked, g.known, g.since = now, true, 0
	if err != nil {
		// Without a figure the reserve cannot be kept; a full disk still shows as a
		// failed write.
		if !g.failed {
			g.log.Warn().Err(err).Str("dir", g.dir).Msg("cannot measure the journal's free disk space; its reserve is not enforced")
		}
		g.failed = true
		g.lastFree = math.MaxUint64
		g.setFull(now, false)
		return
	}
	g.failed = false
	g.lastFree = free
	g.setFull(now, free < g.reserve)
}

// noSpace records a write that failed for lack of space: refuse until a check shows room.
func (g *diskGuard) noSpace(now time.Time, events int, err error) {
	g.checked, g.known, g.lastFree = now, true, 0
	if !g.full {
		g.log.Error().Err(err).Str("dir", g.dir).Msg("journal disk full; refusing new events until space is freed")
	}
	g.setFull(now, true)
	g.refused(now, events)
}

func (g *diskGuard) setFull(now time.Time, full bool) {
	switch {
	case full && !g.full:
		g.full, g.fullSince = true, now
		g.episode, g.pending = 0, 0
		g.lastWarning = time.Time{}
	case !full && g.full:
		// This line also carries the refusals not yet logged.
		g.full, g.pending = false, 0
		g.log.Info().Str("dir", g.dir).Uint64("free_bytes", g.lastFree).Uint64("min_free_bytes", g.reserve).
			Uint64("refused", g.episode).Dur("after", max(0, now.Sub(g.fullSince))).
			Msg("journal disk has room again; accepting new events")
	}
}

// refused counts and logs refused events: the first refusal of an episode at once, then one
// line per dropLogEvery carrying the count since the previous one.
func (g *diskGuard) refused(now time.Time, events int) {
	g.episode += uint64(events)
	g.pending += uint64(events)
	if !g.lastWarning.IsZero() && now.Sub(g.lastWarning) < dropLogEvery {
		return
	}
	g.warn(now)
}

func (g *diskGuard) warn(now time.Time) {
	g.log.Warn().Str("dir", g.dir).Uint64("free_bytes", g.lastFree).Uint64("min_free_bytes", g.reserve).
		Uint64("refused", g.pending).Uint64("refused_since_full", g.episode).
		Msg("journal disk below its free-space reserve; new events are refused and dropped")
	g.pending = 0
	g.lastWarning = now
}

// flush logs the refusals suppressed since the last line: on Close (force), and from Enforce
// once the interval has passed, so that the count reaches the log even when the refusals stop.
func (g *diskGuard) flush(now time.Time, force bool) {
	if g.pending > 0 && (force || now.Sub(g.lastWarning) >= dropLogEvery) {
		g.warn(now)
	}
}

func sat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// isNoSpace tells a write that failed for lack of space (or quota). Badger does not always
// keep the errno in its chain, hence the text match as a fallback.
func isNoSpace(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), syscall.ENOSPC.Error())
}

// blockBytes multiplies a block count by a block size whose integer types differ per GOOS and
// GOARCH (int32 sizes on 32-bit Linux, signed counts on FreeBSD).
func blockBytes[N, S ~int32 | ~int64 | ~uint32 | ~uint64](blocks N, size S) uint64 {
	if blocks <= 0 || size <= 0 {
		return 0
	}
	b, s := uint64(blocks), uint64(size)
	if b > math.MaxUint64/s {
		return math.MaxUint64
	}
	return b * s
}
