package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// watchdogTick asks the root actor to check that the core actors answer.
type watchdogTick struct{ timeout time.Duration }

// watchdog is the root actor's liveness check. The root probes the journal,
// uplink and registry with protoactor's Touch, which an actor answers from its
// mailbox in order like any message, and calls alive only if all of them
// answered within the period. So a root that no longer takes messages, or a
// core actor stuck in a handler, stops the calls, and a service manager's
// watchdog (systemd WatchdogSec) restarts the process. Connectors are left
// out: one may legitimately wait out a slow device's timeouts.
type watchdog struct {
	alive  func()              // nil: no watchdog
	core   func() []*actor.PID // the actors probed; nil entries are skipped
	goSafe func(what string, fn func())
	log    zerolog.Logger
}

// run sends root a tick every period until done is closed.
func (w *watchdog) run(sys *actor.ActorSystem, root *actor.PID, period time.Duration, done <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			sys.Root.Send(root, &watchdogTick{timeout: period})
		}
	}
}

// onTick runs in the root actor; the answers are awaited off it.
func (w *watchdog) onTick(ctx actor.Context, tick *watchdogTick) {
	if w == nil || w.alive == nil {
		return
	}
	var futures []*actor.Future
	for _, pid := range w.core() {
		if pid != nil {
			futures = append(futures, ctx.RequestFuture(pid, &actor.Touch{}, tick.timeout))
		}
	}
	alive := w.alive
	w.goSafe("watchdog probe", func() {
		for _, f := range futures {
			if _, err := f.Result(); err != nil {
				w.log.Warn().Err(err).Msg("watchdog: a core actor did not answer; not reporting alive")
				return
			}
		}
		alive()
	})
}

// spawnRequest asks the root to spawn a child: protoactor spawns a child
// only from inside its parent. It is a control message so a busy root
// handles it first.
type spawnRequest struct {
	name  string
	props *actor.Props
}

type spawnReply struct {
	pid *actor.PID
	err error
}

func (*spawnRequest) ControlMessage() {}

// rootActor is the tree's root. It only spawns, so that every actor is under
// one supervised tree (protoactor spawns a child only from inside its parent),
// and runs the watchdog's probes; all long-lived state is in its children.
type rootActor struct{ watchdog *watchdog }

func (r *rootActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *spawnRequest:
		pid, err := ctx.SpawnNamed(m.props, m.name)
		ctx.Respond(&spawnReply{pid: pid, err: err})
	case *watchdogTick:
		r.watchdog.onTick(ctx, m)
	}
}
