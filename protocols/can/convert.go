package can

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/pyexpr"
)

// Order is a byte order.
type Order uint8

const (
	BigEndian Order = iota
	LittleEndian
)

func (o Order) String() string {
	if o == LittleEndian {
		return "little"
	}
	return "big"
}

// Type is a value type of the uplink `value` spec.
type Type uint8

const (
	TypeBool Type = iota + 1
	TypeInt
	TypeFloat
	TypeDouble
	TypeString
	TypeRaw
)

// typeNames are the upstream spellings, in the order error messages list them.
var typeNames = []string{"bool", "boolean", "int", "long", "float", "double", "string", "raw"}

func typeOf(name string) (Type, bool) {
	switch name {
	case "bool", "boolean":
		return TypeBool, true
	case "int", "long":
		return TypeInt, true
	case "float":
		return TypeFloat, true
	case "double":
		return TypeDouble, true
	case "string":
		return TypeString, true
	case "raw":
		return TypeRaw, true
	}
	return 0, false
}

// Encodings are the text encodings supported for strings.
var encodingNames = []string{"ascii", "utf-8", "latin-1"}

func canonicalEncoding(s string) (string, bool) {
	switch strings.ToLower(strings.ReplaceAll(s, "_", "-")) {
	case "ascii", "us-ascii":
		return "ascii", true
	case "utf-8", "utf8":
		return "utf-8", true
	case "latin-1", "latin1", "iso-8859-1":
		return "latin-1", true
	}
	return "", false
}

// ValueSpec says where a value sits in the frame data and how to read it.
type ValueSpec struct {
	Start int
	// Length in bytes; -1 means "to the end of the data".
	Length int
	Order  Order
	Type   Type
	// TypeName is the spelling from the config (bool, boolean, int, long, ...).
	TypeName string
	Signed   bool
	Encoding string // string type only: ascii, utf-8 or latin-1
}

// CommandSpec is the `command` filter: the bytes at Start..Start+Length, read
// as an unsigned integer in Order, must equal Value.
type CommandSpec struct {
	Start  int
	Length int
	Order  Order
	Value  uint64
}

// span returns the byte range of a spec in data of length n.
func span(start, length, n int) (int, int, error) {
	if length < 0 {
		if start > n {
			return 0, 0, fmt.Errorf("%w: value starts at byte %d of a %d-byte frame", ErrConvert, start, n)
		}
		return start, n, nil
	}
	if start+length > n {
		return 0, 0, fmt.Errorf("%w: value at bytes %d..%d is outside the %d-byte frame", ErrConvert, start, start+length-1, n)
	}
	return start, start + length, nil
}

func readUint(b []byte, o Order) uint64 {
	var u uint64
	if o == BigEndian {
		for _, c := range b {
			u = u<<8 | uint64(c)
		}
		return u
	}
	for i := len(b) - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	return u
}

// Match reports whether data carries this command.
func (c *CommandSpec) Match(data []byte) bool {
	if c.Start+c.Length > len(data) {
		return false
	}
	return readUint(data[c.Start:c.Start+c.Length], c.Order) == c.Value
}

