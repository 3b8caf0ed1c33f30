package exec

import (
	_ "embed"
	"sort"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Sample is a complete connector file (sample.json), shown in the README.
//
//go:embed sample.json
var Sample []byte

// file names problems the way `iotgw check` prints them.
const file = "exec.json"

// Config is a parsed connector file.
type Config struct {
	Name string
	// Command is the program and its arguments (no shell: write
	// ["/bin/sh", "-c", "..."] for one).
	Command []string
	// WorkingDir is where it runs, relative to the connector file's
	// directory; empty: that directory.
	WorkingDir string
	// Env is added to the gateway's environment, sorted by key.
	Env                      []string
	RestartDelay, MaxRestart time.Duration
	Stable                   time.Duration
	RPCTimeout               time.Duration
	MaxLine                  int
	Report                   protocols.ReportStrategy
}

var rootFields = spec.Section{Path: "", Fields: []spec.Field{
	{Key: "name", Type: spec.TypeString, Default: "Exec Connector", Doc: "connector name when the main config gives none"},
	{Key: "command", Type: spec.TypeList, Required: true, Doc: "the program and its arguments, as a list of strings (no shell)"},
	{Key: "workingDir", Type: spec.TypeString, Default: "", Doc: "working directory, relative to the connector file's; default that directory"},
	{Key: "env", Type: spec.TypeObject, Doc: "variables added to the gateway's environment"},
	{Key: "restartDelay", Type: spec.TypeDuration, Default: time.Second,
		Dur: spec.Dur{Unit: time.Millisecond, MinExclusive: true}, Doc: "first delay before restarting a program that exited; doubles up to maxRestartDelay"},
	{Key: "maxRestartDelay", Type: spec.TypeDuration, Default: time.Minute,
		Dur: spec.Dur{Unit: time.Millisecond, MinExclusive: true}, Doc: "longest delay between restarts"},
	{Key: "stableAfter", Type: spec.TypeDuration, Default: 30 * time.Second,
		Dur: spec.Dur{Unit: time.Millisecond, MinExclusive: true}, Doc: "a run this long resets the restart delay"},
	{Key: "rpcTimeout", Type: spec.TypeDuration, Default: 10 * time.Second,
		Dur: spec.Dur{MinExclusive: true, Max: 3600}, Doc: "how long an RPC waits for the program's reply line"},
	{Key: "maxLineBytes", Type: spec.TypeInteger, Default: int64(1 << 20), Min: 64, Max: 64 << 20, Doc: "longest stdout line; a longer one is counted as malformed and skipped"},
	{Key: "reportStrategy", Type: spec.TypeObject, Doc: "report strategy of the program's devices"},
}}

// Sections are the field tables in README order.
func Sections() []spec.Section { return []spec.Section{rootFields} }

// Parse reads a connector file's root object; problems go to o.Problems().
func Parse(o *spec.Obj) *Config {
	c := &Config{
		Name:         rootFields.Str(o, "name"),
		WorkingDir:   rootFields.Str(o, "workingDir"),
		RestartDelay: rootFields.Duration(o, "restartDelay"),
		MaxRestart:   rootFields.Duration(o, "maxRestartDelay"),
		Stable:       rootFields.Duration(o, "stableAfter"),
		RPCTimeout:   rootFields.Duration(o, "rpcTimeout"),
		MaxLine:      int(rootFields.Int(o, "maxLineBytes")),
	}
	o.Known("id", "type", "logLevel", "enableRemoteLogging", "configVersion")
	c.Report = report.Parse(o)
	if !o.Has("command") {
		o.Errorf("command", "is required: the program and its arguments, e.g. [\"/usr/bin/python3\", \"reader.py\"]")
	} else if raw, _ := o.Any("command"); raw != nil {
		list, ok := raw.([]any)
		if !ok || len(list) == 0 {
			o.Errorf("command", "%s is not a non-empty list of strings (the program and its arguments)", spec.Describe(raw))
		}
		for _, a := range list {
			s, ok := a.(string)
			if !ok {
				o.Errorf("command", "%s is not a list of strings", spec.Describe(raw))
				c.Command = nil
				break
			}
			c.Command = append(c.Command, s)
		}
		if len(c.Command) > 0 && c.Command[0] == "" {
			o.Errorf("command", "the program (its first item) is empty")
		}
	}
	if env := o.Obj("env"); env != nil {
		for k, v := range env.Raw() {
			env.Known(k)
			s, ok := v.(string)
			if !ok {
				env.Errorf(k, "%s is not a string", spec.Describe(v))
				continue
			}
			c.Env = append(c.Env, k+"="+s)
		}
		sort.Strings(c.Env)
		env.Done()
	}
	if c.MaxRestart < c.RestartDelay {
		o.Errorf("maxRestartDelay", "%v is shorter than restartDelay %v", c.MaxRestart, c.RestartDelay)
	}
	o.Done()
	return c
}
