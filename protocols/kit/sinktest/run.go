package sinktest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// Runner is a push connector: it runs until its context ends.
type Runner interface {
	Run(ctx context.Context, sink protocols.Sink) error
}

// Running is a connector started by Run.
type Running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	stop   sync.Once
}

// Run starts c.Run(ctx, sink) and stops it when the test ends: the test
// fails if Run returns an error or does not return within
// testpeer.MinTimeout of the cancel (a connector that ignores its context
// would leak goroutines into the next test).
func Run(t testing.TB, c Runner, sink protocols.Sink) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = c.Run(ctx, sink)
		close(r.done)
	}()
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// Stop cancels Run and returns its error; later calls return the same.
func (r *Running) Stop() error {
	r.stop.Do(r.cancel)
	select {
	case <-r.done:
		return r.err
	case <-time.After(testpeer.MinTimeout):
		return fmt.Errorf("did not return within %v of its cancel", testpeer.MinTimeout)
	}
}

// Ended is closed once Run has returned by itself or after Stop; Err then
// holds its result.
func (r *Running) Ended() <-chan struct{} { return r.done }

// Err is Run's result, valid once Ended is closed.
func (r *Running) Err() error {
	<-r.done
	return r.err
}