// Extract reads the value described by s from data.
func (s *ValueSpec) Extract(data []byte) (protocols.Value, error) {
	switch s.Type {
	case TypeFloat, TypeDouble:
		size := 4
		if s.Type == TypeDouble {
			size = 8
		}
		// Upstream unpacks 4 or 8 bytes at start whatever length says.
		if s.Start+size > len(data) {
			return protocols.Value{}, fmt.Errorf("%w: %s at bytes %d..%d is outside the %d-byte frame", ErrConvert, s.TypeName, s.Start, s.Start+size-1, len(data))
		}
		b := data[s.Start : s.Start+size]
		var bits uint64
		if s.Order == BigEndian {
			if size == 4 {
				bits = uint64(binary.BigEndian.Uint32(b))
			} else {
				bits = binary.BigEndian.Uint64(b)
			}
		} else if size == 4 {
			bits = uint64(binary.LittleEndian.Uint32(b))
		} else {
			bits = binary.LittleEndian.Uint64(b)
		}
		if size == 4 {
			return protocols.Float(float64(math.Float32frombits(uint32(bits)))), nil
		}
		return protocols.Float(math.Float64frombits(bits)), nil
	}
	start, end, err := span(s.Start, s.Length, len(data))
	if err != nil {
		return protocols.Value{}, err
	}
	b := data[start:end]
	switch s.Type {
	case TypeBool:
		// Upstream: bool(can_data[start]).
		if len(b) == 0 {
			return protocols.Value{}, fmt.Errorf("%w: no byte for bool at %d", ErrConvert, start)
		}
		return protocols.Bool(b[0] != 0), nil
	case TypeInt:
		if len(b) == 0 || len(b) > 8 {
			return protocols.Value{}, fmt.Errorf("%w: integer of %d bytes (want 1..8)", ErrConvert, len(b))
		}
		u := readUint(b, s.Order)
		if s.Signed {
			shift := 64 - 8*uint(len(b))
			return protocols.Int(int64(u<<shift) >> shift), nil
		}
		if u > math.MaxInt64 {
			return protocols.Uint(u), nil
		}
		return protocols.Int(int64(u)), nil
	case TypeString:
		str, err := decodeString(b, s.Encoding)
		if err != nil {
			return protocols.Value{}, err
		}
		return protocols.String(str), nil
	case TypeRaw:
		return protocols.String(hex.EncodeToString(b)), nil
	}
	return protocols.Value{}, fmt.Errorf("%w: unknown value type %d", ErrConvert, s.Type)
}

func decodeString(b []byte, enc string) (string, error) {
	switch enc {
	case "", "ascii":
		for i, c := range b {
			if c >= 0x80 {
				return "", fmt.Errorf("%w: byte %#02x at %d is not ascii", ErrConvert, c, i)
			}
		}
		return string(b), nil
	case "utf-8":
		if !utf8.Valid(b) {
			return "", fmt.Errorf("%w: data is not valid utf-8", ErrConvert)
		}
		return string(b), nil
	case "latin-1":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	}
	return "", fmt.Errorf("%w: unknown encoding %q", ErrConvert, enc)
}

// Expression is a compiled `expression` or `dataExpression`: Python
// (Starlark, see protocols/pyexpr), or, for files written for this gateway
// before expressions were Python, a legacy expr-lang program.
type Expression struct {
	Source string
	py     *pyexpr.Expr
	// valueAt and canAt are the positions of `value` and `can_data` among
	// the uplink expression's variables (-1: not read).
	valueAt, canAt int
	legacy         *vm.Program
	usesCAN        bool
}

// Legacy reports whether the expression runs as expr-lang (deprecated).
func (e *Expression) Legacy() bool { return e.legacy != nil }

// uplinkVars are the names an uplink expression sees, as upstream.
var uplinkVars = []string{"value", "can_data"}

// legacyNote is the warning for expressions that only expr-lang accepts.
const legacyNote = "is not a Python expression (%s); it runs as a legacy expr-lang expression (deprecated: write Python, e.g. \"a if c else b\" for \"c ? a : b\", True/False)"

// compileUplink compiles an uplink expression over `value` and `can_data`.
// strict is upstream's strictEval: no built-in functions. warn is set when
// the expression only compiles as legacy expr-lang.
func compileUplink(src string, strict bool) (e *Expression, warn string, err error) {
	py, perr := pyexpr.Compile(src, pyexpr.Options{Vars: uplinkVars, Strict: strict})
	if perr == nil {
		return &Expression{Source: src, py: py, valueAt: slices.Index(py.Names(), "value"), canAt: slices.Index(py.Names(), "can_data")}, "", nil
	}
	opts := []expr.Option{expr.Env(legacyUplinkEnv{})}
	if strict {
		opts = append(opts, expr.DisableAllBuiltins())
	}
	if p, lerr := expr.Compile(src, opts...); lerr == nil {
		return &Expression{Source: src, legacy: p, usesCAN: strings.Contains(src, "can_data")}, fmt.Sprintf(legacyNote, pyMsg(perr)), nil
	}
	return nil, "", perr
}

