package sinktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
)

const timeout = 10 * time.Second

func data(device, key string, v int64, done func(error)) protocols.Push {
	return protocols.Push{Device: device, Reading: protocols.Reading{
		Telemetry: []protocols.Datapoint{{Key: key, Value: protocols.Int(v)}}}, Done: done}
}

func TestRecordsEverySinkCall(t *testing.T) {
	s := New()
	s.SetAttributes(map[string]json.RawMessage{"fw": json.RawMessage(`"1.0"`)})
	ctx := context.Background()
	var committed atomic.Int32
	go func() {
		s.Link(false, errors.New("refused"))
		s.Link(true, nil)
		_ = s.Push(ctx, protocols.Push{Device: "A"}) // an announcement
		_ = s.Push(ctx, data("A", "v", 1, func(error) { committed.Add(1) }))
		_ = s.Push(ctx, data("B", "v", 2, nil))
		s.Connect("C", "thermo")
		s.Disconnect("C")
		s.Malformed("topic", errors.New("bad json"))
		s.Unmatched()
		s.Dropped("queue", 3, errors.New("full"))
		s.Dropped("queue", 2, errors.New("full"))
	}()
	s.Wait(t, timeout, "every call", func() bool { return s.DroppedTotal() == 5 })

	got, err := s.RequestAttributes(ctx, "C", true, []string{"fw", "other"})
	if err != nil || len(got) != 1 || string(got["fw"]) != `"1.0"` {
		t.Errorf("RequestAttributes = %s, %v", got, err)
	}
	if n := len(s.Pushes()); n != 3 || s.Pushed() != 3 || len(s.DataPushes()) != 2 || s.PushedValues() != 2 {
		t.Errorf("pushes %d, pushed %d, data %d, values %d", n, s.Pushed(), len(s.DataPushes()), s.PushedValues())
	}
	if committed.Load() != 1 {
		t.Errorf("Done called %d times", committed.Load())
	}
	if v := s.Values("", "v"); fmt.Sprint(v) != "[1 2]" {
		t.Errorf("values %v", v)
	}
	if v, ok := s.Latest("B", "v"); !ok || v != protocols.Int(2) {
		t.Errorf("latest B/v = %v %v", v, ok)
	}
	if _, ok := s.Latest("B", "w"); ok {
		t.Error("latest of a key never pushed")
	}
	if c, d, a := s.Connects(), s.Disconnects(), s.AttrRequests(); fmt.Sprint(c, d, a) != "[C/thermo] [C] [C client=true [fw other]]" {
		t.Errorf("connects %q disconnects %q requests %q", c, d, a)
	}
	if m := s.MalformedReports(); len(m) != 1 || m[0].String() != "topic: bad json" || m[0].N != 1 {
		t.Errorf("malformed %v", m)
	}
	if d := s.DroppedReports(); len(d) != 2 || d[0] != (Report{"queue", 3, d[0].Err}) || d[1].String() != "queue: full" {
		t.Errorf("dropped %v", d)
	}
	if l := s.Links(); len(l) != 2 || l[0].Up || l[0].Err == nil || !l[1].Up || s.Ups() != 1 || s.UnmatchedCount() != 1 {
		t.Errorf("links %v, ups %d, unmatched %d", l, s.Ups(), s.UnmatchedCount())
	}
	// Accessors hand out copies.
	s.Pushes()[0].Device = "changed"
	if s.Pushes()[0].Device != "A" {
		t.Error("Pushes shares the Recorder's slice")
	}
}

