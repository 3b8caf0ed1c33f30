// Package sinktest is the runtime's side of a push connector for tests: a
// Recorder is a protocols.Sink that keeps what a Source hands it, wakes
// waiters on every change, and has the knobs a test needs to play the
// runtime — back-pressure (SetGate), uncommitted data (Hold, Release), a
// failing or refused Push (FailNext, Refuse) and attribute answers
// (SetAttributes). NewCounter makes one for benchmarks that only counts
// pushes.
//
// Tests wait for events with Wait or Changed, never with a sleep:
//
//	s := sinktest.New()
//	go c.Run(ctx, s)
//	s.Wait(t, 10*time.Second, "link up", func() bool { return s.Ups() == 1 })
//
// Every method is safe for concurrent use; accessors return copies.
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
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// LinkEvent is one Sink.Link call.
type LinkEvent struct {
	Up  bool
	Err error
}

// Report is one Sink.Malformed (N is 1) or Sink.Dropped call.
type Report struct {
	Where string
	N     int
	Err   error
}

// String is "where: err", as the runtime logs it.
func (r Report) String() string {
	if r.Err == nil {
		return r.Where
	}
	return r.Where + ": " + r.Err.Error()
}

// ErrRefused is what Push returns for the device named by Refuse.
var ErrRefused = errors.New("sinktest: device refused (no device actor)")

// Recorder is a protocols.Sink for tests. The zero value is not usable;
// make one with New or NewCounter.
type Recorder struct {
	count bool // NewCounter: pushes are counted, not kept

	pushed, values atomic.Int64
	watched        atomic.Bool // someone waits: a Changed channel is out, or a WhenPushed

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on a change while watched
	whens       []when
	pushes      []protocols.Push
	connects    []string
	disconnects []string
	attrReqs    []string
	malformed   []Report
	refused     []Report
	drops       []Report
	unmatched   int
	links       []LinkEvent

	gate     <-chan struct{}
	hold     bool
	held     []func(error)
	failNext error
	refuse   string
	attrs    map[string]json.RawMessage
}

type when struct {
	n  int64
	ch chan struct{}
}

var _ protocols.Sink = (*Recorder)(nil)

// New returns a Recorder that keeps every call and commits every push at
// once (calls its Done with nil).
func New() *Recorder { return &Recorder{changed: make(chan struct{})} }

// NewCounter returns a Recorder for benchmarks: Push only counts (Pushed,
// PushedValues) and calls Done at once, without locking or allocating;
// the knobs do not apply to it. The other Sink calls are kept as by New.
func NewCounter() *Recorder {
	r := New()
	r.count = true
	return r
}

// hasData tells a push that carries values from an announcement.
func hasData(p protocols.Push) bool {
	return len(p.Reading.Telemetry)+len(p.Reading.Attributes) > 0
}

