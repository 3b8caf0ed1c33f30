package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/industryos/gateway/protocols/spec"
)

// DeviceFilter is thingsboard.deviceFiltering: per-connector deny and allow
// regular expressions, matched against the whole device name.
type DeviceFilter struct {
	deny, allow map[string][]*regexp.Regexp
}

// Allowed reports whether a device of a connector may send data. Deny wins;
// when a connector has an allow list, only names matching it pass. A nil
// filter allows everything.
func (f *DeviceFilter) Allowed(connector, device string) bool {
	if f == nil {
		return true
	}
	for _, re := range f.deny[connector] {
		if re.MatchString(device) {
			return false
		}
	}
	allow, ok := f.allow[connector]
	if !ok {
		return true
	}
	for _, re := range allow {
		if re.MatchString(device) {
			return true
		}
	}
	return false
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

func compileLists(root *spec.Obj, key string) map[string][]*regexp.Regexp {
	out := map[string][]*regexp.Regexp{}
	lists := root.Obj(key)
	if lists == nil {
		return out
	}
	for connector := range lists.Raw() {
		for i, expr := range lists.Strings(connector) {
			// Compile the user's text first so the error quotes what they wrote.
			_, err := regexp.Compile(expr)
			if err != nil {
				lists.Errorf(fmt.Sprintf("%s[%d]", connector, i), "invalid regular expression %q: %v", expr, err)
				continue
			}
			out[connector] = append(out[connector], regexp.MustCompile("^(?:"+expr+")$"))
		}
	}
	return out
}