func TestGateHoldsDataPushes(t *testing.T) {
	s := New()
	gate := make(chan struct{})
	s.SetGate(gate)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Push(ctx, protocols.Push{Device: "A"}); err != nil {
		t.Fatalf("an announcement waits at the gate: %v", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.Push(ctx, data("A", "v", 1, nil)) }()
	select {
	case err := <-errc:
		t.Fatalf("push went through a closed gate: %v", err)
	case <-time.After(20 * time.Millisecond): // proves a negative: nothing to wait for
	}
	close(gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	s.SetGate(make(chan struct{}))
	go func() { errc <- s.Push(ctx, data("A", "v", 2, nil)) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("push on a cancelled ctx: %v", err)
	}
	if s.Pushed() != 2 {
		t.Fatalf("pushed %d", s.Pushed())
	}
}

func TestHoldReleaseFailNextRefuse(t *testing.T) {
	s := New()
	ctx := context.Background()
	var done atomic.Int32
	count := func(error) { done.Add(1) }
	s.Hold()
	for i := range 3 {
		if err := s.Push(ctx, data("A", "v", int64(i), count)); err != nil {
			t.Fatal(err)
		}
	}
	if done.Load() != 0 {
		t.Fatalf("%d pushes committed in hold mode", done.Load())
	}
	s.Release()
	if done.Load() != 3 {
		t.Fatalf("Release committed %d of 3", done.Load())
	}
	_ = s.Push(ctx, data("A", "v", 4, count))
	if done.Load() != 4 {
		t.Fatal("Release did not end hold mode")
	}

	boom := errors.New("boom")
	s.FailNext(boom)
	if err := s.Push(ctx, data("A", "v", 5, count)); err != boom {
		t.Fatalf("FailNext: %v", err)
	}
	if err := s.Push(ctx, data("A", "v", 6, count)); err != nil {
		t.Fatalf("FailNext failed twice: %v", err)
	}
	s.Refuse("B")
	if err := s.Push(ctx, data("B", "v", 7, count)); !errors.Is(err, ErrRefused) {
		t.Fatalf("Refuse: %v", err)
	}
	if s.Pushed() != 5 || done.Load() != 5 {
		t.Fatalf("pushed %d, committed %d; failed pushes must be neither", s.Pushed(), done.Load())
	}
}

func TestCounter(t *testing.T) {
	s := NewCounter()
	ctx := context.Background()
	reached := s.WhenPushed(1000)
	var done atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				_ = s.Push(ctx, data("A", "v", int64(g*1000+i), func(error) { done.Add(1) }))
			}
		}()
	}
	select {
	case <-reached:
	case <-time.After(timeout):
		t.Fatalf("WhenPushed(1000) not closed after %d pushes", s.Pushed())
	}
	wg.Wait()
	if s.Pushed() != 1000 || s.PushedValues() != 1000 || done.Load() != 1000 || len(s.Pushes()) != 0 {
		t.Fatalf("pushed %d values %d done %d kept %d", s.Pushed(), s.PushedValues(), done.Load(), len(s.Pushes()))
	}
	select {
	case <-s.WhenPushed(10):
	default:
		t.Fatal("WhenPushed of a count already reached is not closed")
	}
	s.Link(true, nil)
	if s.Ups() != 1 {
		t.Fatal("a counter does not keep link events")
	}
	allocs := testing.AllocsPerRun(100, func() { _ = s.Push(ctx, protocols.Push{Device: "A"}) })
	if allocs != 0 {
		t.Errorf("a counter's Push allocates %v times", allocs)
	}
}

// Wait wakes on changes; many goroutines calling the Sink while others
// wait is the -race check.
func TestWaitUnderConcurrency(t *testing.T) {
	s := New()
	const n = 200
	cond := func() bool { return s.UnmatchedCount() >= n && s.Pushed() >= n }
	var wg sync.WaitGroup
	for range 4 { // waiters on Changed besides the test's Wait
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ch := s.Changed()
				if cond() {
					return
				}
				<-ch
			}
		}()
	}
	for range n {
		go s.Unmatched()
		go func() { _ = s.Push(context.Background(), data("A", "v", 1, nil)) }()
	}
	s.Wait(t, timeout, "every call", cond)
	wg.Wait()
}
