package automation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/actors/automation/handlers/webhook"
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// recorder is a handler that records its actions; fail makes the first
// attempts of an action fail.
type recorder struct {
	mu   sync.Mutex
	got  []handler.Action
	fail int
}

var rec = &recorder{}

func init() { handler.Register("test_record", func(handler.Env) handler.Handler { return rec }) }

func (r *recorder) Validate(map[string]any) []error { return nil }

func (r *recorder) Run(_ context.Context, a handler.Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	if a.Attempt <= r.fail {
		return errors.New("not yet")
	}
	return nil
}

func (r *recorder) actions() []handler.Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]handler.Action(nil), r.got...)
}

// of is what actions() holds for one task: an engine of an earlier test,
// still stopping, may record an action after reset.
func (r *recorder) of(task string) []handler.Action {
	var out []handler.Action
	for _, a := range r.actions() {
		if a.Task == task {
			out = append(out, a)
		}
	}
	return out
}

func (r *recorder) reset(fail int) {
	r.mu.Lock()
	r.got, r.fail = nil, fail
	r.mu.Unlock()
}

// writes records device writes.
type writes struct {
	mu  sync.Mutex
	got []string
}

func (w *writes) write(_ context.Context, device string, values map[string]json.RawMessage) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range values {
		w.got = append(w.got, device+"."+k+"="+string(v))
	}
	return nil, nil
}

func (w *writes) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

type rig struct {
	sys   *actor.ActorSystem
	bus   *bus.Bus
	clock *FakeClock
	w     *writes
	store persistence.Store
	eng   *Engine
}

func start(t *testing.T, yaml string, clock *FakeClock, store persistence.Store) *rig {
	t.Helper()
	cfg, ps := Parse("automation.yaml", []byte(yaml))
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	sys := quietSystem()
	r := &rig{sys: sys, bus: bus.New(sys), clock: clock, w: &writes{}, store: store}
	if r.store == nil {
		r.store = persistence.NewMemoryStore()
	}
	var clk Clock = RealClock{}
	if clock != nil {
		clk = clock
	}
	eng, err := Start(cfg, Deps{System: sys, Bus: r.bus, Clock: clk, Store: r.store, Log: zerolog.Nop(),
		Env: handler.Env{WriteDevice: r.w.write}})
	if err != nil {
		t.Fatal(err)
	}
	r.eng = eng
	t.Cleanup(func() { _ = eng.Stop() })
	return r
}

func (r *rig) publish(device, key string, v protocols.Value) {
	r.bus.PublishValues(device, "c", false, time.Now().UnixMilli(), []protocols.Datapoint{{Key: key, Value: v}})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, what, testpeer.True(cond))
}

func TestForwardWritesTransformedValue(t *testing.T) {
	r := start(t, `
forwards:
  - {name: f, source: tank.level, target: plc.setpoint, expression: "value * 10"}
`, nil, nil)
	r.publish("tank", "other", protocols.Int(1))
	r.publish("tank", "level", protocols.Int(7))
	waitFor(t, "the forward's write", func() bool { return len(r.w.list()) == 1 })
	if got := r.w.list()[0]; got != "plc.setpoint=70" {
		t.Fatalf("wrote %s", got)
	}
	waitFor(t, "the forward's status", func() bool { return r.eng.Status()[0].Runs == 1 })
}

