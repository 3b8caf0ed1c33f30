package spec

import (
	"math"
	"strconv"
	"time"
)

// Dur says how a duration key is written: its unit (upstream's keys are in
// seconds or milliseconds, and which one is part of each protocol's format)
// and the accepted range in that unit. The range is what keeps a typo from
// becoming a busy loop (zero period) or a timeout that never fires.
type Dur struct {
	Unit time.Duration // time.Second or time.Millisecond; zero means seconds
	// Min is the lowest accepted value; MinExclusive refuses Min itself
	// (zero for a period that must be positive).
	Min          float64
	MinExclusive bool
	// Max is the highest accepted value; zero means no bound other than
	// what a time.Duration holds.
	Max float64
	// Whole refuses fractions, for keys upstream reads as integers.
	Whole bool
	// Required reports a missing key as an error.
	Required bool
}

// Positive is the usual range: any positive amount.
var Positive = Dur{MinExclusive: true}

// In returns d with its unit set to u.
func (d Dur) In(u time.Duration) Dur {
	d.Unit = u
	return d
}

// Seconds reads a positive number of seconds (fractions allowed), def when absent.
func (o *Obj) Seconds(key string, def time.Duration) time.Duration {
	return o.Duration(key, def, Positive)
}

// Millis reads a positive number of milliseconds, def when absent.
func (o *Obj) Millis(key string, def time.Duration) time.Duration {
	d := Positive
	d.Unit = time.Millisecond
	return o.Duration(key, def, d)
}

// Duration reads key as a number of d.Unit; numeric strings are accepted
// like everywhere else in upstream files. A value that is not a number or is
// out of range is reported at the key's path and def is returned.
func (o *Obj) Duration(key string, def time.Duration, d Dur) time.Duration {
	unit := d.Unit
	if unit == 0 {
		unit = time.Second
	}
	v, ok := o.get(key)
	if !ok {
		if d.Required {
			o.Errorf(key, "is required")
		}
		return def
	}
	name := unitName(unit)
	f, err := toFloat(v)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (d.Whole && f != math.Trunc(f)) {
		what := "a number"
		if d.Whole {
			what = "a whole number"
		}
		o.Errorf(key, "%s is not %s of %s", describe(v), what, name)
		return def
	}
	limit := float64(math.MaxInt64) / float64(unit)
	hi := d.Max
	if hi == 0 || hi > limit {
		hi = limit
	}
	switch {
	case f < d.Min || (d.MinExclusive && f == d.Min):
		switch {
		case d.Min == 0 && d.MinExclusive:
			o.Errorf(key, "%s must be a positive number of %s", describe(v), name)
		case d.Min == 0:
			o.Errorf(key, "%s must not be negative", describe(v))
		case d.MinExclusive:
			o.Errorf(key, "%s must be more than %s %s", describe(v), fmtNum(d.Min), name)
		default:
			o.Errorf(key, "%s must be at least %s %s", describe(v), fmtNum(d.Min), name)
		}
		return def
	case f > hi:
		o.Errorf(key, "%s must be at most %s %s", describe(v), fmtNum(hi), name)
		return def
	}
	return time.Duration(f * float64(unit))
}

func unitName(u time.Duration) string {
	switch u {
	case time.Millisecond:
		return "milliseconds"
	case time.Second:
		return "seconds"
	case time.Minute:
		return "minutes"
	case time.Hour:
		return "hours"
	}
	return u.String() + " units"
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
