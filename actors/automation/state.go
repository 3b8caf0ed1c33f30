package automation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

// A task's state lives in the queue's store, so a restart (a SIGKILL
// included) resumes it: s/<task>\x00v holds the last values of its vars and
// its last run, s/<task>\x00e\x00<source> one episode each. An episode is
// written when it starts, fires or ends, the moments that decide what
// happens after a restart; the newest values are written behind, at most
// stateFlushEvery late, as they change at poll rate.
const (
	taskStatePrefix = "s/"
	stateFlushEvery = time.Second
)

// stateFlush asks the task to write what changed since its last write.
type stateFlush struct{}

func (*stateFlush) ControlMessage() {}

// savedValue is a protocols.Value as stored; the float is text because
// JSON has no NaN or infinity.
type savedValue struct {
	K protocols.Kind `json:"k"`
	I int64          `json:"i,omitempty"`
	U uint64         `json:"u,omitempty"`
	F string         `json:"f,omitempty"`
	S string         `json:"s,omitempty"`
}

func saveValue(v protocols.Value) savedValue {
	s := savedValue{K: v.Kind, I: v.I, U: v.U, S: v.S}
	if v.Kind == protocols.KindFloat {
		s.F = strconv.FormatFloat(v.F, 'g', -1, 64)
	}
	return s
}

func (s savedValue) value() protocols.Value {
	v := protocols.Value{Kind: s.K, I: s.I, U: s.U, S: s.S}
	if s.K == protocols.KindFloat {
		v.F, _ = strconv.ParseFloat(s.F, 64)
	}
	return v
}

// savedVars is the s/<task>\x00v record.
type savedVars struct {
	Def     string                `json:"def"`
	Last    map[string]savedValue `json:"last,omitempty"` // device + "\x00" + key
	LastRun time.Time             `json:"lastRun"`
}

// savedEpisode is one s/<task>\x00e\x00<source> record.
type savedEpisode struct {
	Def      string     `json:"def"`
	Since    time.Time  `json:"since"`
	Fired    bool       `json:"fired,omitempty"`
	Value    savedValue `json:"value"`
	HasValue bool       `json:"hasValue,omitempty"`
	Device   string     `json:"device,omitempty"`
	Key      string     `json:"key,omitempty"`
	Event    string     `json:"event"`
	Ts       int64      `json:"ts"`
}

