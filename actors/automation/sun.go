package automation

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sun events of a sun trigger.
const (
	Sunrise = "sunrise"
	Sunset  = "sunset"
)

// maxSunOffset bounds a sun trigger's offset: beyond half a day "30 min
// before sunset" turns into another day's event.
const maxSunOffset = 12 * time.Hour

// SunSchedule runs at sunrise or sunset (plus Offset) at a place. The times
// come from NOAA's solar position equations (the ones behind
// gml.noaa.gov/grad/solcalc), good to about a minute between the polar
// circles and a few minutes near them; at the poles, where the sun skims
// the horizon for days, the day and hour of the first crossing.
type SunSchedule struct {
	Event     string        // Sunrise or Sunset
	Offset    time.Duration // added to the event: "-30m" is half an hour before
	Latitude  float64       // degrees, north positive
	Longitude float64       // degrees, east positive
	placed    bool          // Latitude/Longitude given on the trigger itself

	mu        sync.Mutex
	loggedGap time.Time // first day of the last polar stretch logged
}

// Next is the first run strictly after t, or zero when the sun neither
// rises nor sets there within a year. Days without the event (polar day or
// night) are skipped and logged once per stretch.
func (s *SunSchedule) Next(t time.Time, log zerolog.Logger) time.Time {
	rise := s.Event == Sunrise
	day := t.UTC().Truncate(24 * time.Hour)
	var gapFrom, gapTo time.Time
	// From the day before: an offset or a longitude far from Greenwich can
	// put a UTC day's event on the neighbouring date.
	for i := -1; i <= 370; i++ {
		d := day.AddDate(0, 0, i)
		events := sunEvents(d, rise, s.Latitude, s.Longitude)
		if len(events) == 0 {
			if i >= 0 {
				if gapFrom.IsZero() {
					gapFrom = d
				}
				gapTo = d
			}
			continue
		}
		for _, at := range events {
			at = at.Add(s.Offset)
			if !at.After(t) {
				continue
			}
			if !gapFrom.IsZero() {
				s.logGap(log, gapFrom, gapTo, at)
			}
			return at
		}
	}
	s.logGap(log, day, day.AddDate(1, 0, 0), time.Time{})
	return time.Time{}
}

func (s *SunSchedule) logGap(log zerolog.Logger, from, to, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loggedGap.Equal(from) {
		return
	}
	s.loggedGap = from
	ev := log.Info().Str("event", s.Event).Str("from", from.Format(time.DateOnly)).Str("to", to.Format(time.DateOnly)).
		Float64("latitude", s.Latitude).Float64("longitude", s.Longitude)
	if !next.IsZero() {
		ev = ev.Time("next", next)
	}
	ev.Msg("no sun event on these days at this place (polar day or night): schedule skips them")
}

// sunEvents are the UTC times of sunrise (rise) or sunset on the UTC date
// of day (00:00 UTC) at lat/lon, in order: none when the sun does not
// cross the horizon that way that day (polar day or night), one on most
// days, more where the sun skims the horizon near the poles.
//
// NOAA's calculator solves the hour angle of the event from the
// declination at one moment; near the poles a small error in that
// declination moves the answer by hours or loses it (it found nothing at
// +-89.9 degrees). So the events are found as the crossings themselves, on
// the same solar position: each lies in its own day, found once.
func sunEvents(day time.Time, rise bool, lat, lon float64) []time.Time {
	jd := float64(day.Unix())/86400 + 2440587.5
	var out []time.Time
	for _, m := range sunCrossings(jd, rise, lat, lon) {
		out = append(out, day.Add(time.Duration(m*float64(time.Minute))).Round(time.Second))
	}
	return out
}

// horizon is the sun's centre's altitude at sunrise and sunset: its upper
// limb on the horizon, refraction included.
const horizon = -0.833

// crossingStep is how finely sunCrossing samples a day.
const crossingStep = 10.0 // minutes

// sunCrossings are the times on the UTC date of jd (minutes after 00:00
// UTC) the sun's altitude crosses the horizon upwards (rise) or downwards:
// sampled every crossingStep minutes, then bisected to a second. Away from
// the poles the sun crosses the horizon far faster than a 10-minute sample
// could miss.
func sunCrossings(jd float64, rise bool, lat, lon float64) []float64 {
	var out []float64
	prev := sunAltitude(jd, lat, lon) - horizon
	for m := crossingStep; m <= 1440; m += crossingStep {
		cur := sunAltitude(jd+m/1440, lat, lon) - horizon
		if (rise && prev < 0 && cur >= 0) || (!rise && prev >= 0 && cur < 0) {
			lo, hi := m-crossingStep, m
			for hi-lo > 1.0/60 {
				mid := (lo + hi) / 2
				above := sunAltitude(jd+mid/1440, lat, lon) >= horizon
				if above == rise {
					hi = mid
				} else {
					lo = mid
				}
			}
			if hi < 1440 {
				out = append(out, hi)
			}
		}
		prev = cur
	}
	return out
}

