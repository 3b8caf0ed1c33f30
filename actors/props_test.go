package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/mailbox"
)

type propsPing struct{}

// A message to an actor of the tree allocates nothing on its way: not the
// mailbox's scheduling, not the panic logging, not the metering (receiver
// middleware would cost an envelope per message). At low poll rates a poll's
// handful of actor messages is a visible share of its allocations.
func TestPropsMessageAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		metrics *observe.Metrics
	}{{"plain", nil}, {"metrics", observe.New(observe.Options{})}} {
		t.Run(tc.name, func(t *testing.T) {
			sys := bareSystem(t)
			kit := &propsKit{dispatcher: mailbox.NewPooledDispatcher(10, time.Minute), metrics: tc.metrics}
			got := make(chan struct{}, 1)
			pid := sys.Root.Spawn(kit.props(func() actor.Actor {
				return actor.ReceiveFunc(func(c actor.Context) {
					if _, ok := c.Message().(*propsPing); ok {
						got <- struct{}{}
					}
				})
			}))
			defer sys.Root.Stop(pid)
			msg := &propsPing{}
			send := func() {
				sys.Root.Send(pid, msg)
				<-got // a lost message hangs until the test's own timeout
			}
			send()
			if n := testing.AllocsPerRun(200, send); n > 0 {
				t.Fatalf("%v allocations per message, want 0", n)
			}
		})
	}
}
