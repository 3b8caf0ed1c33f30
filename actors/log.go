package actors

import (
	"log/slog"
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
