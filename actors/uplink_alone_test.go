package actors

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/platform"
)

// journalWith returns a memory journal holding n telemetry events of device d.
func journalWith(t *testing.T, d string, n int) persistence.Journal {
	t.Helper()
	j := persistence.OpenMemory(persistence.Options{})
	var recs [][]byte
	for i := range n {
		ev := protocols.Event{Kind: protocols.EventTelemetry, Device: d, Ts: int64(1000 + i),
			Values: []protocols.Datapoint{{Key: "k", Value: protocols.Int(int64(i))}}}
		recs = append(recs, ev.AppendBinary(nil))
	}
	if _, _, err := j.Append(recs); err != nil {
		t.Fatal(err)
	}
	return j
}

// spawnUplink starts an uplink actor alone: the platform at port, the
// journal j, acks to the journal probe it returns.
func spawnUplink(t *testing.T, sys *actor.ActorSystem, port int, j persistence.Journal) (*actor.PID, <-chan any, *uplinkDeps) {
	t.Helper()
	journal, acks := spawnProbe(t, sys, "journal", nil)
	deps := uplinkDeps{
		j: j, journal: func() *actor.PID { return journal },
		platform: func() platform.Config {
			return platform.Config{Host: "127.0.0.1", Port: port, QoS: 1, KeepAlive: time.Minute, MaxPayload: 8196,
				Security: platform.Security{Type: "accessToken", AccessToken: "t"}}
		},
		log: zerolog.Nop(), counters: &Counters{}, qos: 1, readBat: 100,
		onMessage: func(string, []byte) {},
		published: new(atomic.Pointer[platform.Client]),
	}
	pid := sys.Root.Spawn((&propsKit{}).props(func() actor.Actor { return &uplinkActor{uplinkDeps: deps} }, WithMailbox(uplinkMailbox)))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return pid, acks, &deps
}

// TestUplinkAcksAfterPuback: journaled records are published, and once the
// broker PUBACKed them the uplink tells the journal to ack them all.
func TestUplinkAcksAfterPuback(t *testing.T) {
	b := testpeer.StartMochi(t, testpeer.AllowAll())
	sys := bareSystem(t)
	const n = 25
	j := journalWith(t, "dev", n)
	pid, acks, deps := spawnUplink(t, sys, b.Port(), j)
	sys.Root.Send(pid, &JournalAppended{Last: n})
	waitFor(t, acks, func(a *Ack) bool { return a.UpTo == n })
	if deps.counters.MessagesSent.Load() == 0 || deps.counters.ValuesDelivered.Load() != n {
		t.Fatalf("sent %d messages, %d values; want %d values", deps.counters.MessagesSent.Load(), deps.counters.ValuesDelivered.Load(), n)
	}
	if deps.published.Load() == nil {
		t.Fatal("the platform client was not published for direct senders")
	}
}

// TestUplinkRetriesUntilTheBrokerIsUp: with the broker down nothing is
// acked; the uplink keeps trying, and once a broker listens the records are
// delivered and acked.
func TestUplinkRetriesUntilTheBrokerIsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(p)
	l.Close() // nothing listens there until the broker starts
	sys := bareSystem(t)
	const n = 10
	j := journalWith(t, "dev", n)
	pid, acks, deps := spawnUplink(t, sys, port, j)
	sys.Root.Send(pid, &JournalAppended{Last: n})
	// Wait until a connection attempt has failed, so delivery below comes
	// from a retry and not from the first attempt.
	testpeer.Eventually(t, waitLimit, "a failed connection attempt", func() error {
		if c := deps.published.Load(); c == nil || c.Stats().LastError == "" {
			return errNoAttemptYet
		}
		return nil
	})
	select {
	case m := <-acks:
		t.Fatalf("%T %+v while the broker was down", m, m)
	default:
	}
	testpeer.StartMochi(t, testpeer.AllowAll(), testpeer.MochiPort(port))
	waitFor(t, acks, func(a *Ack) bool { return a.UpTo == n })
	if deps.counters.Reconnects.Load() != 1 {
		t.Fatalf("%d connects counted, want 1", deps.counters.Reconnects.Load())
	}
}

var errNoAttemptYet = errors.New("no failed connection attempt yet")
