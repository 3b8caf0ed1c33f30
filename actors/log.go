package actors

import (
	"log/slog"

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
