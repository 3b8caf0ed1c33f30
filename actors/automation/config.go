// Package automation runs edge automation inside the gateway, working with
// the platform offline: forwards copy a device value to another device,
// tasks watch the bus (or a clock) and call handlers when their condition
// holds, and actions that must not be lost go through a durable queue. The
// definitions live in automation.yaml next to the main config; a reload
// replaces them without touching connectors.
package automation

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/industryos/gateway/actors/automation/handler"
	_ "github.com/industryos/gateway/actors/automation/handlers/all" // Parse checks params of every handler
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// FileName is the automation file's name, next to the main config.
const FileName = "automation.yaml"

// Missed-run policies of a clock trigger.
const (
	MissedSkip    = "skip"
	MissedRunOnce = "run-once"
)

// Config is a loaded, checked automation.yaml.
type Config struct {
	File     string
	Queue    QueueConfig
	Forwards []*Forward
	Tasks    []*Task
}

// QueueConfig tunes the durable action queue.
type QueueConfig struct {
	Dir      string        // Badger directory; "" with Memory
	Memory   bool          // keep actions in memory only (lost on restart)
	RetryMin time.Duration // first retry delay
	RetryMax time.Duration // longest retry delay
	Expire   time.Duration // an action not done by then is given up
	Workers  int           // actions run at once
}

// Ref names one key of one device: "boiler.temperature" (the key is what
// follows the last dot).
type Ref struct{ Device, Key string }

func (r Ref) String() string { return r.Device + "." + r.Key }

// Forward copies Source to Target whenever Source gets a value.
type Forward struct {
	Name       string
	Enabled    bool
	Source     Ref
	Target     Ref
	Expression *pyexpr.Expr // nil: the value as it is; reads "value"
}

// Trigger says when a task is considered: on a bus topic, or by a clock.
type Trigger struct {
	Event    *bus.Pattern  // on every matching value or lifecycle event
	Every    time.Duration // interval
	Cron     cron.Schedule // cron with seconds
	CronText string
	Location *time.Location
	Sun      *SunSchedule // sunrise or sunset (sun.go)
	Missed   string       // MissedSkip or MissedRunOnce (clock triggers)
}

// Clock reports whether the trigger is a clock (interval or cron).
func (t Trigger) Clock() bool { return t.Every > 0 || t.Cron != nil || t.Sun != nil }

// Task calls its actions when triggered and its condition holds (for For,
// when set).
type Task struct {
	Name      string
	Enabled   bool
	Trigger   Trigger
	Vars      map[string]Ref // condition/template name -> last value of that key
	Condition *pyexpr.Expr   // nil: always
	For       time.Duration
	Actions   []ActionSpec
	// UsesPrevious: the condition, a template or a handler reads
	// "previous", so the task keeps each triggering key's last value.
	UsesPrevious bool
	stateDef     string // what its saved state belongs to (state.go)
}

// ActionSpec is one handler call of a task.
type ActionSpec struct {
	Handler string
	Params  map[string]any
}

// eventVars are the names a task or forward gets from the event.
var eventVars = handler.EventVars

// Load reads path (automation.yaml). A missing file is (nil, nil):
// automation is off. Every problem is reported with its path.
func Load(path string) (*Config, *spec.Problems, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("automation: %w", err)
	}
	cfg, ps := Parse(path, raw)
	return cfg, ps, ps.Err()
}

