package automation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// forwardDone ends one write of a forward.
type forwardDone struct{ err error }

func (*forwardDone) ControlMessage() {}

// forwardActor writes every new value of its source key to its target,
// through the target connector's downlink. One write is in flight at a
// time; values arriving meanwhile collapse to the newest, which is what a
// setpoint copy wants.
type forwardActor struct {
	f      *Forward
	env    handler.Env
	st     *entry
	clock  Clock
	log    zerolog.Logger
	busy   bool
	queued *protocols.Value
}

func (a *forwardActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *bus.Values:
		for _, dp := range m.Values {
			if dp.Key != a.f.Source.Key {
				continue
			}
			a.st.checks.Add(1)
			v, err := a.transform(m, dp)
			if err != nil {
				a.st.fail(a.clock.Now(), err)
				a.st.skipped.Add(1)
				continue
			}
			a.queued = &v
		}
		a.next(ctx)
	case *forwardDone:
		a.busy = false
		now := a.clock.Now()
		if m.err != nil {
			a.log.Warn().Err(m.err).Msg("forward write failed")
			a.st.fail(now, m.err)
		} else {
			a.st.ok()
		}
		a.st.ran(now)
		a.next(ctx)
	}
}

func (a *forwardActor) transform(m *bus.Values, dp protocols.Datapoint) (protocols.Value, error) {
	if a.f.Expression == nil {
		return dp.Value, nil
	}
	args := make([]pyexpr.Arg, 0, 4)
	for _, n := range a.f.Expression.Names() {
		switch n {
		case "value":
			args = append(args, pyexpr.Arg{Value: dp.Value})
		case "device":
			args = append(args, pyexpr.Arg{Value: protocols.String(m.Device)})
		case "key":
			args = append(args, pyexpr.Arg{Value: protocols.String(dp.Key)})
		case "ts":
			args = append(args, pyexpr.Arg{Value: protocols.Int(m.Ts)})
		}
	}
	return a.f.Expression.Eval(args)
}

// next starts the write of the newest value when none is in flight.
func (a *forwardActor) next(ctx actor.Context) {
	if a.busy || a.queued == nil {
		return
	}
	v := *a.queued
	a.queued = nil
	a.busy = true
	raw := v.AppendJSON(nil)
	values := map[string]json.RawMessage{a.f.Target.Key: raw}
	sys, self, target, write := ctx.ActorSystem(), ctx.Self(), a.f.Target, a.env.WriteDevice
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		ignored, err := write(wctx, target.Device, values)
		cancel()
		if err == nil && len(ignored) > 0 {
			err = fmt.Errorf("device %q does not take %q (not in its attributeUpdates)", target.Device, target.Key)
		}
		sys.Root.Send(self, &forwardDone{err: err})
	}()
}
