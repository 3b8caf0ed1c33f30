package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
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

// spawnJournal runs a journal actor over j with the given linger and ack delay.
func spawnJournal(t *testing.T, j persistence.Journal, linger, ackDelay time.Duration) (*actor.ActorSystem, *actor.PID) {
	t.Helper()
	sys := actorsys.New()
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &journalActor{j: j, uplink: func() *actor.PID { return nil }, log: zerolog.Nop(), counters: &Counters{},
			linger: linger, ackDelay: ackDelay}
	}, actor.WithMailbox(mailbox.Producer(mailbox.WithCapacity(1024)))))
	return sys, pid
}

// appendOne sends one event and waits for its commit.
func appendOne(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) {
	t.Helper()
	appendWait(t, sys, pid, &AppendEvents{Events: []protocols.Event{{Kind: protocols.EventTelemetry, Device: "d", Ts: 1,
		Values: []protocols.Datapoint{{Key: "k", Value: protocols.Int(1)}}}}})
}

// appendWait sends m and waits for its commit.
func appendWait(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, m *AppendEvents) {
	t.Helper()
	done := make(chan error, 1)
	m.Done = func(err error) { done <- err }
	sys.Root.Send(pid, m)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append not committed")
	}
}

// TestJournalFoldsAcks: in a steady run of commit, PUBACK, ack, the next
// commit carries the previous ack, so the Badger journal makes one write per
// round instead of two; the last ack, which no commit follows, is written when
// the actor stops, and a restart resumes after it.
func TestJournalFoldsAcks(t *testing.T) {
	dir := t.TempDir()
	j, err := persistence.OpenBadger(dir, persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sys, pid := spawnJournal(t, j, time.Millisecond, time.Hour)
	start := j.Stats().Commits
	const rounds = 20
	for range rounds {
		appendOne(t, sys, pid)
		sys.Root.Send(pid, &Ack{UpTo: j.LastSeq()})
	}
	// Stop overtakes queued messages: let the last ack in first.
	testpeer.Eventually(t, 10*time.Second, "the last ack taken", func() error {
		if j.Cursor() != rounds {
			return fmt.Errorf("cursor %d", j.Cursor())
		}
		return nil
	})
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := j.Stats().Commits - start; got != rounds+1 {
		t.Fatalf("%d rounds of append and ack made %d commits, want %d (one per round, one for the last ack)", rounds, got, rounds+1)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := persistence.OpenBadger(dir, persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if j2.Cursor() != rounds || j2.Stats().Depth != 0 {
		t.Fatalf("after restart: cursor %d, depth %d; want %d, 0", j2.Cursor(), j2.Stats().Depth, rounds)
	}
}

// TestJournalAckWithoutAppend: an ack that no commit follows is written
// within the ack delay, not left for the next append or the stop.
func TestJournalAckWithoutAppend(t *testing.T) {
	j, err := persistence.OpenBadger(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sys, pid := spawnJournal(t, j, time.Millisecond, 20*time.Millisecond)
	defer sys.Root.Stop(pid)
	appendOne(t, sys, pid)
	written := j.Stats().Commits
	sys.Root.Send(pid, &Ack{UpTo: j.LastSeq()})
	testpeer.Eventually(t, 10*time.Second, "the lone ack written", func() error {
		if got := j.Stats().Commits; got != written+1 {
			return fmt.Errorf("%d commits since the append, want 1", got-written)
		}
		return nil
	})
}

// TestJournalCommitsWhenSlotPolled: once the slot's polls are all in, the
// journal commits at once instead of waiting out its linger.
func TestJournalCommitsWhenSlotPolled(t *testing.T) {
	sys, pid := spawnJournal(t, persistence.OpenMemory(persistence.Options{}), time.Hour, 0)
	defer sys.Root.Stop(pid)
	done := make(chan error, 1)
	sys.Root.Send(pid, &AppendEvents{Events: []protocols.Event{{Kind: protocols.EventTelemetry, Device: "d", Ts: 1,
		Values: []protocols.Datapoint{{Key: "k", Value: protocols.Int(1)}}}}, Done: func(err error) { done <- err }})
	select {
	case <-done:
		t.Fatal("committed before the linger ended or the slot was in")
	case <-time.After(50 * time.Millisecond):
	}
	sys.Root.Send(pid, slotPolledMsg)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slotPolled did not commit the pending group")
	}
}

// TestPollGate: only the poll that ends the last one due reports it; a slot
// due within the lookahead keeps the linger, and a stale or dropped poll
// holds nobody back.
func TestPollGate(t *testing.T) {
	var g pollGate
	g.setLookahead(20 * time.Millisecond)
	now := time.Unix(1_700_000_000, 0)
	slot := now.UnixNano()
	g.expect(slot)
	g.expect(slot)
	if g.end(slot, now) {
		t.Fatal("first of two polls reported the slot in")
	}
	if !g.end(slot, now) {
		t.Fatal("last poll did not report the slot in")
	}

	// The next slot is due within the lookahead: the linger batches them.
	g.expect(slot)
	g.expect(slot + int64(10*time.Millisecond))
	if g.end(slot, now) {
		t.Fatal("reported the slot in with the next one due within the lookahead")
	}
	g.drop(slot + int64(10*time.Millisecond)) // its device stopped
	g.expect(slot)
	if !g.end(slot, now) {
		t.Fatal("a dropped poll still held the slot back")
	}

	// Polls scheduled a period later do not count; one outstanding past
	// staleAfter (a silent slave) does not either.
	g.expect(slot + int64(time.Second))
	g.expect(slot - int64(2*time.Second))
	g.expect(slot)
	if !g.end(slot, now) {
		t.Fatal("a later period's poll or a stale one held the slot back")
	}
	// A poll outstanding past forgetAfter is forgotten.
	g.end(slot+int64(time.Second), now)
	if !g.end(slot, now.Add(2*time.Minute)) || len(g.due) != 0 {
		t.Fatalf("left %v", g.due)
	}

	var none *pollGate
	none.expect(slot)
	none.drop(slot)
	if none.end(slot, now) {
		t.Fatal("a nil gate reported a slot")
	}
}

// TestJournalRecyclesEncodedValues: with Recycle the journal hands each
// event's value array back once encoded (it is cleared for its next poll);
// what was committed is the values as they were. Without Recycle the
// sender's arrays are left alone.
func TestJournalRecyclesEncodedValues(t *testing.T) {
	for _, recycle := range []bool{false, true} {
		mem := persistence.OpenMemory(persistence.Options{})
		sys, pid := spawnJournal(t, mem, 0, 0)
		vals := protocols.MakeDatapoints(3)
		for i := range vals {
			vals[i] = protocols.Datapoint{Key: fmt.Sprintf("k%d", i), Value: protocols.Int(int64(i + 7))}
		}
		appendWait(t, sys, pid, &AppendEvents{Events: []protocols.Event{{Kind: protocols.EventTelemetry, Device: "d", Ts: 1, Values: vals}},
			Recycle: recycle})
		sys.Root.Stop(pid)
		if cleared := vals[0] == (protocols.Datapoint{}); cleared != recycle {
			t.Errorf("recycle %v: the sender's array was cleared: %v", recycle, cleared)
		}
		recs, err := mem.Read(0, 10, 1<<20)
		if err != nil || len(recs) != 1 {
			t.Fatalf("recycle %v: read %d records, %v", recycle, len(recs), err)
		}
		ev, err := protocols.DecodeEvent(recs[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Values) != 3 || ev.Values[2].Key != "k2" || ev.Values[2].Value != protocols.Int(9) {
			t.Errorf("recycle %v: committed %+v", recycle, ev.Values)
		}
	}
}