// "temperature > 80 for 30 s" with the other key's last value in the
// condition, on an injected clock: nothing before 30 s, one action after,
// none again until the condition was false in between.
func TestTaskForDuration(t *testing.T) {
	rec.reset(0)
	clock := NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := start(t, `
tasks:
  - name: hot
    trigger: {event: device/boiler/temperature}
    vars: {pump: pump.running}
    condition: value > 80 and pump
    for: 30s
    actions:
      - handler: test_record
        params: {device: "{{device}}", t: "{{value}}", note: "boiler at {{value}} C"}
`, clock, nil)
	r.publish("pump", "running", protocols.Bool(true))
	r.publish("boiler", "temperature", protocols.Int(85))
	waitFor(t, "the for-duration timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(29 * time.Second)
	r.publish("boiler", "temperature", protocols.Int(86))
	waitFor(t, "the second value considered", func() bool { return r.eng.Status()[0].Checks == 2 })
	if len(rec.actions()) != 0 {
		t.Fatal("fired before 30 s")
	}
	clock.Advance(time.Second)
	waitFor(t, "the action", func() bool { return len(rec.actions()) == 1 })
	a := rec.actions()[0]
	if a.Params["device"] != "boiler" || a.Params["t"] != int64(86) || a.Params["note"] != "boiler at 86 C" || a.Task != "hot" {
		t.Fatalf("action %+v", a)
	}
	// Still hot: no second alarm. Cooled, then hot again: a new episode.
	r.publish("boiler", "temperature", protocols.Int(90))
	r.publish("boiler", "temperature", protocols.Int(70))
	r.publish("boiler", "temperature", protocols.Int(95))
	waitFor(t, "the three values considered", func() bool { return r.eng.Status()[0].Checks == 5 })
	// A check is counted before the new episode arms its timer.
	waitFor(t, "the new episode's timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(30 * time.Second)
	waitFor(t, "the second action", func() bool { return len(rec.actions()) == 2 })
	if rec.actions()[1].Key == a.Key {
		t.Fatal("two firings share an idempotency key")
	}
}

// A cron schedule with seconds and a time zone fires on the injected clock.
func TestCronSchedule(t *testing.T) {
	rec.reset(0)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	clock := NewFakeClock(time.Date(2026, 6, 1, 7, 59, 50, 0, berlin))
	r := start(t, `
tasks:
  - name: morning
    trigger: {cron: "0 0 8 * * *", timezone: Europe/Berlin}
    actions: [{handler: test_record, params: {at: "{{ts}}"}}]
`, clock, nil)
	waitFor(t, "the schedule armed", func() bool { return clock.Pending() == 1 })
	clock.Advance(9 * time.Second)
	if len(rec.actions()) != 0 {
		t.Fatal("fired early")
	}
	clock.Advance(time.Second)
	waitFor(t, "the 08:00 run", func() bool { return len(rec.actions()) == 1 })
	if at := rec.actions()[0].Params["at"]; at != time.Date(2026, 6, 1, 8, 0, 0, 0, berlin).UnixMilli() {
		t.Fatalf("ran for %v", at)
	}
	waitFor(t, "the next day armed", func() bool { return clock.Pending() == 1 })
	clock.Advance(24 * time.Hour)
	waitFor(t, "the next day's run", func() bool { return len(rec.actions()) == 2 })
	_ = r
}

// Missed runs while the gateway was down: run-once runs one, skip none.
func TestMissedRunPolicy(t *testing.T) {
	for _, policy := range []string{MissedRunOnce, MissedSkip} {
		t.Run(policy, func(t *testing.T) {
			rec.reset(0)
			store := persistence.NewMemoryStore()
			now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			_ = store.Put([]byte(statePrefix+"tick"), []byte(now.Add(-5*time.Hour).Format(time.RFC3339Nano)))
			clock := NewFakeClock(now)
			start(t, fmt.Sprintf(`
tasks:
  - name: tick
    trigger: {every: 1h, missed: %s}
    actions: [{handler: test_record}]
`, policy), clock, store)
			waitFor(t, "the schedule armed", func() bool { return clock.Pending() == 1 })
			want := map[string]int{MissedRunOnce: 1, MissedSkip: 0}[policy]
			if policy == MissedRunOnce {
				waitFor(t, "the catch-up run", func() bool { return len(rec.actions()) == 1 })
			}
			clock.Advance(30 * time.Minute)
			if n := len(rec.actions()); n != want {
				t.Fatalf("%d runs, want %d", n, want)
			}
		})
	}
}

// A webhook whose server fails twice: the action is retried with backoff,
// delivered once, and every attempt carries the same idempotency key.
func TestWebhookRetriesWithStableKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, r.Header.Get(webhook.KeyHeader))
		if len(keys) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		bodies = append(bodies, b.String())
	}))
	defer srv.Close()
	r := start(t, `
queue: {retryMin: 10ms, retryMax: 50ms}
tasks:
  - name: alarm
    trigger: {event: device/+/temperature}
    condition: value > 80
    actions:
      - handler: webhook
        params: {url: "`+srv.URL+`/alarm", body: {device: "{{device}}", t: "{{value}}"}}
`, nil, nil)
	r.publish("boiler", "temperature", protocols.Int(99))
	waitFor(t, "the delivery", func() bool { return r.eng.Queue().Done.Load() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("keys %q", keys)
	}
	if len(bodies) != 1 || bodies[0] != `{"device":"boiler","t":99}` {
		t.Fatalf("bodies %q", bodies)
	}
	if q := r.eng.Queue(); q.Retries.Load() != 2 || q.Depth.Load() != 0 {
		t.Fatalf("retries %d depth %d", q.Retries.Load(), q.Depth.Load())
	}
}

