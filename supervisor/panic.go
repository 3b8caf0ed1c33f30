package supervisor

import (
	"fmt"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// PanicLogger returns receive middleware that logs a panic in the actor at Error level, with
// the actor's id, the message type and the stack, and then panics again with the same value
// so that supervision (and the decider, which inspects that value) proceeds as usual.
// protoactor recovers panics in the mailbox, where the stack is already gone, and logs only
// the panic value; this middleware runs while the panicking frames are still on the stack.
//
// Install it first (outermost) so that panics in later middleware are covered too.
func PanicLogger(log zerolog.Logger) actor.ReceiverMiddleware {
	return PanicLoggerFor(func(string) zerolog.Logger { return log })
}

// PanicLoggerFor is PanicLogger with the logger chosen by the actor's PID id when a panic
// happens, so the line can carry the actor's own fields (its connector and device).
func PanicLoggerFor(logFor func(actorID string) zerolog.Logger) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			var msg any
			if env != nil {
				msg = env.Message
			}
			defer logPanic(logFor, c.Self(), msg)
			next(c, env)
		}
	}
}

// LogPanics wraps an actor the way PanicLoggerFor wraps its receive. Any
// receiver middleware makes protoactor allocate an envelope for every
// message the actor gets; a wrapping actor costs nothing per message.
func LogPanics(logFor func(actorID string) zerolog.Logger, inner actor.Actor) actor.Actor {
	return &panicLogged{logFor: logFor, inner: inner}
}

type panicLogged struct {
	logFor func(actorID string) zerolog.Logger
	inner  actor.Actor
}

func (p *panicLogged) Receive(c actor.Context) {
	defer logPanic(p.logFor, c.Self(), c.Message())
	p.inner.Receive(c)
}

// logPanic is deferred by itself, so that its recover sees the panic.
func logPanic(logFor func(actorID string) zerolog.Logger, self *actor.PID, msg any) {
	r := recover()
	if r == nil {
		return
	}
	var id string
	if self != nil {
		id = self.Id
	}
	log := logFor(id)
	ev := log.Error()
	if err, ok := r.(error); ok {
		ev = ev.Err(err)
	} else {
		ev = ev.Str("panic", fmt.Sprint(r))
	}
	ev.Str("actor", id).
		Str("message_type", fmt.Sprintf("%T", msg)).
		Str("stack", string(debug.Stack())).
		Msg("actor panic")
	panic(r)
}
