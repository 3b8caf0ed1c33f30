package report

import (
	"reflect"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func dps(kv ...any) []protocols.Datapoint {
	var out []protocols.Datapoint
	for i := 0; i < len(kv); i += 2 {
		var v protocols.Value
		switch x := kv[i+1].(type) {
		case int:
			v = protocols.Int(int64(x))
		case float64:
			v = protocols.Float(x)
		case string:
			v = protocols.String(x)
		}
		out = append(out, protocols.Datapoint{Key: kv[i].(string), Value: v})
	}
	return out
}

func keys(d []protocols.Datapoint) []string {
	out := []string{}
	for _, p := range d {
		out = append(out, p.Key)
	}
	return out
}

func TestStrategies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	period := Strategy{Type: OnReportPeriod, Period: 10 * time.Second}
	both := Strategy{Type: OnChangeOrReportPeriod, Period: 10 * time.Second}
	steps := []struct {
		at   time.Duration
		in   []protocols.Datapoint
		want []string // emitted by Apply
		due  []string // emitted by Due at the same instant
	}{
		// First values are always sent, whatever the strategy.
		{0, dps("recv", 1, "chg", 1.0, "per", 1, "both", 1, "off", 1), []string{"recv", "chg", "per", "both"}, []string{}},
		// Same values: only ON_RECEIVED sends; float within 0.001 is unchanged.
		{time.Second, dps("recv", 1, "chg", 1.0004, "per", 1, "both", 1, "off", 1), []string{"recv"}, []string{}},
		// Changed values: ON_CHANGE and ON_CHANGE_OR_REPORT_PERIOD send; ON_REPORT_PERIOD waits.
		{2 * time.Second, dps("recv", 2, "chg", 2.0, "per", 2, "both", 2, "off", 2), []string{"recv", "chg", "both"}, []string{}},
		// Period elapsed for per (last sent at 0) but not for both (sent at 2 s).
		{10 * time.Second, dps(), []string{}, []string{"per"}},
		{12 * time.Second, dps(), []string{}, []string{"both"}},
	}
	f := NewFilter(Strategy{}, map[string]Strategy{
		"chg": {Type: OnChange}, "per": period, "both": both, "off": {Type: Disabled},
	})
	for i, s := range steps {
		now := t0.Add(s.at)
		got := keys(f.Apply(now, s.in, nil))
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d Apply: got %v want %v", i, got, s.want)
		}
		due := f.Due(now, nil)
		if !reflect.DeepEqual(keys(due), s.due) {
			t.Errorf("step %d Due: got %v want %v", i, keys(due), s.due)
		}
	}
	// Report-period re-sends carry the latest value.
	due := f.Due(t0.Add(30*time.Second), nil)
	for _, d := range due {
		if d.Key == "per" && d.Value != protocols.Int(2) {
			t.Errorf("periodic value %v, want the latest (2)", d.Value)
		}
	}
	if f.NextDue().IsZero() {
		t.Error("NextDue is zero with periodic keys")
	}
}

func TestOnChangeSeesSlowDrift(t *testing.T) {
	f := NewFilter(Strategy{Type: OnChange}, nil)
	now := time.Now()
	sent := 0
	for i := 0; i < 5; i++ {
		sent += len(f.Apply(now, dps("k", 1.0+float64(i)*0.0009), nil))
	}
	if sent != 3 {
		t.Fatalf("drift of 0.0009 per poll: sent %d values, want 3 (first, then each time it moved ≥ 0.001 from the last sent)", sent)
	}
}

func TestDefaultIsOnReceived(t *testing.T) {
	f := NewFilter(Strategy{}, nil)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if got := f.Apply(now, dps("k", 1), nil); len(got) != 1 {
			t.Fatalf("poll %d: ON_RECEIVED must forward every value, got %v", i, got)
		}
	}
}

func TestPrecedence(t *testing.T) {
	global := Strategy{Type: OnChange, Period: DefaultPeriod}
	connector := Strategy{}
	device := Strategy{Type: OnReportPeriod, Period: time.Second}
	key := Strategy{}
	if got := key.Or(device.Or(connector.Or(global))); got != device {
		t.Errorf("key unset → device strategy, got %+v", got)
	}
	key = Strategy{Type: OnReceived}
	if got := key.Or(device.Or(connector.Or(global))); got != key {
		t.Errorf("key set wins, got %+v", got)
	}
	if got := (Strategy{}).Or(Strategy{}.Or(global)); got != global {
		t.Errorf("nothing set → global, got %+v", got)
	}
}

func TestParse(t *testing.T) {
	ps := &spec.Problems{}
	o := spec.New(ps, "f.json", "x", map[string]any{"reportStrategy": map[string]any{"type": "on_change_or_report_period", "reportPeriod": 500.0}})
	s := Parse(o)
	if s.Type != OnChangeOrReportPeriod || s.Period != 500*time.Millisecond || ps.HasErrors() {
		t.Errorf("got %+v, problems %v", s, ps.List)
	}
	ps = &spec.Problems{}
	o = spec.New(ps, "f.json", "x", map[string]any{"reportStrategy": map[string]any{"type": "SOMETIMES", "reportPeriod": -1.0}})
	Parse(o)
	if len(ps.Errors()) != 2 {
		t.Fatalf("want 2 errors, got %v", ps.List)
	}
	want := `f.json: x.reportStrategy.type: unknown value "SOMETIMES" (want one of: ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD, DISABLED)`
	if got := ps.Errors()[0].String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestApplyInPlace: a caller that owns the input filters it in place
// (dst = dps[:0]); the result is the same as into fresh storage, for the
// all-ON_RECEIVED shortcut and for a filtering strategy.
func TestApplyInPlace(t *testing.T) {
	now := time.Now()
	for _, def := range []Strategy{{}, {Type: OnChange}} {
		fresh, inPlace := NewFilter(def, nil), NewFilter(def, nil)
		for round, in := range [][]protocols.Datapoint{dps("a", 1, "b", 2, "c", 3), dps("a", 1, "b", 5, "c", 3), dps("a", 2, "b", 5, "c", 4)} {
			want := fresh.Apply(now, in, nil)
			own := append([]protocols.Datapoint(nil), in...)
			got := inPlace.Apply(now, own, own[:0])
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s round %d: in place %v, fresh %v", def.Type, round, got, want)
			}
		}
	}
	if !NewFilter(Strategy{}, map[string]Strategy{"a": {Type: OnReceived}}).passAll ||
		NewFilter(Strategy{}, map[string]Strategy{"a": {Type: OnChange}}).passAll {
		t.Fatal("passAll must hold exactly when every key is ON_RECEIVED")
	}
}
