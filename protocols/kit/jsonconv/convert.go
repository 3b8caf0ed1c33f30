package jsonconv

import (
	"errors"
	"fmt"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyre"
)

// Converted is what one message yields for one device.
type Converted struct {
	Device     string
	Profile    string
	Ts         int64 // unix milliseconds
	Telemetry  []protocols.Datapoint
	Attributes []protocols.Datapoint
	// Pooled says that Telemetry and Attributes are arrays of their own
	// that nothing else holds (from protocols.MakeDatapoints, or fresh): a
	// source may hand them on as a pooled Push (protocols.Push.Pooled).
	Pooled bool
}

// Converter turns one MQTT message into device data. A converter may return
// results together with an error: the results are what could be converted,
// the error describes what was skipped (a missing key, a bad value).
type Converter interface {
	Convert(topic string, payload []byte, now time.Time) ([]Converted, error)
}

// ErrMalformed is matched by errors about a payload the mapping cannot read.
var ErrMalformed = errors.New("malformed payload")

// ErrNoConverter means a mapping names a custom converter this build does not have.
var ErrNoConverter = errors.New("no such converter")

// NoConverterError is ErrNoConverter naming the converter, without
// repeating the sentinel's text.
type NoConverterError string

func (n NoConverterError) Error() string {
	return fmt.Sprintf("custom converter %q is not built in (upstream's Python extensions do not run here)", string(n))
}

// Is makes every NoConverterError an ErrNoConverter.
func (n NoConverterError) Is(target error) bool { return target == ErrNoConverter }

// NewConverter builds the converter a mapping asks for; a script path is
// taken as it is written (see NewConverterEnv).
func NewConverter(m *Mapping) (Converter, error) { return NewConverterEnv(m, Env{}) }

// NewConverterEnv builds the converter a mapping asks for, in its
// connector's environment. A custom or script converter with a script
// runs the script; a custom one without runs the registered Go converter.
func NewConverterEnv(m *Mapping, env Env) (Converter, error) {
	switch m.Converter.Type {
	case TypeJSON, "":
		return NewJSONConverter(m)
	case TypeBytes:
		return NewBytesConverter(m)
	case TypeScript:
		return NewScriptConverter(m, env)
	case TypeCustom:
		if m.Converter.Script != "" {
			return NewScriptConverter(m, env)
		}
		f := lookupConverter(m.Converter.Extension)
		if f == nil {
			return nil, NoConverterError(m.Converter.Extension)
		}
		c, err := f(m.Converter.ExtensionConfig)
		if err != nil {
			return nil, fmt.Errorf("mapping %q: custom converter %q: %w", m.TopicFilter, m.Converter.Extension, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("mapping %q: unknown converter type %q", m.TopicFilter, m.Converter.Type)
}

// topicMatch applies upstream's rule (re.search): the last capturing group
// that took part, or the whole match when none did; no match is reported as
// not found, a match timeout as an error.
func topicMatch(re *pyre.Regexp, topic string) (string, bool, error) {
	return re.LastGroup(topic)
}

// malformed wraps err with the mapping's identity.
func malformed(filter, what string, err error) error {
	return &ConvertError{TopicFilter: filter, What: what, Err: err}
}

// ConvertError names the mapping and the key a payload failed on.
type ConvertError struct {
	TopicFilter string
	What        string
	Err         error
}

func (e *ConvertError) Error() string {
	return fmt.Sprintf("mapping %q: %s: %v", e.TopicFilter, e.What, e.Err)
}

func (e *ConvertError) Unwrap() error { return e.Err }

// Is makes every ConvertError an ErrMalformed.
func (e *ConvertError) Is(target error) bool { return target == ErrMalformed }

// merge folds results for the same device and timestamp together, keeping
// first-seen order so output is deterministic.
func merge(in []Converted) []Converted {
	if len(in) < 2 {
		return in
	}
	out := in[:0:0]
	for _, c := range in {
		found := false
		for i := range out {
			if out[i].Device == c.Device && out[i].Ts == c.Ts {
				out[i].Telemetry = append(out[i].Telemetry, c.Telemetry...)
				out[i].Attributes = append(out[i].Attributes, c.Attributes...)
				found = true
				break
			}
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}