// Parse checks raw, the text of the file at path.
func Parse(path string, raw []byte) (*Config, *spec.Problems) {
	ps := &spec.Problems{}
	name := filepath.Base(path)
	var doc any
	var tree yaml.Node
	err := yaml.Unmarshal(raw, &tree)
	if err == nil && len(tree.Content) > 0 {
		err = tree.Decode(&doc)
	}
	if err != nil {
		ps.Errorf(name, "", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, ps
	}
	// Each problem names its line too: an operator reloading an edited
	// file goes straight to it.
	defer func() {
		for i := range ps.List {
			if l := lineOf(&tree, ps.List[i].Path); l > 0 {
				ps.List[i].File = fmt.Sprintf("%s:%d", name, l)
			}
		}
	}()
	if doc == nil {
		doc = map[string]any{}
	}
	m, ok := normalize(doc).(map[string]any)
	if !ok {
		ps.Errorf(name, "", "want a mapping at the top, got %T", doc)
		return nil, ps
	}
	root := spec.New(ps, name, "", m)
	cfg := &Config{File: path}
	cfg.Queue = parseQueue(root.Obj("queue"), root, path)
	names := map[string]string{}
	unique := func(o *spec.Obj, what string) string {
		n := o.RequiredStr("name")
		if prev, dup := names[n]; dup && n != "" {
			o.Errorf("name", "%q is already the name of %s", n, prev)
		}
		names[n] = what + " " + o.Path()
		return n
	}
	for _, o := range root.List("forwards") {
		f := &Forward{Name: unique(o, "forward"), Enabled: o.Bool("enabled", true)}
		f.Source = parseRef(o, "source")
		f.Target = parseRef(o, "target")
		if src := o.Str("expression", ""); src != "" {
			f.Expression = compile(o, "expression", src, []string{"value", "device", "key", "ts"})
		}
		o.Done()
		cfg.Forwards = append(cfg.Forwards, f)
	}
	site := root.Obj("location")
	for _, o := range root.List("tasks") {
		cfg.Tasks = append(cfg.Tasks, parseTask(o, unique(o, "task"), filepath.Dir(path)))
	}
	placeSun(cfg.Tasks, site, ps, name)
	root.Done()
	return cfg, ps
}

func parseQueue(o *spec.Obj, root *spec.Obj, path string) QueueConfig {
	q := QueueConfig{RetryMin: time.Second, RetryMax: 5 * time.Minute, Expire: 24 * time.Hour, Workers: 4,
		Dir: filepath.Join(filepath.Dir(path), "automation-queue")}
	if o == nil {
		return q
	}
	q.Memory = o.Bool("memory", false)
	if d := o.Str("dir", ""); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join(filepath.Dir(path), d)
		}
		q.Dir = d
	}
	q.RetryMin = duration(o, "retryMin", q.RetryMin)
	q.RetryMax = duration(o, "retryMax", q.RetryMax)
	if q.RetryMax < q.RetryMin {
		o.Errorf("retryMax", "%s is shorter than retryMin %s", q.RetryMax, q.RetryMin)
	}
	q.Expire = duration(o, "expire", q.Expire)
	q.Workers = int(o.IntRange("workers", int64(q.Workers), 1, 64))
	o.Done()
	return q
}

// dir is the file's directory, where relative file params are read.
func parseTask(o *spec.Obj, name, dir string) *Task {
	t := &Task{Name: name, Enabled: o.Bool("enabled", true), Vars: map[string]Ref{}, stateDef: stateDef(o.Raw())}
	known := append([]string(nil), eventVars...)
	if v := o.Obj("vars"); v != nil {
		for _, k := range sortedKeys(v.Raw()) {
			if !isIdent(k) || contains(eventVars, k) {
				v.Errorf(k, "%q cannot be a variable name (want a Python identifier other than %s)", k, strings.Join(eventVars, ", "))
				continue
			}
			t.Vars[k] = parseRef(v, k)
			known = append(known, k)
		}
	}
	tr := o.Obj("trigger")
	if tr == nil {
		o.Errorf("trigger", "is required (event, every, cron or sun)")
	} else {
		t.Trigger = parseTrigger(tr)
	}
	if src := o.Str("condition", ""); src != "" {
		t.Condition = compile(o, "condition", src, known)
	}
	t.For = duration(o, "for", 0)
	acts := o.List("actions")
	if len(acts) == 0 {
		o.Errorf("actions", "is required: at least one action")
	}
	for _, a := range acts {
		t.Actions = append(t.Actions, parseAction(a, known, dir))
	}
	t.UsesPrevious = t.Condition != nil && contains(t.Condition.Names(), "previous")
	for _, a := range t.Actions {
		f, ok := handler.Lookup(a.Handler)
		if ok {
			if r, ok := f(handler.Env{}).(handler.EventReader); ok && r.ReadsEvent() {
				t.UsesPrevious = true
			}
		}
		if mentions(a.Params, "previous") {
			t.UsesPrevious = true
		}
	}
	o.Done()
	return t
}

func parseTrigger(o *spec.Obj) Trigger {
	var t Trigger
	set := 0
	if s := o.Str("event", ""); s != "" {
		set++
		p, err := bus.ParsePattern(s)
		if err != nil {
			o.Errorf("event", "%v", err)
		} else {
			t.Event = &p
		}
	}
	if o.Has("every") {
		set++
		t.Every = duration(o, "every", 0)
		if t.Every <= 0 {
			o.Errorf("every", "must be a positive duration such as \"10s\"")
		}
	}
	t.Location = time.Local
	if tz := o.Str("timezone", ""); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			o.Errorf("timezone", "%q is not a time zone (want an IANA name such as \"Europe/Berlin\")", tz)
		} else {
			t.Location = loc
		}
	}
	if s := o.Str("cron", ""); s != "" {
		set++
		t.CronText = s
		sched, err := cronParser.Parse(s)
		if err != nil {
			o.Errorf("cron", "%q: %v (want seconds minutes hours day-of-month month day-of-week)", s, err)
		} else {
			t.Cron = sched
		}
	}
	if o.Has("sun") {
		set++
		t.Sun = parseSun(o)
	}
	t.Missed = o.Enum("missed", MissedSkip, MissedSkip, MissedRunOnce)
	if set != 1 {
		o.Errorf("", "want exactly one of event, every, cron and sun")
	}
	o.Done()
	return t
}

