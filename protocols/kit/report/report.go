// Package report implements the upstream report strategies: which values a
// device emits, decided per key > device > connector > global.
package report

import (
	"sort"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Strategy is protocols.ReportStrategy; the alias keeps call sites short.
type Strategy = protocols.ReportStrategy

const (
	OnReceived             = protocols.OnReceived
	OnChange               = protocols.OnChange
	OnReportPeriod         = protocols.OnReportPeriod
	OnChangeOrReportPeriod = protocols.OnChangeOrReportPeriod
	Disabled               = protocols.ReportDisabled
)

// DefaultPeriod is upstream's default reportPeriod.
const DefaultPeriod = 10 * time.Second

// Default is what applies when nothing is configured anywhere.
var Default = Strategy{Type: OnReceived, Period: DefaultPeriod}

func periodic(s Strategy) bool { return s.Type == OnReportPeriod || s.Type == OnChangeOrReportPeriod }

// Parse reads the "reportStrategy" key of o; it returns the zero Strategy when absent.
func Parse(o *spec.Obj) Strategy {
	r := o.Obj("reportStrategy")
	if r == nil {
		return Strategy{}
	}
	t := r.Enum("type", OnReceived, OnReceived, OnChange, OnReportPeriod, OnChangeOrReportPeriod, Disabled)
	period := r.Int("reportPeriod", int64(DefaultPeriod/time.Millisecond))
	if period <= 0 {
		r.Errorf("reportPeriod", "%d must be a positive number of milliseconds", period)
		period = int64(DefaultPeriod / time.Millisecond)
	}
	// aggregationFunction and ttl are accepted for compatibility; upstream does
	// not apply aggregation either, and our cache is bounded by the key set.
	r.Enum("aggregationFunction", "NONE", "NONE", "SUM", "COUNT", "MIN", "MAX", "AVERAGE")
	r.Known("ttl")
	r.Done()
	return Strategy{Type: strings.ToUpper(t), Period: time.Duration(period) * time.Millisecond}
}

type entry struct {
	value    protocols.Value // latest, re-sent by report periods
	sent     protocols.Value // last sent, compared by ON_CHANGE so slow drift is not hidden
	strategy Strategy
	lastSent time.Time
	seen     bool
}

// Filter applies strategies for one device. It is not safe for concurrent use;
// each device actor owns one.
type Filter struct {
	def     Strategy
	perKey  map[string]Strategy
	entries map[string]*entry
	// passAll: every key is ON_RECEIVED (upstream's default), so nothing
	// is filtered or re-sent and no per-key state is needed.
	passAll bool
}

// NewFilter builds a filter with the device-level default and per-key overrides.
func NewFilter(def Strategy, perKey map[string]Strategy) *Filter {
	if !def.IsSet() {
		def = Default
	}
	passAll := def.Type == OnReceived
	for _, s := range perKey {
		if s.IsSet() && s.Type != OnReceived {
			passAll = false
		}
	}
	return &Filter{def: def, perKey: perKey, entries: map[string]*entry{}, passAll: passAll}
}

func (f *Filter) strategy(key string) Strategy {
	if s, ok := f.perKey[key]; ok && s.IsSet() {
		return s
	}
	return f.def
}

// Apply returns the datapoints to emit now, reusing dst's storage. The
// first value of every key is always emitted.
func (f *Filter) Apply(now time.Time, dps []protocols.Datapoint, dst []protocols.Datapoint) []protocols.Datapoint {
	if dst == nil && len(dps) > 0 {
		// One allocation instead of append's doublings: usually all pass.
		dst = make([]protocols.Datapoint, 0, len(dps))
	}
	if f.passAll {
		return append(dst, dps...)
	}
	for _, dp := range dps {
		e := f.entries[dp.Key]
		if e == nil {
			e = &entry{strategy: f.strategy(dp.Key)}
			f.entries[dp.Key] = e
		}
		send := false
		switch e.strategy.Type {
		case Disabled:
		case OnReceived:
			send = true
		case OnReportPeriod:
			send = !e.seen
		case OnChange, OnChangeOrReportPeriod:
			send = !e.seen || !e.sent.Equal(dp.Value)
		default:
			send = true
		}
		e.value, e.seen = dp.Value, true
		if send {
			e.lastSent, e.sent = now, dp.Value
			dst = append(dst, dp)
		}
	}
	return dst
}

// Due returns cached values whose report period has elapsed since they were
// last sent; they are re-sent with the current timestamp, as upstream does.
func (f *Filter) Due(now time.Time, dst []protocols.Datapoint) []protocols.Datapoint {
	start := len(dst)
	for k, e := range f.entries {
		if e.seen && periodic(e.strategy) && now.Sub(e.lastSent) >= e.strategy.Period {
			e.lastSent, e.sent = now, e.value
			dst = append(dst, protocols.Datapoint{Key: k, Value: e.value})
		}
	}
	due := dst[start:]
	sort.Slice(due, func(i, j int) bool { return due[i].Key < due[j].Key })
	return dst
}

// NextDue is the earliest time a periodic key becomes due, or zero when no
// key is periodic.
func (f *Filter) NextDue() time.Time {
	var next time.Time
	for _, e := range f.entries {
		if !e.seen || !periodic(e.strategy) {
			continue
		}
		t := e.lastSent.Add(e.strategy.Period)
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}
