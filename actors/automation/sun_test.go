package automation

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Reference times from PyEphem 4.1.4 (Debian python3-ephem, a different
// algorithm: libastro), upper limb at -0:34, no pressure; produced by
// Observer.next_rising/next_setting from 00:00 UTC of the date.
var sunRefs = []struct {
	place    string
	lat, lon float64
	from     string
	rise     string // "" : none that day (polar)
	set      string
}{
	{"Berlin midsummer", 52.52, 13.405, "2026-06-21", "2026-06-21T02:43:08Z", "2026-06-21T19:33:14Z"},
	{"Berlin midwinter", 52.52, 13.405, "2026-12-21", "2026-12-21T07:14:52Z", "2026-12-21T14:53:58Z"},
	{"New York equinox", 40.7128, -74.0060, "2026-03-20", "2026-03-20T10:59:17Z", "2026-03-20T23:08:11Z"},
	{"Sydney", -33.8688, 151.2093, "2026-01-15", "2026-01-15T19:00:25Z", "2026-01-15T09:09:00Z"},
	{"Quito", -0.1807, -78.4678, "2026-09-01", "2026-09-01T11:10:38Z", "2026-09-01T23:16:58Z"},
	{"Tromso February", 69.6492, 18.9553, "2026-02-10", "2026-02-10T07:38:55Z", "2026-02-10T14:19:07Z"},
}

func TestSunTimesAgainstReference(t *testing.T) {
	for _, r := range sunRefs {
		from, _ := time.Parse(time.DateOnly, r.from)
		for ev, want := range map[string]string{Sunrise: r.rise, Sunset: r.set} {
			s := &SunSchedule{Event: ev, Latitude: r.lat, Longitude: r.lon}
			got := s.Next(from, zerolog.Nop())
			w, _ := time.Parse(time.RFC3339, want)
			if d := got.Sub(w).Abs(); d > time.Minute {
				t.Errorf("%s %s: got %s, want %s (off by %s)", r.place, ev, got.Format(time.RFC3339), want, d)
			}
		}
	}
}

// Polar day in Tromso: no sunset from late May to late July; the schedule
// skips to the first day with one and logs the stretch once.
func TestSunPolarDaySkippedAndLoggedOnce(t *testing.T) {
	var log strings.Builder
	l := zerolog.New(&log)
	s := &SunSchedule{Event: Sunset, Latitude: 69.6492, Longitude: 18.9553}
	from := time.Date(2026, 6, 21, 0, 0, 0, 0, time.UTC)
	next := s.Next(from, l)
	if next.Before(time.Date(2026, 7, 20, 0, 0, 0, 0, time.UTC)) || next.After(time.Date(2026, 7, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next sunset after midsummer at Tromso: %s", next)
	}
	if again := s.Next(from.Add(time.Hour), l); !again.Equal(next) {
		t.Fatalf("second call: %s, want %s", again, next)
	}
	if n := strings.Count(log.String(), "polar day or night"); n != 1 {
		t.Fatalf("logged %d times, want once: %s", n, log.String())
	}
}

// A sunset trigger with an offset fires on the injected clock, and the
// next day's run is armed after it.
func TestSunsetTaskOnFakeClock(t *testing.T) {
	rec.reset(0)
	clock := NewFakeClock(time.Date(2026, 6, 21, 12, 0, 0, 0, time.UTC))
	r := start(t, `
location: {latitude: 52.52, longitude: 13.405}
tasks:
  - name: lights
    trigger: {sun: sunset, offset: -30m}
    actions: [{handler: test_record, params: {at: "{{ts}}"}}]
`, clock, nil)
	waitFor(t, "the schedule armed", func() bool { return clock.Pending() == 1 })
	want := time.Date(2026, 6, 21, 19, 3, 14, 0, time.UTC) // PyEphem sunset 19:33:14 - 30 min
	clock.Set(want.Add(-2 * time.Minute))
	if len(rec.actions()) != 0 {
		t.Fatal("fired early")
	}
	clock.Set(want.Add(time.Minute))
	waitFor(t, "the run half an hour before sunset", func() bool { return len(rec.actions()) == 1 })
	at := time.UnixMilli(rec.actions()[0].Params["at"].(int64))
	if d := at.Sub(want).Abs(); d > time.Minute {
		t.Fatalf("ran at %s, want %s", at.UTC(), want)
	}
	waitFor(t, "the next day armed", func() bool { return clock.Pending() == 1 })
	clock.Advance(24 * time.Hour)
	waitFor(t, "the next day's run", func() bool { return len(rec.actions()) == 2 })
	_ = r
}

func TestSunTriggerConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`tasks: [{name: a, trigger: {sun: sunrise}, actions: [{handler: test_record}]}]`, "needs a place"},
		{`tasks: [{name: a, trigger: {sun: noon, latitude: 1, longitude: 2}, actions: [{handler: test_record}]}]`, "noon"},
		{`tasks: [{name: a, trigger: {sun: sunset, offset: 13h, latitude: 1, longitude: 2}, actions: [{handler: test_record}]}]`, "offset"},
		{`{location: {latitude: 95, longitude: 2}, tasks: [{name: a, trigger: {sun: sunset}, actions: [{handler: test_record}]}]}`, "latitude"},
		{`tasks: [{name: a, trigger: {sun: sunset, every: 1s, latitude: 1, longitude: 2}, actions: [{handler: test_record}]}]`, "exactly one"},
	} {
		_, ps := Parse("automation.yaml", []byte(c.yaml))
		if err := ps.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.yaml, err, c.want)
		}
	}
	_, ps := Parse("automation.yaml", []byte(`tasks: [{name: a, trigger: {sun: sunrise, offset: "-45m", latitude: 1, longitude: 2}, actions: [{handler: test_record}]}]`))
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
}

