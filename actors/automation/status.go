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

// Summary is the engine's state in a few figures, for the platform: the
// gateway sends it with its statistics telemetry as automationStats.
// Counters are totals since the process started.
type Summary struct {
	Tasks           int               `json:"tasks"`
	TasksEnabled    int               `json:"tasksEnabled"`
	Forwards        int               `json:"forwards"`
	ForwardsEnabled int               `json:"forwardsEnabled"`
	Runs            uint64            `json:"runs"`              // tasks fired and forwards written
	LastRun         int64             `json:"lastRun,omitempty"` // ms, the newest over all rules
	RulesWithErrors int               `json:"rulesWithErrors"`   // rules whose last error is set
	Errors          map[string]string `json:"errors,omitempty"`  // rule -> last error, at most summaryErrors
	BusDropped      uint64            `json:"busDropped"`
	QueueDepth      int64             `json:"queueDepth"`
	QueueDone       uint64            `json:"queueDone"`
	QueueFailed     uint64            `json:"queueFailed"`
	QueueExpired    uint64            `json:"queueExpired"`
	QueueRetries    uint64            `json:"queueRetries"`
	QueueDropped    uint64            `json:"queueDropped"`
}

// summaryErrors bounds the errors a Summary carries: the message stays
// small with many failing rules (the count has them all).
const summaryErrors = 10

// Summary returns the engine's state in a few figures.
func (e *Engine) Summary() Summary {
	r := e.Report()
	s := Summary{QueueDepth: r.Queue.Depth, QueueDone: r.Queue.Done, QueueFailed: r.Queue.Failed,
		QueueExpired: r.Queue.Expired, QueueRetries: r.Queue.Retries, QueueDropped: r.Queue.Dropped}
	for _, st := range r.Rules {
		if st.Kind == "task" {
			s.Tasks++
			if st.Enabled {
				s.TasksEnabled++
			}
		} else {
			s.Forwards++
			if st.Enabled {
				s.ForwardsEnabled++
			}
		}
		s.Runs += st.Runs
		s.BusDropped += st.Dropped
		if !st.LastRun.IsZero() && st.LastRun.UnixMilli() > s.LastRun {
			s.LastRun = st.LastRun.UnixMilli()
		}
		if st.LastError != "" {
			s.RulesWithErrors++
			if len(s.Errors) < summaryErrors { // rules come sorted by name: a stable choice
				if s.Errors == nil {
					s.Errors = map[string]string{}
				}
				s.Errors[st.Name] = st.LastError
			}
		}
	}
	return s
}
