package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

// gatedJournal blocks its first Append until released, so a test can queue
// messages behind a busy journal actor.
type gatedJournal struct {
	persistence.Journal
	entered, release chan struct{}
	first            bool
}

func (g *gatedJournal) Append(data [][]byte) (uint64, uint64, error) {
	if !g.first {
		g.first = true
		close(g.entered)
		<-g.release
	}
	return g.Journal.Append(data)
}

// TestFlushCoversQueuedAppends: the shutdown Flush answers only after the
// events queued before it are committed. A Flush that overtook them (as a
// control message would) answered early, and the final drain then stopped the
// uplink with those events still undelivered.
func TestFlushCoversQueuedAppends(t *testing.T) {
	mem := persistence.OpenMemory(persistence.Options{})
	j := &gatedJournal{Journal: mem, entered: make(chan struct{}), release: make(chan struct{})}
	sys := actorsys.New()
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &journalActor{j: j, uplink: func() *actor.PID { return nil }, log: zerolog.Nop(), counters: &Counters{}}
	}, actor.WithMailbox(mailbox.Producer(mailbox.WithCapacity(1024)))))
	defer sys.Root.Stop(pid)

	ev := func() protocols.Event {
		return protocols.Event{Kind: protocols.EventTelemetry, Device: "d", Ts: 1,
			Values: []protocols.Datapoint{{Key: "k", Value: protocols.Int(1)}}}
	}
	// A full group commits at once and blocks in the gated Append.
	full := make([]protocols.Event, maxGroup)
	for i := range full {
		full[i] = ev()
	}
	sys.Root.Send(pid, &AppendEvents{Events: full})
	<-j.entered
	const queued = 10
	for range queued {
		sys.Root.Send(pid, &AppendEvents{Events: []protocols.Event{ev()}})
	}
	f := sys.Root.RequestFuture(pid, &Flush{}, 10*time.Second)
	close(j.release)
	res, err := f.Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.(*Flushed).Last, uint64(maxGroup+queued); got != want {
		t.Fatalf("Flush answered with last seq %d, want %d: it overtook queued events", got, want)
	}
}
