package automation

import (
	"sync"
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

// statusBoard holds the status of every forward and task; actors write
// their own entry, Status reads a copy.
type statusBoard struct {
	mu sync.Mutex
	m  map[string]*Status
}

func (b *statusBoard) update(name string, fn func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.m[name]; s != nil {
		fn(s)
	}
}

func (b *statusBoard) fail(name string, at time.Time, err error) {
	b.update(name, func(s *Status) { s.LastError, s.ErrorAt = err.Error(), at })
}
