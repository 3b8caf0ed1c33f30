package jsonconv

import (
	"errors"
	"time"

	"github.com/industryos/gateway/protocols/kit/script"
)

// Env is what building a converter may need from its connector.
type Env struct {
	// Dir is the connector file's directory: a relative script path
	// starts there.
	Dir string
	// Print receives a script's print() lines; nil discards them.
	Print func(file, msg string)
}

// ScriptConverter runs a mapping's Starlark script (protocols/kit/script).
type ScriptConverter struct {
	filter string
	s      *script.Script
}

// NewScriptConverter loads the mapping's script. A script that does not
// compile is a *script.CompileError (errors.Is script.ErrCompile), which
// names the file, line and column.
func NewScriptConverter(m *Mapping, env Env) (*ScriptConverter, error) {
	s, err := script.Load(script.Path(env.Dir, m.Converter.Script), script.Options{Config: m.Converter.ExtensionConfig, Print: env.Print})
	if err != nil {
		return nil, err
	}
	if !s.HasUplink() {
		return nil, &script.CompileError{File: s.File, Msg: "defines no uplink(msg), which a mapping's converter needs"}
	}
	return &ScriptConverter{filter: m.TopicFilter, s: s}, nil
}

// Script is the loaded script, for its counters.
func (c *ScriptConverter) Script() *script.Script { return c.s }

// Convert implements Converter. A failed call (the script raised or ran
// out of steps) is a ConvertError (ErrMalformed) naming the script's file
// and line.
func (c *ScriptConverter) Convert(topic string, payload []byte, now time.Time) ([]Converted, error) {
	rs, err := c.s.Uplink(script.Message{Payload: payload, Topic: topic, Now: now})
	if err != nil {
		return nil, malformed(c.filter, "script", err)
	}
	out := make([]Converted, len(rs))
	for i, r := range rs {
		out[i] = Converted{Device: r.Device, Profile: r.Profile, Ts: r.Ts, Telemetry: r.Telemetry, Attributes: r.Attributes}
	}
	return out, nil
}

// IsScriptError reports whether err is a script that does not load, which
// belongs in the config problems at the converter's "script" key.
func IsScriptError(err error) bool { return errors.Is(err, script.ErrCompile) }
