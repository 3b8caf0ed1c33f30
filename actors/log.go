package actors

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// slogFactory routes protoactor's own logging into zerolog. protoactor logs
// routine lifecycle at Info, which is noise on a device; only its warnings pass.
func slogFactory(log zerolog.Logger) func(*actor.ActorSystem) *slog.Logger {
	l := log.With().Str("lib", "protoactor").Logger()
	if l.GetLevel() < zerolog.WarnLevel {
		l = l.Level(zerolog.WarnLevel)
	}
	return func(*actor.ActorSystem) *slog.Logger { return slog.New(zerolog.NewSlogHandler(l)) }
}

// every sends msg to pid every d until the returned stop is called. Timers
// run outside the actor, so they may only talk to it through its mailbox.
func every(sys *actor.ActorSystem, pid *actor.PID, d time.Duration, msg any) (stop func()) {
	t := time.NewTicker(d)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				sys.Root.Send(pid, msg)
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { t.Stop(); close(done) }) }
}

// goSafe runs fn on its own goroutine. Outside an actor nothing supervises a
// goroutine, and a panic there would take the whole process (and every
// healthy device) down; here it is logged with its stack and counted instead.
func goSafe(log zerolog.Logger, counters *Counters, what string, fn func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				counters.Restarts.Add(1)
				log.Error().Str("task", what).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("background task panicked; the gateway keeps running")
			}
		}()
		fn()
	}()
}