// cronParser takes six fields (seconds first); "@every 1h" and "@daily"
// descriptors too. The time zone comes from the trigger's timezone key or
// a CRON_TZ= prefix.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func parseAction(o *spec.Obj, vars []string, dir string) ActionSpec {
	a := ActionSpec{Handler: o.RequiredStr("handler")}
	if p := o.Obj("params"); p != nil {
		a.Params = p.Raw()
		p.Known(sortedKeys(p.Raw())...)
	}
	if a.Params == nil {
		a.Params = map[string]any{}
	}
	if a.Handler != "" {
		f, ok := handler.Lookup(a.Handler)
		if !ok {
			hint := ""
			if c := spec.Closest(a.Handler, handler.Names()); c != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", c)
			}
			o.Errorf("handler", "%q is not a handler%s; known: %s", a.Handler, hint, strings.Join(handler.Names(), ", "))
		} else {
			for _, err := range f(handler.Env{Dir: dir}).Validate(a.Params) {
				o.Errorf("", "%v", err)
			}
		}
	}
	for _, err := range checkTemplates(a.Params, "params", vars) {
		o.Errorf("", "%v", err)
	}
	o.Done()
	return a
}

// mentions reports whether a param of v holds a {{name}} placeholder.
func mentions(v any, name string) bool {
	switch x := v.(type) {
	case string:
		for _, m := range placeholder.FindAllStringSubmatch(x, -1) {
			if m[1] == name {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if mentions(e, name) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if mentions(e, name) {
				return true
			}
		}
	}
	return false
}

func parseRef(o *spec.Obj, key string) Ref {
	s := o.RequiredStr(key)
	if s == "" {
		return Ref{}
	}
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		o.Errorf(key, "%q is not device.key", s)
		return Ref{}
	}
	return Ref{Device: s[:i], Key: s[i+1:]}
}

func compile(o *spec.Obj, key, src string, vars []string) *pyexpr.Expr {
	e, err := pyexpr.Compile(src, pyexpr.Options{Vars: vars})
	if err != nil {
		o.Errorf(key, "%v (variables: %s)", err, strings.Join(vars, ", "))
		return nil
	}
	return e
}

// duration reads a Go duration ("30s", "1h30m") or a number of seconds.
func duration(o *spec.Obj, key string, def time.Duration) time.Duration {
	v, ok := o.Any(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case float64:
		if x < 0 || math.IsNaN(x) || x > math.MaxInt64/float64(time.Second) {
			o.Errorf(key, "%v is not a duration", x)
			return def
		}
		return time.Duration(x * float64(time.Second))
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			if f, ferr := strconv.ParseFloat(x, 64); ferr == nil && f >= 0 {
				return time.Duration(f * float64(time.Second))
			}
			o.Errorf(key, "%q is not a duration (want \"30s\", \"5m\" or seconds)", x)
			return def
		}
		if d < 0 {
			o.Errorf(key, "%q is negative", x)
			return def
		}
		return d
	}
	o.Errorf(key, "%v is not a duration", v)
	return def
}

// normalize makes YAML's decoded numbers float64, as spec expects of JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return v
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// lineOf is the line of the YAML node at a problem's path
// ("tasks[0].trigger.cron"), or of the deepest part of it the document has.
func lineOf(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for path != "" && n != nil {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
			continue
		}
		var next *yaml.Node
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			i, err := strconv.Atoi(path[1:max(end, 1)])
			if end < 0 || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				break
			}
			next, path = n.Content[i], path[end+1:]
			line = next.Line
		} else {
			path = strings.TrimPrefix(path, ".")
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			key := path[:end]
			if n.Kind != yaml.MappingNode {
				break
			}
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == key {
					next = n.Content[j+1]
					line = n.Content[j].Line
					break
				}
			}
			path = path[end:]
		}
		n = next
	}
	if line == 0 && n != nil {
		line = n.Line
	}
	return line
}