// Push implements protocols.Sink: it waits at the gate (pushes with
// values only), fails when FailNext or Refuse say so, and otherwise keeps
// p and calls its Done, or holds Done back in hold mode.
func (s *Recorder) Push(ctx context.Context, p protocols.Push) error {
	if s.count {
		s.pushed.Add(1)
		s.values.Add(int64(len(p.Reading.Telemetry) + len(p.Reading.Attributes)))
		if p.Done != nil {
			p.Done(nil)
		}
		if s.watched.Load() {
			s.mu.Lock()
			s.wakeLocked()
			s.mu.Unlock()
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil && hasData(p) {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	done, err := s.acceptLocked(p)
	s.wakeLocked()
	s.mu.Unlock()
	if done != nil {
		done(nil) // outside the lock: Done may call back into the sink
	}
	return err
}

// acceptLocked keeps p unless a knob fails it, and returns the Done to
// call now (nil in hold mode).
func (s *Recorder) acceptLocked(p protocols.Push) (func(error), error) {
	if p.Device != "" && p.Device == s.refuse {
		return nil, fmt.Errorf("%w: %q", ErrRefused, p.Device)
	}
	if err := s.failNext; err != nil {
		s.failNext = nil
		return nil, err
	}
	s.pushes = append(s.pushes, p)
	s.pushed.Add(1)
	s.values.Add(int64(len(p.Reading.Telemetry) + len(p.Reading.Attributes)))
	if s.hold && p.Done != nil {
		s.held = append(s.held, p.Done)
		return nil, nil
	}
	return p.Done, nil
}

// Connect implements protocols.Sink; Connects lists the calls.
func (s *Recorder) Connect(device, profile string) {
	s.record(func() { s.connects = append(s.connects, device+"/"+profile) })
}

// Disconnect implements protocols.Sink; Disconnects lists the calls.
func (s *Recorder) Disconnect(device string) {
	s.record(func() { s.disconnects = append(s.disconnects, device) })
}

// RequestAttributes implements protocols.Sink: it answers the keys that
// SetAttributes has values for. AttrRequests lists the calls.
func (s *Recorder) RequestAttributes(_ context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	s.record(func() {
		s.attrReqs = append(s.attrReqs, fmt.Sprintf("%s client=%v %v", device, client, keys))
		for _, k := range keys {
			if v, ok := s.attrs[k]; ok {
				out[k] = v
			}
		}
	})
	return out, nil
}

// Refused implements protocols.Sink; RefusedReports lists the calls.
func (s *Recorder) Refused(where string, err error) {
	s.record(func() { s.refused = append(s.refused, Report{Where: where, N: 1, Err: err}) })
}

// Malformed implements protocols.Sink; MalformedReports lists the calls.
func (s *Recorder) Malformed(where string, err error) {
	s.record(func() { s.malformed = append(s.malformed, Report{Where: where, N: 1, Err: err}) })
}

// Unmatched implements protocols.Sink; UnmatchedCount counts the calls.
func (s *Recorder) Unmatched() { s.record(func() { s.unmatched++ }) }

// Dropped implements protocols.Sink; DroppedReports lists the calls.
func (s *Recorder) Dropped(where string, n int, err error) {
	s.record(func() { s.drops = append(s.drops, Report{Where: where, N: n, Err: err}) })
}

// Link implements protocols.Sink; Links lists the calls.
func (s *Recorder) Link(up bool, err error) {
	s.record(func() { s.links = append(s.links, LinkEvent{Up: up, Err: err}) })
}

func (s *Recorder) record(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	s.wakeLocked()
}

// wakeLocked wakes whoever waits for a change or a push count.
func (s *Recorder) wakeLocked() {
	if !s.watched.Load() {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
	n, kept := s.pushed.Load(), s.whens[:0]
	for _, w := range s.whens {
		if n >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.whens[len(kept):])
	s.whens = kept
	s.watched.Store(len(kept) > 0)
}

// Knobs.

// SetGate makes every Push that carries values wait until gate is closed
// (or its ctx ends): the runtime's back-pressure. Announcements (pushes
// without values) pass. nil removes the gate.
func (s *Recorder) SetGate(gate <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

// Hold keeps the Done callbacks of later pushes instead of calling them:
// nothing is committed until Release.
func (s *Recorder) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = true
}

// Release ends hold mode and commits every push held so far.
func (s *Recorder) Release() { s.ReleaseWith(nil) }

// ReleaseWith ends hold mode and finishes every push held so far with err:
// non-nil plays a journal that failed to commit them.
func (s *Recorder) ReleaseWith(err error) {
	s.mu.Lock()
	held := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	for _, done := range held {
		done(err)
	}
}

// FailNext makes the next Push that reaches the sink fail with err, as a
// runtime that could not take the data (ctx still live).
func (s *Recorder) FailNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = err
}

// Refuse makes every Push for device fail with ErrRefused, as for a device
// the runtime has no actor for. "" refuses none.
func (s *Recorder) Refuse(device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = device
}

// SetAttributes sets the values RequestAttributes answers with.
func (s *Recorder) SetAttributes(attrs map[string]json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs = make(map[string]json.RawMessage, len(attrs))
	for k, v := range attrs {
		s.attrs[k] = v
	}
}

// Accessors.

// Pushes are the accepted pushes, oldest first (none for a counter).
func (s *Recorder) Pushes() []protocols.Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocols.Push(nil), s.pushes...)
}

// DataPushes are the accepted pushes that carry values (not the start-up
// announcements of a source).
func (s *Recorder) DataPushes() []protocols.Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocols.Push
	for _, p := range s.pushes {
		if hasData(p) {
			out = append(out, p)
		}
	}
	return out
}

