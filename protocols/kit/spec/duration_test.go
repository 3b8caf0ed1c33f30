package spec

import (
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	cases := []struct {
		raw  string
		d    Dur
		want time.Duration
		err  string
	}{
		{`{}`, Positive, 7 * time.Second, ""},
		{`{"k": 1.5}`, Positive, 1500 * time.Millisecond, ""},
		{`{"k": "2"}`, Positive, 2 * time.Second, ""},
		{`{"k": 250}`, Dur{Unit: time.Millisecond, MinExclusive: true}, 250 * time.Millisecond, ""},
		{`{"k": 0}`, Positive, 7 * time.Second, "f: k: 0 must be a positive number of seconds"},
		{`{"k": -1}`, Dur{}, 7 * time.Second, "f: k: -1 must not be negative"},
		{`{"k": 0}`, Dur{}, 0, ""},
		{`{"k": "x"}`, Positive, 7 * time.Second, `f: k: "x" is not a number of seconds`},
		{`{"k": 1.5}`, Dur{Unit: time.Millisecond, Whole: true}, 7 * time.Second, "f: k: 1.5 is not a whole number of milliseconds"},
		{`{"k": 3601}`, Dur{MinExclusive: true, Max: 3600}, 7 * time.Second, "f: k: 3601 must be at most 3600 seconds"},
		{`{"k": 5}`, Dur{Min: 10}, 7 * time.Second, "f: k: 5 must be at least 10 seconds"},
		{`{}`, Dur{Required: true}, 7 * time.Second, "f: k: is required"},
		{`{"k": 1e300}`, Positive, 7 * time.Second, "must be at most"},
	}
	for _, c := range cases {
		var ps Problems
		o := Parse(&ps, "f", []byte(c.raw))
		got := o.Duration("k", 7*time.Second, c.d)
		if got != c.want {
			t.Errorf("%s %+v: got %v, want %v", c.raw, c.d, got, c.want)
		}
		err := ""
		if e := ps.Err(); e != nil {
			err = e.Error()
		}
		if (c.err == "") != (err == "") || !strings.Contains(err, c.err) {
			t.Errorf("%s %+v: error %q, want %q", c.raw, c.d, err, c.err)
		}
	}
}
