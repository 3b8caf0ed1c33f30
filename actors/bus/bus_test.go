package bus

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Pattern
	}{
		{"device/boiler/temperature", Pattern{ClassDevice, "boiler", "temperature"}},
		{"device/+/temperature", Pattern{ClassDevice, "", "temperature"}},
		{"device/boiler/+", Pattern{ClassDevice, "boiler", ""}},
		{"device/boiler/#", Pattern{ClassDevice, "boiler", ""}},
		{"device/#", Pattern{ClassDevice, "", ""}},
		{"device/hall/2/temperature", Pattern{ClassDevice, "hall/2", "temperature"}},
		{"devevent/+/connected", Pattern{ClassDeviceEvent, "", Connected}},
		{"connector/#", Pattern{ClassConnector, "", ""}},
		{"#", Pattern{}},
	} {
		got, err := ParsePattern(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePattern(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "temperature", "device/boiler", "device/boiler/", "device/#/x", "devices/a/b", "#/a"} {
		if _, err := ParsePattern(bad); !errors.Is(err, ErrBadPattern) {
			t.Errorf("ParsePattern(%q) err = %v, want ErrBadPattern", bad, err)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	p, _ := ParsePattern("device/+/temperature")
	if !p.Match(ClassDevice, "a", "temperature") || p.Match(ClassDevice, "a", "humidity") || p.Match(ClassDeviceEvent, "a", "temperature") {
		t.Fatal("device/+/temperature matches wrongly")
	}
}

// collector is a subscriber actor that records what it gets; block, when
// set, holds it inside Receive to make it slow.
type collector struct {
	mu    sync.Mutex
	got   []any
	block chan struct{}
}

func (c *collector) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Values, *Lifecycle:
		if c.block != nil {
			<-c.block
		}
		c.mu.Lock()
		c.got = append(c.got, m)
		c.mu.Unlock()
	}
}

func (c *collector) messages() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]any(nil), c.got...)
}

func spawn(t *testing.T, sys *actor.ActorSystem, c *collector, capacity int, drops *DropCounter) *actor.PID {
	t.Helper()
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return c }, actor.WithMailbox(SubscriberMailbox(capacity, drops))))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return pid
}

func dps(keys ...string) []protocols.Datapoint {
	out := make([]protocols.Datapoint, len(keys))
	for i, k := range keys {
		out[i] = protocols.Datapoint{Key: k, Value: protocols.Int(int64(i))}
	}
	return out
}

func TestRoutesByTopic(t *testing.T) {
	sys := actorsys.New()
	b := New(sys)
	all, temp, life := &collector{}, &collector{}, &collector{}
	b.Subscribe(spawn(t, sys, all, 16, nil), nil, Pattern{Class: ClassDevice})
	b.Subscribe(spawn(t, sys, temp, 16, nil), nil, mustParse(t, "device/+/temperature"))
	b.Subscribe(spawn(t, sys, life, 16, nil), nil, mustParse(t, "devevent/boiler/#"), mustParse(t, "connector/+/restarted"))

	b.PublishValues("boiler", "modbus", false, 1, dps("temperature", "pressure"))
	b.PublishValues("pump", "modbus", true, 2, dps("speed"))
	b.PublishLifecycle(&Lifecycle{Class: ClassDeviceEvent, Name: "boiler", Event: Connected})
	b.PublishLifecycle(&Lifecycle{Class: ClassDeviceEvent, Name: "pump", Event: Connected})
	b.PublishLifecycle(&Lifecycle{Class: ClassConnector, Name: "modbus", Event: Restarted})

	testpeer.Eventually(t, 5*time.Second, "deliveries", func() error {
		if len(all.messages()) != 2 || len(temp.messages()) != 1 || len(life.messages()) != 2 {
			return errors.New("not yet")
		}
		return nil
	})
	tv := temp.messages()[0].(*Values)
	if tv.Device != "boiler" || len(tv.Values) != 1 || tv.Values[0].Key != "temperature" {
		t.Fatalf("temperature subscriber got %+v", tv)
	}
	if av := all.messages()[0].(*Values); len(av.Values) != 2 {
		t.Fatalf("device/# subscriber got %+v", av)
	}
	if l := life.messages(); l[0].(*Lifecycle).Name != "boiler" || l[1].(*Lifecycle).Event != Restarted {
		t.Fatalf("lifecycle subscriber got %+v %+v", l[0], l[1])
	}
}

// A subscriber that does not keep up loses messages, counted, and the
// publisher never waits for it.
func TestSlowSubscriberDropsAndNeverBlocks(t *testing.T) {
	sys := actorsys.New()
	b := New(sys)
	slow := &collector{block: make(chan struct{})}
	drops := new(DropCounter)
	sub := b.Subscribe(spawn(t, sys, slow, 4, drops), drops, Pattern{})
	defer close(slow.block)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			b.PublishValues("d", "c", false, int64(i), dps("k"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to a stuck subscriber blocked the publisher")
	}
	// At most capacity queued plus one being handled; the rest dropped.
	if sub.Delivered() != 1000 || sub.Dropped() < 1000-6 || b.Dropped() != sub.Dropped() {
		t.Fatalf("delivered %d dropped %d (bus %d)", sub.Delivered(), sub.Dropped(), b.Dropped())
	}
}

func TestCancelStopsDelivery(t *testing.T) {
	sys := actorsys.New()
	b := New(sys)
	c := &collector{}
	sub := b.Subscribe(spawn(t, sys, c, 16, nil), nil, Pattern{})
	sub.Cancel()
	if b.Active() {
		t.Fatal("bus active after its only subscription was cancelled")
	}
	b.PublishValues("d", "c", false, 1, dps("k"))
	if sub.Delivered() != 0 {
		t.Fatal("cancelled subscription got a message")
	}
}

// Nobody subscribes: publishing allocates nothing (the device actors'
// hot path only pays an atomic load).
func TestIdleBusCostsNothing(t *testing.T) {
	b := New(actorsys.New())
	vals := dps("a", "b")
	if n := testing.AllocsPerRun(100, func() { b.PublishValues("d", "c", false, 1, vals) }); n != 0 {
		t.Fatalf("idle PublishValues allocates %v times", n)
	}
	var nilBus *Bus
	if nilBus.Active() {
		t.Fatal("nil bus active")
	}
}

func mustParse(t *testing.T, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func BenchmarkPublishIdle(b *testing.B) {
	bus := New(actorsys.New())
	vals := dps("a", "b", "c")
	for b.Loop() {
		bus.PublishValues("d", "c", false, 1, vals)
	}
}

// FuzzParsePattern: a parsed pattern prints as text that parses back to it.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"device/a/b", "device/+/t", "device/a/#", "devevent/x/connected", "connector/#", "#", "device/a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		q, err := ParsePattern(p.String())
		if err != nil || q != p {
			t.Fatalf("%q parsed as %+v prints %q, which parses as %+v, %v", s, p, p.String(), q, err)
		}
	})
}
