package automation

import (
	"sync"
	"sync/atomic"
	"time"
)

// Status is what an operator sees of one forward or task.
type Status struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"` // "forward" or "task"
	Enabled   bool      `json:"enabled"`
	Checks    uint64    `json:"checks"`  // triggers considered
	Runs      uint64    `json:"runs"`    // forwards written, tasks fired
	Skipped   uint64    `json:"skipped"` // condition not met, or no value yet
	LastRun   time.Time `json:"lastRun"`
	LastError string    `json:"lastError,omitempty"`
	ErrorAt   time.Time `json:"errorAt"`
	Dropped   uint64    `json:"dropped"` // bus messages its full mailbox refused
}

// entry is one forward's or task's live status: counters an actor bumps on
// every value without a lock, the rest under mu.
type entry struct {
	checks, skipped, runs atomic.Uint64
	mu                    sync.Mutex
	s                     Status
}

func (e *entry) ran(at time.Time) {
	e.runs.Add(1)
	e.mu.Lock()
	e.s.LastRun = at
	e.mu.Unlock()
}

func (e *entry) fail(at time.Time, err error) {
	e.mu.Lock()
	e.s.LastError, e.s.ErrorAt = err.Error(), at
	e.mu.Unlock()
}

func (e *entry) ok() {
	e.mu.Lock()
	e.s.LastError = ""
	e.mu.Unlock()
}

func (e *entry) snapshot() Status {
	e.mu.Lock()
	s := e.s
	e.mu.Unlock()
	s.Checks, s.Skipped, s.Runs = e.checks.Load(), e.skipped.Load(), e.runs.Load()
	return s
}

// statusBoard holds the status of every forward and task.
type statusBoard struct {
	mu sync.Mutex
	m  map[string]*entry
}

// get returns name's entry; an unknown name (a queued action of a task a
// reload removed) gets a detached one.
func (b *statusBoard) get(name string) *entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.m[name]; e != nil {
		return e
	}
	return &entry{}
}