// An action still failing when the engine stops is in the Badger store and
// runs after the next start, with its key.
func TestQueueSurvivesRestart(t *testing.T) {
	rec.reset(1000)
	dir := t.TempDir()
	open := func() persistence.Store {
		s, err := persistence.OpenBadgerStore(dir, persistence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	yaml := `
queue: {retryMin: 10ms, retryMax: 20ms}
tasks:
  - name: t
    trigger: {event: device/d/k}
    actions: [{handler: test_record, params: {v: "{{value}}"}}]
`
	store := open()
	r := start(t, yaml, nil, store)
	r.publish("d", "k", protocols.Int(5))
	waitFor(t, "a failed attempt", func() bool { return r.eng.Queue().Retries.Load() >= 1 })
	if err := r.eng.Stop(); err != nil {
		t.Fatal(err)
	}
	_ = store.Close()
	first := rec.actions()[0].Key
	rec.reset(0)
	store = open()
	defer store.Close()
	r = start(t, yaml, nil, store)
	waitFor(t, "the action after the restart", func() bool { return r.eng.Queue().Done.Load() == 1 })
	if a := rec.actions()[0]; a.Key != first || a.Params["v"] != 5.0 {
		t.Fatalf("after restart: %+v (key before %s)", a, first)
	}
}

// Reload swaps the tasks without losing the bus or the queue.
func TestReload(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: a, trigger: {event: device/d/a}, actions: [{handler: test_record, params: {x: a}}]}
`, nil, nil)
	cfg, ps := Parse("automation.yaml", []byte(`
tasks:
  - {name: b, trigger: {event: device/d/b}, actions: [{handler: test_record, params: {x: b}}]}
`))
	if ps.Err() != nil {
		t.Fatal(ps.Err())
	}
	if err := r.eng.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	r.publish("d", "a", protocols.Int(1))
	r.publish("d", "b", protocols.Int(1))
	waitFor(t, "task b", func() bool { return len(rec.actions()) == 1 })
	if x := rec.actions()[0].Params["x"]; x != "b" {
		t.Fatalf("ran %v", x)
	}
	if st := r.eng.Status(); len(st) != 1 || st[0].Name != "b" {
		t.Fatalf("status %+v", st)
	}
}

// A wildcard trigger keeps one episode per source: two devices over the
// limit are two alarms with two keys; a device staying over it is none.
func TestWildcardEpisodesPerSource(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: w, trigger: {event: device/+/t}, condition: value > 1, actions: [{handler: test_record, params: {d: "{{device}}"}}]}
`, nil, nil)
	r.publish("a", "t", protocols.Int(5))
	r.publish("b", "t", protocols.Int(5))
	r.publish("a", "t", protocols.Int(6))
	waitFor(t, "three checks", func() bool { return r.eng.Status()[0].Checks == 3 })
	waitFor(t, "two actions", func() bool { return len(rec.actions()) == 2 })
	got := rec.actions()
	if got[0].Key == got[1].Key || got[0].Params["d"] == got[1].Params["d"] {
		t.Fatalf("actions %+v", got)
	}
}

// Two values of one key in the same millisecond fire two actions with
// different idempotency keys: the receiver must not drop the second.
func TestSameMillisecondValuesGetTheirOwnKeys(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: each, trigger: {event: device/a/t}, actions: [{handler: test_record, params: {v: "{{value}}"}}]}
`, nil, nil)
	for _, v := range []int64{1, 2} {
		r.bus.PublishValues("a", "c", false, 1000, []protocols.Datapoint{{Key: "t", Value: protocols.Int(v)}})
	}
	waitFor(t, "two actions", func() bool { return len(rec.actions()) == 2 })
	if got := rec.actions(); got[0].Key == got[1].Key {
		t.Fatalf("both values' actions have the key %s", got[0].Key)
	}
}

// An event task without a condition fires on every event, not once per
// source: there is nothing that could turn false and re-arm it.
func TestEventTaskWithoutConditionFiresEveryTime(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: each, trigger: {event: devevent/+/connected}, actions: [{handler: test_record, params: {d: "{{device}}"}}]}
`, nil, nil)
	for range 3 {
		r.bus.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassDeviceEvent, Name: "a", Event: bus.Connected, Ts: 1})
	}
	waitFor(t, "three actions", func() bool { return len(rec.actions()) == 3 })
}

// A condition error shows in the status until the condition evaluates
// again.
func TestTaskErrorClearsWhenConditionEvaluates(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: e, trigger: {event: device/+/t}, condition: value > 1, actions: [{handler: test_record}]}
`, nil, nil)
	r.publish("a", "t", protocols.String("text"))
	waitFor(t, "the error in the status", func() bool { return r.eng.Status()[0].LastError != "" })
	r.publish("a", "t", protocols.Int(0))
	waitFor(t, "the error cleared", func() bool { return r.eng.Status()[0].LastError == "" })
}

// quietSystem is an actor system that does not log to stdout.
func quietSystem() *actor.ActorSystem {
	return actorsys.New(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
}
