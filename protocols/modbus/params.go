package modbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ErrParams means an rpc's params are malformed or ask for a read or write
// that cannot be done. Errors carrying it say what is wrong in their text.
var ErrParams = errors.New("modbus: bad rpc params")

func paramErrorf(format string, a ...any) error {
	return &tagged{ErrParams, fmt.Errorf(format, a...)}
}

// tagged puts a sentinel in an error's chain without repeating the
// sentinel's text, which would only stutter in an rpc reply.
type tagged struct{ tag, err error }

func (e *tagged) Error() string   { return e.err.Error() }
func (e *tagged) Unwrap() []error { return []error{e.tag, e.err} }

// ReservedExample is the params string of upstream's reserved get, quoted in
// messages so an operator can see the expected shape.
const ReservedExample = "type=16int;functionCode=3;objectsCount=1;address=2;"

// ParseReservedParams splits the params string of the reserved get and set
// methods ("type=16int;functionCode=3;objectsCount=1;address=2;") into its
// keys and values. Spaces around keys and values and a missing final ';' are
// tolerated; a part that is not key=value, an empty key or value and a
// repeated key are errors.
func ParseReservedParams(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			return nil, paramErrorf("%q is not key=value (want e.g. %q)", part, ReservedExample)
		case k == "":
			return nil, paramErrorf("%q has no key", part)
		case v == "":
			return nil, paramErrorf("%s has no value", k)
		}
		if _, dup := out[k]; dup {
			return nil, paramErrorf("%s is given twice", k)
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil, paramErrorf("params are empty (want e.g. %q)", ReservedExample)
	}
	return out, nil
}

// splitSetValue separates upstream's second spelling of a set value, a last
// part without '=' ("type=16int;functionCode=6;address=2; 77"), from the
// key=value parts.
func splitSetValue(s string) (params, value string, ok bool) {
	t := strings.TrimRight(strings.TrimSpace(s), "; \t")
	i := strings.LastIndexByte(t, ';')
	if i < 0 {
		return s, "", false
	}
	last := strings.TrimSpace(t[i+1:])
	if last == "" || strings.Contains(last, "=") {
		return s, "", false
	}
	return t[:i], last, true
}

// reservedTypes is upstream's validation regex for ad-hoc reads and writes;
// legacy aliases stay a matter of configured keys.
var reservedTypes = map[string]DataType{
	"string": TypeString, "bytes": TypeBytes, "bits": TypeBits,
	"16int": TypeInt16, "16uint": TypeUint16, "16float": TypeFloat16,
	"32int": TypeInt32, "32uint": TypeUint32, "32float": TypeFloat32,
	"64int": TypeInt64, "64uint": TypeUint64, "64float": TypeFloat64,
}

const reservedTypeList = "string, bytes, bits, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float"

// op says which function codes a request may use.
type op int

const (
	opRead op = iota + 1
	opWrite
	opAny
)

// command is a validated ad-hoc read or write (reserved get/set, connector rpc).
type command struct {
	typ     DataType
	fc      int
	address int
	// count is objectsCount; 0 lets the type decide.
	count int
	// value is the JSON to write, echoed in the reply; nil for reads.
	value json.RawMessage
}

func (c *command) write() bool { return c.fc >= 5 }

var countKeys = []string{"objectsCount", "registersCount", "registerCount"}

var reservedKeys = map[string]bool{"type": true, "functionCode": true, "address": true, "value": true,
	"objectsCount": true, "registersCount": true, "registerCount": true}

// parseReserved validates the params string of the reserved method (get or set).
func parseReserved(method, s string) (command, error) {
	var setValue string
	var hasSetValue bool
	if method == "set" {
		s, setValue, hasSetValue = splitSetValue(s)
	}
	kv, err := ParseReservedParams(s)
	if err != nil {
		return command{}, err
	}
	allowed := "type, functionCode, objectsCount, address"
	if method == "set" {
		allowed += ", value"
	}
	p := make(map[string]json.RawMessage, len(kv)+1)
	var unknown []string
	for k, v := range kv {
		if !reservedKeys[k] || k == "value" && method != "set" {
			unknown = append(unknown, k)
			continue
		}
		b, _ := json.Marshal(v) // a string always marshals
		p[k] = b
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return command{}, paramErrorf("unknown key %s (want %s)", quoteList(unknown), allowed)
	}
	if hasSetValue {
		if _, dup := p["value"]; dup {
			return command{}, paramErrorf("the value is given twice (value=%s and %q)", kv["value"], setValue)
		}
		p["value"], _ = json.Marshal(setValue)
	}
	want := opRead
	if method == "set" {
		want = opWrite
	}
	return parseCommand(p, want)
}