// compileDownlink compiles a dataExpression; its variables are the fields
// of the attribute update ({value}) or the RPC params.
func compileDownlink(src string, strict bool) (e *Expression, warn string, err error) {
	py, perr := pyexpr.Compile(src, pyexpr.Options{Strict: strict})
	if perr == nil {
		return &Expression{Source: src, py: py}, "", nil
	}
	var opts []expr.Option
	if strict {
		opts = append(opts, expr.DisableAllBuiltins())
	}
	if p, lerr := expr.Compile(src, opts...); lerr == nil {
		return &Expression{Source: src, legacy: p}, fmt.Sprintf(legacyNote, pyMsg(perr)), nil
	}
	return nil, "", perr
}

// pyMsg is a compile error without the quoted source (the path names it).
func pyMsg(err error) string {
	var se *pyexpr.SyntaxError
	if errors.As(err, &se) {
		if se.Col > 0 {
			return fmt.Sprintf("column %d: %s", se.Col, se.Msg)
		}
		return se.Msg
	}
	return err.Error()
}

// legacyUplinkEnv is what a legacy uplink expression sees.
type legacyUplinkEnv struct {
	Value   any   `expr:"value"`
	CanData []int `expr:"can_data"`
}

func (e *Expression) evalLegacy(env any) (any, error) {
	out, err := expr.Run(e.legacy, env)
	if err != nil {
		return nil, fmt.Errorf("%w: expression %q: %s", ErrConvert, e.Source, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return out, nil
}

// uplink evaluates the expression over the extracted value and the frame data.
func (e *Expression) uplink(v protocols.Value, data []byte) (protocols.Value, error) {
	if e.py != nil {
		var args [2]pyexpr.Arg
		if e.valueAt >= 0 {
			args[e.valueAt].Value = v
		}
		if e.canAt >= 0 {
			args[e.canAt].Go = data
		}
		out, err := e.py.Eval(args[:len(e.py.Names())])
		if err != nil {
			return protocols.Value{}, fmt.Errorf("%w: %w", ErrConvert, err)
		}
		return out, nil
	}
	env := legacyUplinkEnv{Value: valueToAny(v)}
	if e.usesCAN {
		env.CanData = make([]int, len(data))
		for i, c := range data {
			env.CanData[i] = int(c)
		}
	}
	out, err := e.evalLegacy(env)
	if err != nil {
		return protocols.Value{}, err
	}
	return anyToValue(out)
}

// downlink evaluates a dataExpression over the data's fields. A Python
// float result is returned as float32 so it is sent as a 4-byte float even
// when integral, as upstream packs every float.
func (e *Expression) downlink(m map[string]any) (any, error) {
	if e.legacy != nil {
		return e.evalLegacy(exprEnv(m))
	}
	v, err := e.py.EvalMap(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConvert, err)
	}
	switch v.Kind {
	case protocols.KindBool:
		return v.I != 0, nil
	case protocols.KindInt:
		return v.I, nil
	case protocols.KindUint:
		return v.U, nil
	case protocols.KindFloat:
		return float32(v.F), nil
	case protocols.KindString:
		return v.S, nil
	}
	return nil, fmt.Errorf("%w: expression %q returned no value", ErrConvert, e.Source)
}

func valueToAny(v protocols.Value) any {
	switch v.Kind {
	case protocols.KindBool:
		return v.I != 0
	case protocols.KindInt:
		return int(v.I)
	case protocols.KindUint:
		return v.U
	case protocols.KindFloat:
		return v.F
	case protocols.KindString:
		return v.S
	}
	return nil
}

// anyToValue converts a legacy expression result.
func anyToValue(x any) (protocols.Value, error) {
	if v, ok := protocols.FromGo(x); ok {
		return v, nil
	}
	if x == nil {
		return protocols.Value{}, fmt.Errorf("%w: expression returned nil", ErrConvert)
	}
	return protocols.Value{}, fmt.Errorf("%w: expression returned %T, want a bool, number or string", ErrConvert, x)
}

// Convert decodes this key's value from frame data and applies its expression.
func (k *KeyConfig) Convert(data []byte) (protocols.Value, error) {
	v, err := k.Value.Extract(data)
	if err != nil || k.Expression == nil {
		return v, err
	}
	return k.Expression.uplink(v, data)
}

// Reading is one decoded value for one device key.
type Reading struct {
	Device *DeviceConfig
	Key    *KeyConfig
	Value  protocols.Value
}

// Decoder routes frames to the keys configured for their arbitration id.
// Like upstream, keys are selected by the id alone (not the extended flag);
// a node with a command layout sends each frame only to the keys of the
// command it carries, plus the node's keys without a command.
type Decoder struct {
	nodes map[uint32]*node
}

type node struct {
	cmd   *CommandSpec
	byCmd map[uint64][]*KeyConfig
	any   []*KeyConfig
}

// NewDecoder indexes cfg's attribute and timeseries keys.
func NewDecoder(cfg *Config) *Decoder {
	d := &Decoder{nodes: map[uint32]*node{}}
	for _, dev := range cfg.Devices {
		for _, list := range [][]*KeyConfig{dev.Attributes, dev.Timeseries} {
			for _, k := range list {
				n := d.nodes[k.NodeID]
				if n == nil {
					n = &node{byCmd: map[uint64][]*KeyConfig{}}
					d.nodes[k.NodeID] = n
				}
				if k.Command == nil {
					n.any = append(n.any, k)
					continue
				}
				if n.cmd == nil {
					n.cmd = k.Command
				}
				n.byCmd[k.Command.Value] = append(n.byCmd[k.Command.Value], k)
			}
		}
	}
	return d
}

// Decode appends the readings of frame f to out. matched is false when no key
// is configured for f (the caller counts those frames). Keys whose value
// cannot be decoded are skipped and their errors joined into err; the other
// keys of the frame are still decoded.
func (d *Decoder) Decode(f Frame, out []Reading) (_ []Reading, matched bool, err error) {
	var kerrs []keyError
	out, kerrs, matched = d.decode(f, out, nil)
	if len(kerrs) > 0 {
		errs := make([]error, len(kerrs))
		for i, ke := range kerrs {
			errs[i] = fmt.Errorf("%s key %q: %w", ke.key.Device.Name, ke.key.Key, ke.err)
		}
		err = errors.Join(errs...)
	}
	return out, matched, err
}

// keyError is one key's failed conversion.
type keyError struct {
	key *KeyConfig
	err error
}

// decode is Decode with the errors per key, appended to errs, so the
// connector can report each where it happened without allocating when
// nothing failed.
func (d *Decoder) decode(f Frame, out []Reading, errs []keyError) ([]Reading, []keyError, bool) {
	n := d.nodes[f.ID]
	if n == nil {
		return out, errs, false
	}
	do := func(keys []*KeyConfig) {
		for _, k := range keys {
			v, e := k.Convert(f.Data)
			if e != nil {
				errs = append(errs, keyError{k, e})
				continue
			}
			out = append(out, Reading{Device: k.Device, Key: k, Value: v})
		}
	}
	do(n.any)
	matched := len(n.any) > 0
	if n.cmd != nil && n.cmd.Start+n.cmd.Length <= len(f.Data) {
		keys := n.byCmd[readUint(f.Data[n.cmd.Start:n.cmd.Start+n.cmd.Length], n.cmd.Order)]
		do(keys)
		matched = matched || len(keys) > 0
	}
	return out, errs, matched
}

// ---- downlink ----

// DownlinkSpec is how an attribute update or RPC value becomes frame data
// (the data* fields shared by attributeUpdates, serverSideRpc and reserved set).
type DownlinkSpec struct {
	DataInHex      []byte // from config; wins over everything (nil when absent)
	DataExpression *Expression
	DataLength     int
	DataByteorder  Order
	DataSigned     bool
	DataEncoding   string
	DataBefore     []byte
	DataAfter      []byte
}

// Encode builds frame data from the incoming data: an attribute update passes
// {"value": v}; an RPC passes its params (an object, or a bare value that is
// treated as {"value": params}). Precedence as upstream: config dataInHex, then
// data.dataInHex, then dataExpression (over the data's fields), then data.value.
// A bool becomes one byte, an integer dataLength bytes (signed when dataSigned
// or negative), a non-integral number a 4-byte IEEE float, a string its encoded
// bytes; dataBefore and dataAfter wrap the result.
func (s *DownlinkSpec) Encode(data any) ([]byte, error) {
	if s.DataInHex != nil {
		return append([]byte(nil), s.DataInHex...), nil
	}
	m, isMap := data.(map[string]any)
	if !isMap {
		m = map[string]any{"value": data}
	}
	if h, ok := m["dataInHex"]; ok && h != nil && h != "" {
		hs, isStr := h.(string)
		if !isStr {
			return nil, fmt.Errorf("%w: dataInHex must be a string, got %T", ErrConvert, h)
		}
		b, err := parseHex(hs)
		if err != nil {
			return nil, fmt.Errorf("%w: dataInHex: %v", ErrConvert, err)
		}
		return b, nil
	}
	var value any
	if s.DataExpression != nil {
		v, err := s.DataExpression.downlink(m)
		if err != nil {
			return nil, err
		}
		value = v
	} else if v, ok := m["value"]; ok {
		value = v
	} else {
		return nil, fmt.Errorf("%w: no value, dataInHex or dataExpression to send", ErrConvert)
	}
	out := append([]byte(nil), s.DataBefore...)
	out, err := s.appendValue(out, value)
	if err != nil {
		return nil, err
	}
	return append(out, s.DataAfter...), nil
}

func (s *DownlinkSpec) appendValue(out []byte, value any) ([]byte, error) {
	switch t := value.(type) {
	case bool:
		if t {
			return append(out, 1), nil
		}
		return append(out, 0), nil
	case string:
		return encodeString(out, t, s.DataEncoding)
	case json.Number:
		if i, err := t.Int64(); err == nil && !strings.ContainsAny(t.String(), ".eE") {
			return s.appendInt(out, i)
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a number", ErrConvert, t.String())
		}
		return s.appendFloat(out, f), nil
	case float64:
		// JSON decoded without UseNumber: integral numbers are integers.
		if t == math.Trunc(t) && math.Abs(t) < 1<<63 {
			return s.appendInt(out, int64(t))
		}
		return s.appendFloat(out, t), nil
	case float32:
		return s.appendFloat(out, float64(t)), nil
	case nil:
		return nil, fmt.Errorf("%w: value is null", ErrConvert)
	}
	switch t := value.(type) {
	case int:
		return s.appendInt(out, int64(t))
	case int8:
		return s.appendInt(out, int64(t))
	case int16:
		return s.appendInt(out, int64(t))
	case int32:
		return s.appendInt(out, int64(t))
	case int64:
		return s.appendInt(out, t)
	case uint8:
		return s.appendInt(out, int64(t))
	case uint16:
		return s.appendInt(out, int64(t))
	case uint32:
		return s.appendInt(out, int64(t))
	case uint:
		return s.appendUint(out, uint64(t))
	case uint64:
		return s.appendUint(out, t)
	}
	return nil, fmt.Errorf("%w: cannot send a value of type %T", ErrConvert, value)
}

func (s *DownlinkSpec) length() int {
	if s.DataLength <= 0 {
		return 1
	}
	return s.DataLength
}

func (s *DownlinkSpec) appendInt(out []byte, i int64) ([]byte, error) {
	n := s.length()
	bits := uint(8 * n)
	if s.DataSigned || i < 0 {
		if bits < 64 && (i < -(1<<(bits-1)) || i > 1<<(bits-1)-1) {
			return nil, fmt.Errorf("%w: %d does not fit in %d signed byte(s)", ErrConvert, i, n)
		}
	} else if bits < 64 && uint64(i) > 1<<bits-1 {
		return nil, fmt.Errorf("%w: %d does not fit in %d unsigned byte(s)", ErrConvert, i, n)
	}
	return appendUintBytes(out, uint64(i), n, s.DataByteorder), nil
}

func (s *DownlinkSpec) appendUint(out []byte, u uint64) ([]byte, error) {
	if u <= math.MaxInt64 {
		return s.appendInt(out, int64(u))
	}
	n := s.length()
	if s.DataSigned || n < 8 {
		return nil, fmt.Errorf("%w: %d does not fit in %d byte(s)", ErrConvert, u, n)
	}
	return appendUintBytes(out, u, n, s.DataByteorder), nil
}

func appendUintBytes(out []byte, u uint64, n int, o Order) []byte {
	start := len(out)
	for i := 0; i < n; i++ {
		out = append(out, 0)
	}
	b := out[start:]
	for i := 0; i < n; i++ {
		var c byte
		if i < 8 {
			c = byte(u >> (8 * uint(i)))
		} else if int64(u) < 0 {
			c = 0xff // sign extension past 8 bytes
		}
		if o == BigEndian {
			b[n-1-i] = c
		} else {
			b[i] = c
		}
	}
	return out
}

func (s *DownlinkSpec) appendFloat(out []byte, f float64) []byte {
	bits := math.Float32bits(float32(f))
	if s.DataByteorder == LittleEndian {
		return binary.LittleEndian.AppendUint32(out, bits)
	}
	return binary.BigEndian.AppendUint32(out, bits)
}

func encodeString(out []byte, str, enc string) ([]byte, error) {
	switch enc {
	case "", "ascii":
		for i := 0; i < len(str); i++ {
			if str[i] >= 0x80 {
				return nil, fmt.Errorf("%w: %q is not ascii (set dataEncoding)", ErrConvert, str)
			}
		}
		return append(out, str...), nil
	case "utf-8":
		return append(out, str...), nil
	case "latin-1":
		for _, r := range str {
			if r > 0xff {
				return nil, fmt.Errorf("%w: %q cannot be encoded as latin-1", ErrConvert, str)
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown encoding %q", ErrConvert, enc)
}

// exprEnv converts json.Number (params decoded with UseNumber) to int or
// float64 so expressions can do arithmetic on them.
func exprEnv(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plain(v)
	}
	return out
}

func plain(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i)
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		return exprEnv(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = plain(x)
		}
		return out
	}
	return v
}

// parseHex reads hex data as Python's bytearray.fromhex: two hex digits per
// byte, ASCII white space allowed between bytes (not inside one).
func parseHex(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)/2)
	for i := 0; i < len(s); {
		c := s[i]
		if isPySpace(c) {
			i++
			continue
		}
		hi, ok := unhex(c)
		if !ok {
			return nil, fmt.Errorf("%s is not hex data: %q at position %d is not a hex digit", strconv.Quote(s), rune(c), i)
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("%s is not hex data: the last byte has one digit (two hex digits per byte)", strconv.Quote(s))
		}
		lo, ok := unhex(s[i+1])
		if !ok {
			return nil, fmt.Errorf("%s is not hex data: the byte at position %d has one digit (two hex digits per byte)", strconv.Quote(s), i)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return out, nil
}

// isPySpace is Python's ASCII white space (what fromhex skips).
func isPySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