// stateDef fingerprints what a task's state depends on: trigger, vars,
// condition and for-duration. State saved under another definition is
// dropped at start, so an edited condition does not inherit a timer it
// never started; a changed action or the enabled flag keeps it.
func stateDef(raw map[string]any) string {
	m := make(map[string]any, len(raw))
	for k, v := range raw {
		switch k {
		case "name", "enabled", "actions":
		default:
			m[k] = v
		}
	}
	b, _ := json.Marshal(m) // decoded YAML: always marshals, keys sorted
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func stateKey(task string) string { return taskStatePrefix + task + "\x00" }

func varsKey(task string) []byte { return []byte(stateKey(task) + "v") }

func episodeKey(task, source string) []byte { return []byte(stateKey(task) + "e\x00" + source) }

// restoreState loads what the task's previous run left: last values, last
// run, and its episodes, re-arming the for-duration timers with the time
// that remains (a condition that held for 4 of 5 minutes fires 1 minute
// after the start). State of another definition is deleted.
func (a *taskActor) restoreState() {
	a.dirtyEp = map[string]bool{}
	prefix := []byte(stateKey(a.t.Name))
	var stale [][]byte
	err := a.store.Scan(prefix, func(k, v []byte) error {
		rest := string(k[len(prefix):])
		switch {
		case rest == "v":
			var s savedVars
			if json.Unmarshal(v, &s) != nil || s.Def != a.t.stateDef {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			for rk, sv := range s.Last {
				dev, key, ok := strings.Cut(rk, "\x00")
				if r := (Ref{dev, key}); ok && a.varRefs[r] {
					a.last[r] = sv.value()
				}
			}
			if !s.LastRun.IsZero() {
				a.lastRun = s.LastRun
				a.st.mu.Lock()
				a.st.s.LastRun = s.LastRun
				a.st.mu.Unlock()
			}
		case strings.HasPrefix(rest, "e\x00"):
			var s savedEpisode
			if json.Unmarshal(v, &s) != nil || s.Def != a.t.stateDef || s.Since.IsZero() || len(a.episodes) >= maxEpisodes {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			a.gen++
			a.episodes[rest[2:]] = &episode{since: s.Since, gen: a.gen, fired: s.Fired, ev: trigger{
				value: s.Value.value(), hasValue: s.HasValue, device: s.Device, key: s.Key, event: s.Event, ts: s.Ts}}
		}
		return nil
	})
	if err != nil {
		a.log.Warn().Err(err).Msg("cannot read the task's state; it starts afresh")
	}
	for _, k := range stale {
		if err := a.store.Delete(k); err != nil {
			a.log.Warn().Err(err).Msg("cannot delete outdated task state")
		}
	}
	now := a.clock.Now()
	for src, ep := range a.episodes {
		if ep.fired || a.t.For <= 0 {
			continue
		}
		left := ep.since.Add(a.t.For).Sub(now)
		a.log.Info().Time("since", ep.since).Dur("left", max(left, 0)).Msg("condition held before the restart; its for-duration goes on")
		a.armFor(src, ep, left)
	}
}

// armFor starts ep's for-duration timer; a time already passed fires at
// once.
func (a *taskActor) armFor(src string, ep *episode, d time.Duration) {
	msg := &forElapsed{source: src, gen: ep.gen}
	if d <= 0 {
		a.sys.Root.Send(a.self, msg)
		return
	}
	sys, self := a.sys, a.self
	ep.stopT = a.clock.AfterFunc(d, func() { sys.Root.Send(self, msg) })
}

// episodeChanged records src's episode (gone when the condition ended) and
// writes it with everything else pending: these are the transitions a
// restart must know of.
func (a *taskActor) episodeChanged(src string) {
	a.dirtyEp[src] = true
	a.flushState()
}

// stateTouched notes a change that may be written late (a new value).
func (a *taskActor) stateTouched(src string, isVar bool) {
	if isVar {
		a.dirtyVars = true
	} else if _, ok := a.episodes[src]; ok {
		a.dirtyEp[src] = true
	} else {
		return
	}
	if a.flushT == nil {
		sys, self := a.sys, a.self
		a.flushT = time.AfterFunc(stateFlushEvery, func() { sys.Root.Send(self, &stateFlush{}) })
	}
}

// flushState writes the changed records. A failed write is logged and
// retried with the next change: the task keeps running from memory.
func (a *taskActor) flushState() {
	if a.flushT != nil {
		a.flushT.Stop()
		a.flushT = nil
	}
	var errs []error
	for src := range a.dirtyEp {
		key := episodeKey(a.t.Name, src)
		ep := a.episodes[src]
		if ep == nil {
			errs = append(errs, a.store.Delete(key))
			continue
		}
		raw, _ := json.Marshal(savedEpisode{Def: a.t.stateDef, Since: ep.since, Fired: ep.fired,
			Value: saveValue(ep.ev.value), HasValue: ep.ev.hasValue, Device: ep.ev.device, Key: ep.ev.key,
			Event: ep.ev.event, Ts: ep.ev.ts})
		errs = append(errs, a.store.Put(key, raw))
	}
	clear(a.dirtyEp)
	if a.dirtyVars {
		s := savedVars{Def: a.t.stateDef, LastRun: a.lastRun}
		if len(a.last) > 0 {
			s.Last = make(map[string]savedValue, len(a.last))
			for r, v := range a.last {
				s.Last[r.Device+"\x00"+r.Key] = saveValue(v)
			}
		}
		raw, _ := json.Marshal(s)
		errs = append(errs, a.store.Put(varsKey(a.t.Name), raw))
		a.dirtyVars = false
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Warn().Err(err).Msg("cannot store the task's state; a restart may lose it")
	}
}

// pruneState deletes the state of tasks cfg no longer has.
func pruneState(store persistence.Store, cfg *Config) error {
	keep := map[string]bool{}
	for _, t := range cfg.Tasks {
		keep[t.Name] = true
	}
	var gone [][]byte
	err := store.Scan([]byte(taskStatePrefix), func(k, _ []byte) error {
		name, _, _ := strings.Cut(string(k[len(taskStatePrefix):]), "\x00")
		if !keep[name] {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range gone {
		err = errors.Join(err, store.Delete(k))
	}
	return err
}
