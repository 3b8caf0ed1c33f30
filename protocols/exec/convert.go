package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/industryos/gateway/protocols"
)

// ErrMalformed is matched by errors about a stdout line that is not a
// record.
var ErrMalformed = errors.New("malformed line")

// Record is one stdout line: a device's data, or the reply to a command.
type Record struct {
	Device     string
	Profile    string // "default" when the line gives none
	Ts         int64  // unix milliseconds; 0: when the line was read
	Telemetry  []protocols.Datapoint
	Attributes []protocols.Datapoint
	// A reply ({"id": n, "reply": ...} or {"id": n, "error": "..."})
	// answers the command with that id.
	IsReply bool
	ID      int64
	Reply   json.RawMessage
	Error   string
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// jsonKind names what a valid JSON text that is no object is ("" when line is
// not valid JSON): the program's author needs that, not the decoder's Go types.
func jsonKind(line []byte) string {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || !json.Valid(t) {
		return ""
	}
	switch t[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return ""
	}
	return "a number"
}

// ParseLine reads one stdout line. Errors match ErrMalformed.
func ParseLine(line []byte) (Record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		if kind := jsonKind(line); kind != "" {
			return Record{}, malformed("not a JSON object but %s", kind)
		}
		return Record{}, malformed("not a JSON object: %v", err)
	}
	r := Record{Profile: "default"}
	if raw, ok := m["id"]; ok {
		r.IsReply = true
		if err := json.Unmarshal(raw, &r.ID); err != nil {
			return Record{}, malformed("id %s is not an integer", raw)
		}
		for k := range m {
			if k != "id" && k != "reply" && k != "error" {
				return Record{}, malformed("a reply has id, reply and error, not %q", k)
			}
		}
		if raw := m["reply"]; raw != nil {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return Record{}, malformed("reply: %v", err)
			}
			r.Reply = b.Bytes()
		}
		if raw, ok := m["error"]; ok {
			if err := json.Unmarshal(raw, &r.Error); err != nil || r.Error == "" {
				return Record{}, malformed("error %s is not a non-empty string", raw)
			}
		}
		if r.Reply == nil && r.Error == "" {
			r.Reply = json.RawMessage(`{"success":true}`)
		}
		return r, nil
	}
	for k, raw := range m {
		var err error
		switch k {
		case "device":
			err = json.Unmarshal(raw, &r.Device)
		case "profile":
			err = json.Unmarshal(raw, &r.Profile)
		case "ts":
			if r.Ts, err = strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64); err != nil {
				err = fmt.Errorf("%s is not Unix milliseconds (an integer)", raw)
			}
		case "telemetry":
			r.Telemetry, err = datapoints(raw)
		case "attributes":
			r.Attributes, err = datapoints(raw)
		default:
			return Record{}, malformed("unknown key %q (a record has device, profile, ts, telemetry, attributes; a reply id, reply, error)", k)
		}
		if err != nil {
			return Record{}, malformed("%s: %v", k, err)
		}
	}
	if r.Device == "" {
		return Record{}, malformed("no \"device\"")
	}
	if len(r.Telemetry) == 0 && len(r.Attributes) == 0 {
		return Record{}, malformed("device %q: neither telemetry nor attributes", r.Device)
	}
	return r, nil
}

// datapoints reads {"key": value, ...}, keys sorted.
func datapoints(raw json.RawMessage) ([]protocols.Datapoint, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not an object of key: value")
	}
	out := make([]protocols.Datapoint, 0, len(m))
	for k, v := range m {
		if k == "" {
			return nil, fmt.Errorf("empty key")
		}
		val, err := value(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
		out = append(out, protocols.Datapoint{Key: k, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// value is a JSON value as a typed value: numbers without a fraction or
// exponent are integers, objects and lists stay JSON.
func value(raw json.RawMessage) (protocols.Value, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '{', '[':
		return protocols.JSON(raw)
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return protocols.String(s), err
	case 't', 'f':
		var b bool
		err := json.Unmarshal(raw, &b)
		return protocols.Bool(b), err
	case 'n':
		return protocols.Value{}, fmt.Errorf("null is not a value")
	}
	s := string(raw)
	if !bytes.ContainsAny(raw, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return protocols.Int(i), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return protocols.Uint(u), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return protocols.Value{}, fmt.Errorf("%s is not a number", s)
	}
	return protocols.Float(f), nil
}
