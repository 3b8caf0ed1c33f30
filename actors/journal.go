package actors

import (
	"cmp"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// maxGroup is the size at which a group commits without waiting out the
// linger: its sync is amortised already. Half a push window, so a push source
// fills one group while the other commits instead of stalling on a full
// window for the linger. It also bounds a batch a burst builds.
const maxGroup = pushWindow / 2

// flushPending ends a linger; it carries its owner so that a timer of a
// previous incarnation (after a restart) is recognised and ignored.
type flushPending struct{ owner *journalActor }

// ackFlush ends the wait of a deferred ack for an Append to carry it.
type ackFlush struct{ owner *journalActor }

// slotPolled says the polls that were in flight are all in (see pollGate):
// nothing more of their slot is coming, so waiting out the linger would only
// add latency. An ordinary data message, so it arrives after their appends.
type slotPolled struct{}

var slotPolledMsg = &slotPolled{}

// enforceTick makes the age bound hold while no data arrives (bounds are
// otherwise enforced on append).
type enforceTick struct{ owner *journalActor }

const enforceInterval = 10 * time.Second

// defaultLinger is the journal actor's linger when none is configured.
const defaultLinger = 5 * time.Millisecond

// defaultAckDelay bounds how long a deferred ack waits for an Append to carry
// it to disk (see persistence.DeferredAcker). Polls of one period start in
// up to ten slots at most 100 ms apart, so at poll periods up to 10 s the
// next slot's commit carries the previous slot's ack and a steady run makes
// one write per slot instead of two. It is also what a crash can send twice
// beyond the PUBACKs in flight: about a second of acknowledged data.
const defaultAckDelay = time.Second

// journalActor group-commits events: an AppendEvents only buffers, and the
// first one of a burst arms a flush linger later, so everything that
// arrives in the meantime is committed in one write.
type journalActor struct {
	j        persistence.Journal
	uplink   func() *actor.PID
	log      zerolog.Logger
	counters *Counters
	// linger bounds how long an event waits for company before its group
	// commit; it is the latency price of one sync per batch instead of per
	// event (storage commit_interval_ms).
	linger time.Duration

	// ackDelay overrides defaultAckDelay (tests).
	ackDelay time.Duration

	pending     [][]byte
	dones       []func(error)
	flushQueued bool
	flushDue    time.Time // a flushPending before it is a stale timer's
	flushTimer  *time.Timer
	flushMsg    *flushPending
	ackQueued   bool      // ackTimer runs
	ackSince    time.Time // when the oldest ack no commit carried yet came; zero: none
	ackTimer    *time.Timer
	buf         []byte
	errLog      ratelimit.Lines
	stopTicker  func()
}

func (a *journalActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.startTicker(ctx)
	case *enforceTick:
		if e, ok := a.j.(persistence.Enforcer); ok && m.owner == a {
			if err := e.Enforce(); err != nil {
				a.log.Error().Err(err).Msg("journal bound enforcement failed")
			}
		}
	case *AppendEvents:
		for i := range m.Events {
			start := len(a.buf)
			a.buf = m.Events[i].AppendBinary(a.buf)
			a.pending = append(a.pending, a.buf[start:len(a.buf):len(a.buf)])
			if m.Recycle {
				protocols.RecycleDatapoints(m.Events[i].Values)
				m.Events[i].Values = nil
			}
		}
		if m.Done != nil {
			a.dones = append(a.dones, m.Done)
		}
		if len(a.pending) >= maxGroup {
			a.commit(ctx)
		} else if !a.flushQueued && len(a.pending) > 0 {
			// Linger briefly so events from devices polling a few
			// milliseconds apart share one sync instead of one each.
			a.armFlush(ctx)
		}
	case *slotPolled:
		// The slot's polls are all in: commit now instead of at the end of
		// the linger (or of a second one, for polls that came after the
		// first linger ended). Push events buffered meanwhile go along.
		if len(a.pending) > 0 {
			a.commit(ctx)
		}
	case *flushPending:
		// A timer that fired before the current linger's end belongs to a
		// group committed early; the current one is still armed.
		if m.owner == a && a.flushQueued && !time.Now().Before(a.flushDue) {
			a.commit(ctx)
		}
	case *Flush:
		a.commit(ctx)
		ctx.Respond(&Flushed{Last: a.j.LastSeq()})
	case *Ack:
		a.ack(ctx, m.UpTo)
	case *ackFlush:
		if m.owner != a {
			return
		}
		// Commits since the timer was armed may have carried the acks, and a
		// later one may have come: write only an ack that waited the delay.
		switch wait := cmp.Or(a.ackDelay, defaultAckDelay) - time.Since(a.ackSince); {
		case a.ackSince.IsZero():
			a.ackQueued = false
		case wait > 0:
			a.ackTimer.Reset(wait)
		default:
			a.ackQueued = false
			a.ackSince = time.Time{}
			a.flushAcks()
		}
	case *actor.Stopping, *actor.Restarting:
		// Whatever is buffered was handed to us; commit it before going away,
		// and write an acknowledgement still waiting for company.
		a.commit(ctx)
		a.flushAcks()
		if a.stopTicker != nil {
			a.stopTicker()
		}
		if a.flushTimer != nil {
			a.flushTimer.Stop()
		}
		if a.ackTimer != nil {
			a.ackTimer.Stop()
		}
	}
}

