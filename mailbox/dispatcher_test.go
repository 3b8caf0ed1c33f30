package mailbox

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func TestPooledDispatcherReusesAndNeverBlocks(t *testing.T) {
	d := NewPooledDispatcher(300, time.Minute)
	// A blocked task must not stop others from running.
	block := make(chan struct{})
	started := make(chan struct{})
	d.Schedule(func() { close(started); <-block })
	<-started
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		d.Schedule(wg.Done)
		wg.Wait() // sequential: each task finishes before the next is scheduled
	}
	close(block)
	// One worker is blocked, the sequential tasks share warm workers.
	if w := d.Workers(); w > 3 {
		t.Fatalf("%d workers for 1 blocked + 10 sequential tasks; idle workers are not reused", w)
	}
}

func TestPooledDispatcherIdleWorkersExit(t *testing.T) {
	d := NewPooledDispatcher(300, 5*time.Millisecond)
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	<-done
	testpeer.Eventually(t, testpeer.MinTimeout, "the idle worker to exit", func() error {
		if n := d.Workers(); n != 0 {
			return fmt.Errorf("%d workers", n)
		}
		return nil
	})
}

// TestPooledDispatcherShrinksUnderSteadyLoad: after a burst has started many
// workers, a steady trickle of work keeps only the few it needs; the others
// reach their idle timeout. Handing work round-robin to every idle worker
// kept all of them alive for as long as the trickle lasted.
func TestPooledDispatcherShrinksUnderSteadyLoad(t *testing.T) {
	const burst = 50
	d := NewPooledDispatcher(300, 100*time.Millisecond)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(burst)
	for range burst {
		d.Schedule(func() { started.Done(); <-release })
	}
	started.Wait()
	close(release)
	// A task every millisecond: each of 50 round-robin workers would get one
	// every 50 ms, well inside its 100 ms idle timeout.
	// The ticker paces the load; it does not wait for anything.
	pace := time.NewTicker(time.Millisecond)
	defer pace.Stop()
	testpeer.Waiter{Timeout: testpeer.MinTimeout, Poll: time.Nanosecond}.Until(t, "the pool to shrink", func() error {
		if n := d.Workers(); n > 3 {
			done := make(chan struct{})
			d.Schedule(func() { close(done) })
			<-done
			<-pace.C
			return fmt.Errorf("%d workers still alive under a load one worker can carry", n)
		}
		return nil
	})
}
