package automation

import (
	"math"
	"testing"
	"time"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

// A for-duration that held for 4 of 5 minutes when the engine stopped fires
// 1 minute after the next start over the same Badger directory; the last
// values of vars and the last run come back too, and an edited condition
// does not inherit the old state.
func TestTaskStateSurvivesRestart(t *testing.T) {
	rec.reset(0)
	dir := t.TempDir()
	open := func() persistence.Store {
		s, err := persistence.OpenBadgerStore(dir, persistence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	task := func(forDur string) string {
		return `
tasks:
  - name: hot
    trigger: {event: device/boiler/temperature}
    vars: {pump: pump.running}
    condition: value > 80 and pump
    for: ` + forDur + `
    actions: [{handler: test_record, params: {t: "{{value}}"}}]
`
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := NewFakeClock(t0)
	restart := func(r *rig, store persistence.Store, yaml string) (*rig, persistence.Store) {
		t.Helper()
		if err := r.eng.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		store = open()
		t.Cleanup(func() { _ = store.Close() })
		return start(t, yaml, clock, store), store
	}

	store := open()
	r := start(t, task("5m"), clock, store)
	r.publish("pump", "running", protocols.Bool(true))
	r.publish("boiler", "temperature", protocols.Int(85))
	waitFor(t, "the for-duration timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(4 * time.Minute)

	r, store = restart(r, store, task("5m"))
	waitFor(t, "the restored for-duration timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(59 * time.Second)
	if n := len(rec.of("hot")); n != 0 {
		t.Fatalf("%d actions before the 5 minutes were up: %+v", n, rec.actions())
	}
	clock.Advance(time.Second)
	waitFor(t, "the action 1 minute after the restart", func() bool { return len(rec.of("hot")) == 1 })
	if v := rec.of("hot")[0].Params["t"]; v != int64(85) {
		t.Fatalf("action params %v", rec.of("hot")[0].Params)
	}
	firedAt := t0.Add(5 * time.Minute)

	// Fired before the restart: still the same episode, no second alarm;
	// the pump's value and the last run are known without a new poll.
	r, store = restart(r, store, task("5m"))
	waitFor(t, "the last run restored", func() bool { return r.eng.Status()[0].LastRun.Equal(firedAt) })
	r.publish("boiler", "temperature", protocols.Int(86))
	waitFor(t, "the value considered", func() bool { return r.eng.Status()[0].Checks == 1 })
	if clock.Pending() != 0 || len(rec.of("hot")) != 1 {
		t.Fatalf("after the second restart: %d timers, actions %+v", clock.Pending(), rec.actions())
	}
	r.publish("boiler", "temperature", protocols.Int(70))
	r.publish("boiler", "temperature", protocols.Int(90))
	waitFor(t, "a new episode with the restored pump value", func() bool { return clock.Pending() == 1 })
	if st := r.eng.Status()[0]; st.LastError != "" {
		t.Fatalf("status %+v", st)
	}

	// Another for-duration: another definition, so the episode is dropped.
	r, store = restart(r, store, task("10m"))
	waitFor(t, "the outdated episode deleted", func() bool {
		_, err := store.Get(episodeKey("hot", "boiler\x00temperature\x00value"))
		return err == persistence.ErrNotFound
	})
	if clock.Pending() != 0 {
		t.Fatal("an edited task inherited the old for-duration timer")
	}

	// A task removed from the file loses its state.
	_, store = restart(r, store, `
tasks:
  - {name: other, trigger: {event: device/x/y}, actions: [{handler: test_record}]}
`)
	n := 0
	_ = store.Scan([]byte(stateKey("hot")), func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d state records of a removed task", n)
	}
}

// Values survive the store's encoding, NaN and infinities included.
func TestSavedValueRoundTrip(t *testing.T) {
	for _, v := range []protocols.Value{protocols.Int(-3), protocols.Uint(1 << 63), protocols.Float(2.5),
		protocols.Bool(true), protocols.String("x"), protocols.Float(math.Inf(-1)), protocols.Float(math.NaN())} {
		if got := saveValue(v).value(); got != v && !(got.Equal(v) && !math.IsInf(v.F, 0)) {
			t.Fatalf("%v came back as %v", v, got)
		}
	}
}