// armFlush starts the linger of a new group on the actor's one reusable timer.
func (a *journalActor) armFlush(ctx actor.Context) {
	d := cmp.Or(a.linger, defaultLinger)
	a.flushQueued = true
	a.flushDue = time.Now().Add(d)
	if a.flushTimer == nil {
		sys, self, msg := ctx.ActorSystem(), ctx.Self(), &flushPending{owner: a}
		a.flushTimer = time.AfterFunc(d, func() { sys.Root.Send(self, msg) })
		return
	}
	a.flushTimer.Reset(d)
}

// ack deletes what the platform acknowledged. A journal whose ack is a write
// of its own (Badger) defers it to the next commit, bounded by ackDelay, so
// that a slot's commit carries the previous slot's ack.
func (a *journalActor) ack(ctx actor.Context, upTo uint64) {
	da, ok := a.j.(persistence.DeferredAcker)
	if !ok {
		if err := a.j.Ack(upTo); err != nil {
			a.log.Error().Err(err).Uint64("seq", upTo).Msg("journal ack failed; records will be re-sent")
		}
		return
	}
	if err := da.AckDeferred(upTo); err != nil {
		a.log.Error().Err(err).Uint64("seq", upTo).Msg("journal ack failed; records will be re-sent")
		return
	}
	if a.ackSince.IsZero() {
		a.ackSince = time.Now()
	}
	if a.ackQueued {
		return
	}
	a.ackQueued = true
	d := cmp.Or(a.ackDelay, defaultAckDelay)
	if a.ackTimer == nil {
		sys, self, msg := ctx.ActorSystem(), ctx.Self(), &ackFlush{owner: a}
		a.ackTimer = time.AfterFunc(d, func() { sys.Root.Send(self, msg) })
		return
	}
	a.ackTimer.Reset(d)
}

// flushAcks writes a deferred ack that no commit carried (nothing to write
// when one did).
func (a *journalActor) flushAcks() {
	da, ok := a.j.(persistence.DeferredAcker)
	if !ok {
		return
	}
	if err := da.FlushAcks(); err != nil && !errors.Is(err, persistence.ErrClosed) {
		a.log.Error().Err(err).Msg("journal ack write failed; acknowledged records may be re-sent after a restart")
	}
}

func (a *journalActor) startTicker(ctx actor.Context) {
	a.stopTicker = every(ctx.ActorSystem(), ctx.Self(), enforceInterval, &enforceTick{owner: a})
}

func (a *journalActor) commit(ctx actor.Context) {
	if a.flushQueued {
		a.flushQueued = false
		a.flushTimer.Stop()
	}
	if len(a.pending) == 0 {
		a.notify(nil)
		return
	}
	n := len(a.pending)
	_, last, err := a.j.Append(a.pending)
	defer a.notify(err)
	if err != nil {
		a.counters.EventsLost.Add(uint64(n))
		a.counters.JournalErrors.Add(1)
		if ok, suppressed := a.errLog.Allow(time.Now()); ok {
			a.log.Error().Err(err).Int("events", n).Int("suppressed", suppressed).Msg("journal append failed; events dropped")
		}
	} else {
		// The append carried any deferred ack (persistence.DeferredAcker).
		a.ackSince = time.Time{}
		a.counters.EventsJournaled.Add(uint64(n))
		if up := a.uplink(); up != nil {
			ctx.Send(up, &JournalAppended{Last: last})
		}
	}
	clear(a.pending)
	a.pending = a.pending[:0]
	// Keep a modest buffer; drop a huge one so a burst does not pin memory.
	if cap(a.buf) > 4<<20 {
		a.buf = nil
	} else {
		a.buf = a.buf[:0]
	}
}

// notify tells the senders waiting for this commit how it went.
func (a *journalActor) notify(err error) {
	for _, f := range a.dones {
		f(err)
	}
	clear(a.dones)
	a.dones = a.dones[:0]
}
