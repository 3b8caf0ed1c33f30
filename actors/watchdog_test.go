package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestWatchdog: Alive is called while the core actors answer and no longer once one of them
// is gone.
func TestWatchdog(t *testing.T) {
	b := testpeer.StartMochi(t, testpeer.AllowAll())
	alive := make(chan struct{}, 1000)
	gw := startGateway(t, Options{
		Config:     testConfig(t, b.Addr(), &counterDevice{}),
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
		Journal:    persistence.OpenMemory(persistence.Options{}),
		Alive:      func() { alive <- struct{}{} },
		AliveEvery: 20 * time.Millisecond,
	})
	for range 3 {
		select {
		case <-alive:
		case <-time.After(10 * time.Second):
			t.Fatal("Alive not called")
		}
	}
	gw.sys.Root.StopFuture(gw.registry).Wait()
	deadline := time.After(10 * time.Second)
	for quiet := 0; quiet < 10; { // ten periods in a row without a call
		select {
		case <-alive:
			quiet = 0
		case <-time.After(20 * time.Millisecond):
			quiet++
		case <-deadline:
			t.Fatal("Alive still called with the registry gone")
		}
	}
}

// TestWatchdogAlone: the root actor reports alive after a tick only while
// every core actor answers; one that is gone stops the report.
func TestWatchdogAlone(t *testing.T) {
	sys := bareSystem(t)
	a, _ := spawnProbe(t, sys, "journal", nil)
	b, _ := spawnProbe(t, sys, "uplink", nil)
	alive := make(chan struct{}, 16)
	probed := make(chan struct{}, 16)
	wd := &watchdog{
		alive: func() { alive <- struct{}{} },
		core:  func() []*actor.PID { return []*actor.PID{a, nil, b} },
		goSafe: func(_ string, fn func()) {
			go func() {
				defer func() { probed <- struct{}{} }()
				fn()
			}()
		},
		log: zerolog.Nop(),
	}
	root := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &rootActor{watchdog: wd} }))
	tick := func() (reported bool) {
		t.Helper()
		sys.Root.Send(root, &watchdogTick{timeout: time.Second})
		select {
		case <-probed:
		case <-time.After(waitLimit):
			t.Fatal("watchdog probe did not finish")
		}
		select {
		case <-alive:
			return true
		default:
			return false
		}
	}
	if !tick() {
		t.Fatal("alive not reported with every core actor answering")
	}
	if err := sys.Root.StopFuture(b).Wait(); err != nil {
		t.Fatal(err)
	}
	if tick() {
		t.Fatal("alive reported with the uplink gone")
	}
}
