package actors

import (
	"cmp"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// maxGroup is the size at which a group commits without waiting out the
// linger: its sync is amortised already. Half a push window, so a push source
// fills one group while the other commits instead of stalling on a full
// window for the linger. It also bounds a batch a burst builds.
const maxGroup = pushWindow / 2

type flushPending struct{}

// enforceTick makes the age bound hold while no data arrives (bounds are
// otherwise enforced on append).
type enforceTick struct{ owner *journalActor }

const enforceInterval = 10 * time.Second

// defaultLinger is the journal actor's linger when none is configured.
const defaultLinger = 5 * time.Millisecond

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

	pending     [][]byte
	dones       []func(error)
	flushQueued bool
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
		}
		if m.Done != nil {
			a.dones = append(a.dones, m.Done)
		}
		if len(a.pending) >= maxGroup {
			a.commit(ctx)
		} else if !a.flushQueued && len(a.pending) > 0 {
			// Linger briefly so events from devices polling a few
			// milliseconds apart share one sync instead of one each.
			a.flushQueued = true
			sys, self := ctx.ActorSystem(), ctx.Self()
			time.AfterFunc(cmp.Or(a.linger, defaultLinger), func() { sys.Root.Send(self, &flushPending{}) })
		}
	case *flushPending:
		if a.flushQueued {
			a.flushQueued = false
			a.commit(ctx)
		}
	case *Flush:
		a.commit(ctx)
		ctx.Respond(&Flushed{Last: a.j.LastSeq()})
	case *Ack:
		if err := a.j.Ack(m.UpTo); err != nil {
			a.log.Error().Err(err).Uint64("seq", m.UpTo).Msg("journal ack failed; records will be re-sent")
		}
	case *actor.Stopping, *actor.Restarting:
		// Whatever is buffered was handed to us; commit it before going away.
		a.commit(ctx)
		if a.stopTicker != nil {
			a.stopTicker()
		}
	}
}

func (a *journalActor) startTicker(ctx actor.Context) {
	a.stopTicker = every(ctx.ActorSystem(), ctx.Self(), enforceInterval, &enforceTick{owner: a})
}

func (a *journalActor) commit(ctx actor.Context) {
	a.flushQueued = false
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