// Near the poles the sun rises and sets about once a year (a few times
// when it skims the horizon): a schedule walked across a year finds each
// event strictly later than the last, never loops or panics, and logs each
// polar stretch once. The hour-angle formula alone found none at +-89.9.
func TestSunNearThePoles(t *testing.T) {
	for _, lat := range []float64{-89.9, 89.9, -90, 90} {
		for _, lon := range []float64{0, 179.9, -179.9} {
			for _, ev := range []string{Sunrise, Sunset} {
				name := fmt.Sprintf("%s at %v,%v", ev, lat, lon)
				var log strings.Builder
				l := zerolog.New(&log)
				s := &SunSchedule{Event: ev, Latitude: lat, Longitude: lon}
				at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				end := at.AddDate(1, 0, 0)
				var got []time.Time
				for range 800 {
					next := s.Next(at, l)
					if next.IsZero() {
						break
					}
					if !next.After(at) || next.Sub(at) > 371*24*time.Hour {
						t.Fatalf("%s: after %s got %s", name, at, next)
					}
					at = next
					if at.After(end) {
						break
					}
					got = append(got, at)
				}
				if len(got) >= 800 {
					t.Fatalf("%s: no end to the events", name)
				}
				// The polar sunrise and sunset come near the equinoxes: the
				// north's sunrise and the south's sunset in March, the others
				// in September (the sun's centre 0.833 degrees below the
				// horizon, so a few days off the equinox). Where the sun
				// skims the horizon it may cross it a few times then.
				month := time.September
				if (lat > 0) == (ev == Sunrise) {
					month = time.March
				}
				main := time.Date(2026, month, 15, 0, 0, 0, 0, time.UTC)
				found := false
				for _, e := range got {
					found = found || !e.Before(main) && e.Before(main.AddDate(0, 0, 15))
					if (e.Month() != time.March && e.Month() != time.September) || e.Day() < 10 {
						t.Errorf("%s: an event on %s, far from an equinox", name, e)
					}
				}
				if !found {
					t.Errorf("%s: events %v, want one between %s and %s", name, got, main.Format(time.DateOnly), main.AddDate(0, 0, 15).Format(time.DateOnly))
				}
				// Each stretch without the event is logged once.
				lines := strings.Split(strings.TrimSpace(log.String()), "\n")
				seen := map[string]bool{}
				for _, line := range lines {
					if line == "" {
						continue
					}
					var rec struct{ From, To string }
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatal(err)
					}
					if seen[rec.From] {
						t.Errorf("%s: stretch from %s logged twice", name, rec.From)
					}
					seen[rec.From] = true
				}
				t.Logf("%s: %d events in 2026 (first %v), %d stretches logged", name, len(got), first(got), len(seen))
			}
		}
	}
}

func first(ts []time.Time) string {
	if len(ts) == 0 {
		return "-"
	}
	return ts[0].Format(time.RFC3339)
}