// parseCommand validates the data keys of an ad-hoc request, collecting
// every problem.
func parseCommand(p map[string]json.RawMessage, want op) (command, error) {
	var c command
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	typeName, present, err := strField(p, "type")
	switch {
	case err != nil:
		bad("%v", err)
	case !present:
		bad("type is required (want one of: %s)", reservedTypeList)
	default:
		t, ok := reservedTypes[strings.ToLower(typeName)]
		if !ok {
			bad("type %q is not supported (want one of: %s)", typeName, reservedTypeList)
		}
		c.typ = t
	}

	fc, present, err := intField(p, "functionCode")
	switch {
	case err != nil:
		bad("%v", err)
	case !present:
		bad("functionCode is required")
	default:
		c.fc = int(fc)
		read := fc >= 1 && fc <= 4
		write := fc == 5 || fc == 6 || fc == 15 || fc == 16
		switch {
		case !read && !write:
			bad("functionCode %d is not supported (want 1, 2, 3, 4, 5, 6, 15 or 16)", fc)
			c.fc = 0
		case want == opRead && !read:
			bad("functionCode %d is not a read (want 1, 2, 3 or 4)", fc)
			c.fc = 0
		case want == opWrite && !write:
			bad("functionCode %d is not a write (want 5, 6, 15 or 16)", fc)
			c.fc = 0
		}
	}

	addr, present, err := intField(p, "address")
	switch {
	case err != nil:
		bad("%v", err)
	case !present:
		bad("address is required")
	case addr < 0 || addr > 65535:
		bad("address %d is out of range (want 0..65535)", addr)
	default:
		c.address = int(addr)
	}

	for _, key := range countKeys {
		if _, ok := p[key]; !ok {
			continue
		}
		n, present, err := intField(p, key)
		switch {
		case err != nil:
			bad("%v", err)
		case !present:
		case n < 1 || n > maxReadBits:
			bad("%s %d is out of range (want 1..%d)", key, n, maxReadBits)
		default:
			c.count = int(n)
		}
		// The first spelling wins, as in the config parser.
		break
	}

	if raw, ok := p["value"]; ok && !isNull(raw) {
		c.value = raw
	}
	if c.fc != 0 && c.write() && c.value == nil {
		bad("value is required for functionCode %d", c.fc)
	}
	if !c.write() {
		c.value = nil
	}

	if c.typ != TypeInvalid && c.fc != 0 {
		if msg := c.fitCount(); msg != "" {
			bad("%s", msg)
		}
	}
	if len(problems) > 0 {
		return command{}, paramErrorf("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

// fitCount checks objectsCount against the type and, like the config
// parser, moves a single-object write code to its multiple-object twin when
// the value needs more than one object.
func (c *command) fitCount() string {
	if c.typ.numeric() {
		need := (&Codec{Type: c.typ, FunctionCode: c.fc}).RequestCount()
		if c.count != 0 && c.count != need {
			unit := "register"
			if isBitFunction(c.fc) {
				unit = "bit"
			}
			if need != 1 {
				unit += "s"
			}
			return fmt.Sprintf("objectsCount %d does not fit %s (want %d %s)", c.count, c.typ, need, unit)
		}
		c.count = 0
	}
	n := (&Codec{Type: c.typ, FunctionCode: c.fc, Count: c.count}).RequestCount()
	switch {
	case c.fc == 6 && n > 1:
		c.fc = 16
	case c.fc == 5 && n > 1:
		c.fc = 15
	}
	if !isBitFunction(c.fc) && n > maxReadRegisters {
		return fmt.Sprintf("objectsCount %d is more than one request can carry (max %d registers)", n, maxReadRegisters)
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return t == "" || t == "null"
}

// strField reads a string; numbers are taken in their text form.
func strField(p map[string]json.RawMessage, key string) (string, bool, error) {
	raw, ok := p[key]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		s = strings.TrimSpace(s)
		if s == "" {
			return "", false, nil
		}
		return s, true, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true, nil
	}
	return "", false, fmt.Errorf("%s: %s is not a string", key, compact(raw))
}

// intField reads an integer given as a JSON number or, as the reserved
// string form gives everything, as a numeric string.
func intField(p map[string]json.RawMessage, key string) (int64, bool, error) {
	raw, ok := p[key]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	text := strings.TrimSpace(string(raw))
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = strings.TrimSpace(s)
	}
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return i, true, nil
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), true, nil
	}
	return 0, false, fmt.Errorf("%s: %s is not an integer", key, compact(raw))
}

// compact renders raw JSON for a message, shortened so a huge params value
// cannot flood a reply or a log line.
func compact(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}
