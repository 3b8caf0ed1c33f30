package supervisor

import (
	"fmt"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// LogPanics wraps an actor so that a panic in it is logged at Error level, with the actor's
// id, the message type and the stack, and then raised again with the same value so that
// supervision (and the decider, which inspects that value) proceeds as usual. protoactor
// recovers panics in the mailbox, where the stack is already gone, and logs only the panic
// value; the wrapper's deferred recover runs while the panicking frames are still on the
// stack. logFor picks the logger by the actor's PID id, so the line can carry the actor's
// own fields (its connector and device).
//
// A wrapping actor rather than receiver middleware: any middleware makes protoactor
// allocate an envelope for every message the actor gets.
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