// Values are the values pushed under key, telemetry or attribute, oldest
// first; for device, or for every device when device is "".
func (s *Recorder) Values(device, key string) []protocols.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocols.Value
	for _, p := range s.pushes {
		if device != "" && p.Device != device {
			continue
		}
		for _, dps := range [2][]protocols.Datapoint{p.Reading.Telemetry, p.Reading.Attributes} {
			for _, dp := range dps {
				if dp.Key == key {
					out = append(out, dp.Value)
				}
			}
		}
	}
	return out
}

// Latest is the newest value pushed for device under key.
func (s *Recorder) Latest(device, key string) (protocols.Value, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.pushes) - 1; i >= 0; i-- {
		p := s.pushes[i]
		if p.Device != device {
			continue
		}
		for _, dps := range [2][]protocols.Datapoint{p.Reading.Attributes, p.Reading.Telemetry} {
			for j := len(dps) - 1; j >= 0; j-- {
				if dps[j].Key == key {
					return dps[j].Value, true
				}
			}
		}
	}
	return protocols.Value{}, false
}

// Pushed counts the accepted pushes.
func (s *Recorder) Pushed() int { return int(s.pushed.Load()) }

// PushedValues counts the values (telemetry and attributes) of the
// accepted pushes.
func (s *Recorder) PushedValues() int { return int(s.values.Load()) }

// Connects are the Connect calls as "device/profile".
func (s *Recorder) Connects() []string { return s.strings(&s.connects) }

// Disconnects are the devices of the Disconnect calls.
func (s *Recorder) Disconnects() []string { return s.strings(&s.disconnects) }

// AttrRequests are the RequestAttributes calls as "device client=bool [keys]".
func (s *Recorder) AttrRequests() []string { return s.strings(&s.attrReqs) }

func (s *Recorder) strings(p *[]string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), *p...)
}

// RefusedReports are the Refused calls.
func (s *Recorder) RefusedReports() []Report { return s.reports(&s.refused) }

// MalformedReports are the Malformed calls.
func (s *Recorder) MalformedReports() []Report { return s.reports(&s.malformed) }

// DroppedReports are the Dropped calls.
func (s *Recorder) DroppedReports() []Report { return s.reports(&s.drops) }

func (s *Recorder) reports(p *[]Report) []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Report(nil), *p...)
}

// DroppedTotal sums n over the Dropped calls.
func (s *Recorder) DroppedTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.drops {
		n += r.N
	}
	return n
}

// UnmatchedCount counts the Unmatched calls.
func (s *Recorder) UnmatchedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unmatched
}

// Links are the Link calls.
func (s *Recorder) Links() []LinkEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LinkEvent(nil), s.links...)
}

// Ups counts the Link calls that reported the link up.
func (s *Recorder) Ups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.links {
		if l.Up {
			n++
		}
	}
	return n
}

// String sums up what the Recorder holds, for failure messages.
func (s *Recorder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d pushes, connects %q, disconnects %q, attribute requests %q, malformed %v, dropped %v, unmatched %d, links %v",
		s.pushed.Load(), s.connects, s.disconnects, s.attrReqs, s.malformed, s.drops, s.unmatched, s.links)
}

// Waiting.

// Changed returns a channel that is closed at the next change: any Sink
// call that the Recorder keeps or counts, a failed Push included. Take it
// before checking a condition, then wait on it.
func (s *Recorder) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched.Store(true)
	return s.changed
}

// WhenPushed returns a channel that is closed once n pushes were
// accepted. It is the cheap wait of benchmarks: a counter only locks on a
// Push while someone waits.
func (s *Recorder) WhenPushed(n int) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched.Store(true) // before the check: a Push after it sees a waiter
	if s.pushed.Load() >= int64(n) {
		close(ch)
		return ch
	}
	s.whens = append(s.whens, when{int64(n), ch})
	return ch
}

// pollEvery re-checks a Wait condition that reads more than the Recorder
// (a connector's counters, a server's state), which no Sink call signals.
const pollEvery = 50 * time.Millisecond

// Wait blocks until cond holds and fails t after timeout (at least
// testpeer.MinTimeout). cond is checked at once, after every change, and
// every 50 ms for what changes without a Sink call; it runs without the
// Recorder's lock, so it may call any accessor (and must not block).
func (s *Recorder) Wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	w := testpeer.Waiter{Timeout: timeout, Poll: pollEvery, Changed: s.Changed,
		Describe: func() string { return "sink: " + s.String() }}
	w.Until(t, what, testpeer.True(cond))
}
