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
// come from NOAA's solar calculator equations (the ones behind
// gml.noaa.gov/grad/solcalc), good to about a minute between the polar
// circles and a few minutes near them.
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
		at, ok := sunEvent(d, rise, s.Latitude, s.Longitude)
		if !ok {
			if i >= 0 {
				if gapFrom.IsZero() {
					gapFrom = d
				}
				gapTo = d
			}
			continue
		}
		at = at.Add(s.Offset)
		if !at.After(t) {
			continue
		}
		if !gapFrom.IsZero() {
			s.logGap(log, gapFrom, gapTo, at)
		}
		return at
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

// sunEvent is the UTC time of sunrise (rise) or sunset on the UTC date of
// day (00:00 UTC) at lat/lon; false when the sun stays above or below the
// horizon all day.
func sunEvent(day time.Time, rise bool, lat, lon float64) (time.Time, bool) {
	jd := float64(day.Unix())/86400 + 2440587.5
	// Twice, as NOAA does: the second pass takes the sun's position at the
	// first estimate rather than at midnight.
	m, ok := sunEventMinutes(jd, rise, lat, lon)
	if !ok {
		return time.Time{}, false
	}
	m, ok = sunEventMinutes(jd+m/1440, rise, lat, lon)
	if !ok {
		return time.Time{}, false
	}
	return day.Add(time.Duration(m * float64(time.Minute))).Round(time.Second), true
}

// sunEventMinutes is the event's time in minutes after 00:00 UTC of the
// date of jd.
func sunEventMinutes(jd float64, rise bool, lat, lon float64) (float64, bool) {
	t := (jd - 2451545.0) / 36525.0 // Julian centuries since J2000
	eqTime, decl := solarPosition(t)
	latR, declR := rad(lat), rad(decl)
	// Hour angle of the sun's upper limb at the horizon, refraction
	// included (90.833 degrees from the zenith).
	arg := math.Cos(rad(90.833))/(math.Cos(latR)*math.Cos(declR)) - math.Tan(latR)*math.Tan(declR)
	if math.IsNaN(arg) || arg > 1 || arg < -1 {
		return 0, false
	}
	ha := deg(math.Acos(arg))
	if !rise {
		ha = -ha
	}
	return 720 - 4*(lon+ha) - eqTime, true
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
