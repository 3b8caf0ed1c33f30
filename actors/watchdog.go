package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// watchdogTick asks the root actor to check that the core actors answer.
type watchdogTick struct{ timeout time.Duration }

// startWatchdog sends the root a tick every period. The root probes the journal, uplink and
// registry with protoactor's Touch, which an actor answers from its mailbox in order like any
// message, and calls alive only if all of them answered within the period. So a root that no
// longer takes messages, or a core actor stuck in a handler, stops the calls, and a service
// manager's watchdog (systemd WatchdogSec) restarts the process. Connectors are left out: one
// may legitimately wait out a slow device's timeouts.
func (g *Gateway) startWatchdog(period time.Duration, alive func()) {
	done := make(chan struct{})
	g.watchdogStop = done
	g.watchdogAlive = alive
	g.goSafe("watchdog", func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				g.sys.Root.Send(g.root, &watchdogTick{timeout: period})
			}
		}
	})
}

// onWatchdogTick runs in the root actor.
func (g *Gateway) onWatchdogTick(ctx actor.Context, tick *watchdogTick) {
	if g.watchdogAlive == nil {
		return
	}
	var futures []*actor.Future
	for _, pid := range []*actor.PID{g.journal, g.uplink, g.registry} {
		if pid != nil {
			futures = append(futures, ctx.RequestFuture(pid, &actor.Touch{}, tick.timeout))
		}
	}
	alive := g.watchdogAlive
	g.goSafe("watchdog probe", func() {
		for _, f := range futures {
			if _, err := f.Result(); err != nil {
				g.log.Warn().Err(err).Msg("watchdog: a core actor did not answer; not reporting alive")
				return
			}
		}
		alive()
	})
}
