package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/industryos/gateway/protocols/kit/pyre"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// DeviceFilter is thingsboard.deviceFiltering: per-connector deny and allow
// Python regular expressions, matched against the whole device name
// (re.fullmatch, as upstream).
type DeviceFilter struct {
	deny, allow map[string][]*pyre.Regexp
}

// Allowed reports whether a device of a connector may send data. Deny wins;
// when a connector has an allow list, only names matching it pass. A nil
// filter allows everything. A pattern that timed out keeps the device out.
func (f *DeviceFilter) Allowed(connector, device string) bool {
	ok, _ := f.Check(connector, device)
	return ok
}

// Check is Allowed with the reason a pattern could not decide: a match
// timeout (pyre.ErrTimeout) keeps the device out, since a deny pattern
// that could not be checked may have meant to deny it.
func (f *DeviceFilter) Check(connector, device string) (bool, error) {
	if f == nil {
		return true, nil
	}
	for _, re := range f.deny[connector] {
		m, err := re.MatchString(device)
		if err != nil {
			return false, fmt.Errorf("deviceFiltering deny list of %q: %w", connector, err)
		}
		if m {
			return false, nil
		}
	}
	allow, ok := f.allow[connector]
	if !ok {
		return true, nil
	}
	for _, re := range allow {
		m, err := re.MatchString(device)
		if err != nil {
			return false, fmt.Errorf("deviceFiltering allow list of %q: %w", connector, err)
		}
		if m {
			return true, nil
		}
	}
	return false, nil
}

// Activity is thingsboard.checkingDeviceActivity.
type Activity struct {
	Enabled bool
	Timeout time.Duration
	Period  time.Duration
}

func parseActivity(o *spec.Obj) Activity {
	a := Activity{Timeout: 300 * time.Second, Period: 10 * time.Second}
	ao := o.Obj("checkingDeviceActivity")
	if ao == nil {
		return a
	}
	a.Enabled = ao.Bool("checkDeviceInactivity", false)
	a.Timeout = time.Duration(ao.IntRange("inactivityTimeoutSeconds", 300, 1, 1<<31)) * time.Second
	a.Period = time.Duration(ao.IntRange("inactivityCheckPeriodSeconds", 10, 1, 1<<31)) * time.Second
	ao.Done()
	return a
}

func parseFilter(o *spec.Obj, dir string) *DeviceFilter {
	fo := o.Obj("deviceFiltering")
	if fo == nil {
		return nil
	}
	enabled := fo.Bool("enable", false)
	file := fo.Str("filterFile", "list.json")
	fo.Done()
	if !enabled {
		return nil
	}
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	ps := o.Problems()
	raw, err := os.ReadFile(path)
	if err != nil {
		fo.Errorf("filterFile", "cannot read %q: %v", file, unwrapPath(err))
		return nil
	}
	root := spec.Parse(ps, filepath.Base(path), raw)
	if root == nil {
		return nil
	}
	f := &DeviceFilter{deny: compileLists(root, "deny"), allow: compileLists(root, "allow")}
	root.Done()
	return f
}

func compileLists(root *spec.Obj, key string) map[string][]*pyre.Regexp {
	out := map[string][]*pyre.Regexp{}
	lists := root.Obj(key)
	if lists == nil {
		return out
	}
	for connector := range lists.Raw() {
		for i, expr := range lists.Strings(connector) {
			re, err := pyre.Compile(expr, pyre.FullMatch)
			if err != nil {
				lists.Errorf(fmt.Sprintf("%s[%d]", connector, i), "%v", err)
				continue
			}
			out[connector] = append(out[connector], re)
		}
	}
	return out
}