// sunAltitude is the sun's altitude in degrees at jd (a Julian date with
// its fraction of the day) at lat/lon.
func sunAltitude(jd, lat, lon float64) float64 {
	eqTime, decl := solarPosition((jd - 2451545.0) / 36525.0)
	minutes := math.Mod((jd-0.5)-math.Floor(jd-0.5), 1) * 1440 // since 00:00 UTC
	ha := (minutes+eqTime+4*lon)/4 - 180                       // hour angle, degrees
	latR, declR := rad(lat), rad(decl)
	return deg(math.Asin(math.Sin(latR)*math.Sin(declR) + math.Cos(latR)*math.Cos(declR)*math.Cos(rad(ha))))
}

// solarPosition is the equation of time (minutes) and the sun's
// declination (degrees) at t Julian centuries since J2000.
func solarPosition(t float64) (eqTime, decl float64) {
	l0 := math.Mod(280.46646+t*(36000.76983+t*0.0003032), 360)
	m := 357.52911 + t*(35999.05029-0.0001537*t)
	e := 0.016708634 - t*(0.000042037+0.0000001267*t)
	mr := rad(m)
	c := math.Sin(mr)*(1.914602-t*(0.004817+0.000014*t)) + math.Sin(2*mr)*(0.019993-0.000101*t) + math.Sin(3*mr)*0.000289
	omega := 125.04 - 1934.136*t
	lambda := l0 + c - 0.00569 - 0.00478*math.Sin(rad(omega))
	seconds := 21.448 - t*(46.8150+t*(0.00059-t*0.001813))
	eps := 23 + (26+seconds/60)/60 + 0.00256*math.Cos(rad(omega))
	decl = deg(math.Asin(math.Sin(rad(eps)) * math.Sin(rad(lambda))))
	y := math.Tan(rad(eps) / 2)
	y *= y
	l0r := rad(l0)
	et := y*math.Sin(2*l0r) - 2*e*math.Sin(mr) + 4*e*y*math.Sin(mr)*math.Cos(2*l0r) -
		0.5*y*y*math.Sin(4*l0r) - 1.25*e*e*math.Sin(2*mr)
	return deg(et) * 4, decl
}

func rad(d float64) float64 { return d * math.Pi / 180 }
func deg(r float64) float64 { return r * 180 / math.Pi }

// parseSun reads a sun trigger: sun (sunrise or sunset), offset, and
// optionally its own latitude and longitude (else the file's location).
func parseSun(o *spec.Obj) *SunSchedule {
	s := &SunSchedule{Event: o.Enum("sun", Sunrise, Sunrise, Sunset)}
	if o.Has("offset") {
		s.Offset = signedDuration(o, "offset")
	}
	if o.Has("latitude") || o.Has("longitude") {
		s.placed = true
		s.Latitude, s.Longitude = coordinates(o)
	}
	return s
}

// placeSun gives sun triggers without their own coordinates the file's
// location (latitude, longitude).
func placeSun(tasks []*Task, site *spec.Obj, ps *spec.Problems, file string) {
	var lat, lon float64
	if site != nil {
		lat, lon = coordinates(site)
		site.Done()
	}
	for i, t := range tasks {
		s := t.Trigger.Sun
		if s == nil || s.placed {
			continue
		}
		if site == nil {
			ps.Errorf(file, fmt.Sprintf("tasks[%d].trigger.sun", i), "needs a place: location {latitude, longitude} at the top of the file, or latitude and longitude on the trigger")
			continue
		}
		s.Latitude, s.Longitude = lat, lon
	}
}

func coordinates(o *spec.Obj) (lat, lon float64) {
	for _, c := range []struct {
		key string
		to  *float64
		lim float64
	}{{"latitude", &lat, 90}, {"longitude", &lon, 180}} {
		if !o.Has(c.key) {
			o.Errorf(c.key, "is required (degrees, north and east positive)")
			continue
		}
		*c.to = o.Float(c.key, 0)
		if math.IsNaN(*c.to) || math.Abs(*c.to) > c.lim {
			o.Errorf(c.key, "%v is not in -%v..%v degrees", *c.to, c.lim, c.lim)
		}
	}
	return lat, lon
}

// signedDuration reads "-30m", "1h" or a number of seconds, within
// maxSunOffset either way.
func signedDuration(o *spec.Obj, key string) time.Duration {
	v, _ := o.Any(key)
	var d time.Duration
	switch x := v.(type) {
	case float64:
		d = time.Duration(x * float64(time.Second))
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			o.Errorf(key, "%q is not a duration (want \"-30m\", \"1h15m\" or seconds)", x)
			return 0
		}
	default:
		o.Errorf(key, "%v is not a duration", v)
		return 0
	}
	if d > maxSunOffset || d < -maxSunOffset {
		o.Errorf(key, "%s is more than %s from the sun event", d, maxSunOffset)
		return 0
	}
	return d
}
