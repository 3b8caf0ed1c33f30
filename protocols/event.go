package protocols

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// EventKind says what an Event carries.
type EventKind uint8

const (
	EventTelemetry EventKind = iota + 1
	EventAttributes
	EventConnect
	EventDisconnect
)

func (k EventKind) String() string {
	switch k {
	case EventTelemetry:
		return "telemetry"
	case EventAttributes:
		return "attributes"
	case EventConnect:
		return "connect"
	case EventDisconnect:
		return "disconnect"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is the unit the journal stores and the uplink delivers.
type Event struct {
	Kind       EventKind
	Device     string
	DeviceType string // profile name for connect events
	Ts         int64  // unix milliseconds
	Values     []Datapoint
}

// ErrCorruptEvent is returned when a journal record cannot be decoded.
var ErrCorruptEvent = errors.New("corrupt event record")

const codecVersion = 1

// AppendBinary encodes e in the journal's compact binary form. A hand-written
// codec keeps the journal path free of reflection; see DecodeEvent.
func (e *Event) AppendBinary(b []byte) []byte {
	b = append(b, codecVersion, byte(e.Kind))
	b = appendStr(b, e.Device)
	b = appendStr(b, e.DeviceType)
	b = binary.AppendVarint(b, e.Ts)
	b = binary.AppendUvarint(b, uint64(len(e.Values)))
	for _, dp := range e.Values {
		b = appendStr(b, dp.Key)
		b = append(b, byte(dp.Value.Kind))
		switch dp.Value.Kind {
		case KindBool, KindInt:
			b = binary.AppendVarint(b, dp.Value.I)
		case KindUint:
			b = binary.AppendUvarint(b, dp.Value.U)
		case KindFloat:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(dp.Value.F))
		case KindString, KindJSON:
			b = appendStr(b, dp.Value.S)
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeEvent decodes a record written by AppendBinary. It never panics on
// arbitrary input.
func DecodeEvent(b []byte) (Event, error) { return decodeEvent(b, nil) }

// EventDecoder decodes a stream of records (the uplink's journal reads)
// with a fraction of DecodeEvent's allocations: device names and keys,
// which repeat in every record, are shared, and the values of all events
// decoded since the last Reset live in one reused arena. Events it returned
// are valid until the next Reset. The zero value is ready to use; it is
// not safe for concurrent use.
type EventDecoder struct {
	names map[string]string
	arena []Datapoint
	// last holds the name decoded at each position of the previous record
	// (device, type, then the keys in order): records of one model repeat
	// their keys in the same order, so a comparison usually finds the name
	// without hashing it.
	last [maxLastNames]string
}

// Bounds keep a burst of distinct names or a huge batch from pinning memory.
const (
	maxInterned  = 4096
	maxArena     = 64 << 10
	maxLastNames = 34 // device, type and 32 keys
)

// Decode is DecodeEvent with the decoder's sharing.
func (d *EventDecoder) Decode(b []byte) (Event, error) { return decodeEvent(b, d) }

// Reset reclaims the arena: the values of every event decoded so far are
// overwritten by later decodes.
func (d *EventDecoder) Reset() {
	if cap(d.arena) > maxArena {
		d.arena = nil
		return
	}
	clear(d.arena) // drop string references
	d.arena = d.arena[:0]
}

// values reserves room for n datapoints.
func (d *EventDecoder) values(n int) []Datapoint {
	if cap(d.arena)-len(d.arena) < n {
		// Earlier events keep the old array; it is freed with them.
		d.arena = make([]Datapoint, 0, max(2*cap(d.arena), n, 256))
	}
	l := len(d.arena)
	d.arena = d.arena[:l+n]
	return d.arena[l : l : l+n]
}

// intern returns the shared string for b, the name at position pos of its
// record.
func (d *EventDecoder) intern(pos int, b []byte) string {
	if pos < maxLastNames && d.last[pos] == string(b) {
		return d.last[pos]
	}
	s, ok := d.names[string(b)]
	if !ok {
		if d.names == nil || len(d.names) >= maxInterned {
			d.names = make(map[string]string, 64)
		}
		s = string(b)
		d.names[s] = s
	}
	if pos < maxLastNames {
		d.last[pos] = s
	}
	return s
}

func decodeEvent(b []byte, shared *EventDecoder) (Event, error) {
	d := decoder{b: b}
	var e Event
	if v := d.byte(); v != codecVersion {
		if d.err != nil {
			return e, d.err
		}
		return e, fmt.Errorf("%w: unknown version %d", ErrCorruptEvent, v)
	}
	e.Kind = EventKind(d.byte())
	if e.Kind < EventTelemetry || e.Kind > EventDisconnect {
		return e, fmt.Errorf("%w: unknown kind %d", ErrCorruptEvent, e.Kind)
	}
	d.shared = shared
	e.Device = d.name()
	e.DeviceType = d.name()
	e.Ts = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return e, d.err
	}
	// Each value takes at least 2 bytes, so a larger count is corrupt and must
	// not drive a huge allocation.
	if n > uint64(len(d.b))/2+1 {
		return e, fmt.Errorf("%w: value count %d exceeds record size", ErrCorruptEvent, n)
	}
	if shared != nil {
		e.Values = shared.values(int(n))
	} else {
		e.Values = make([]Datapoint, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var dp Datapoint
		dp.Key = d.name()
		dp.Value.Kind = Kind(d.byte())
		switch dp.Value.Kind {
		case KindNull:
		case KindBool, KindInt:
			dp.Value.I = d.varint()
		case KindUint:
			dp.Value.U = d.uvarint()
		case KindFloat:
			dp.Value.F = math.Float64frombits(d.u64())
		case KindString:
			dp.Value.S = d.str()
		case KindJSON:
			// Records of versions without this kind never hold it, so the
			// codec version stays and their records still decode. The
			// text goes to the platform verbatim: a damaged one must not.
			if dp.Value.S = d.str(); d.err == nil && !validJSON(dp.Value.S) {
				d.fail("invalid JSON value for key %q", dp.Key)
			}
		default:
			d.fail("unknown value kind %d", dp.Value.Kind)
		}
		e.Values = append(e.Values, dp)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return e, d.err
}

type decoder struct {
	b      []byte
	err    error
	shared *EventDecoder // nil: every string is a fresh allocation
	names  int           // names read so far: the next one's position
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptEvent, fmt.Sprintf(format, a...))
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw reads a length-prefixed byte string, aliasing the record.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("string length %d exceeds record", n)
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.raw()) }

// name reads a string that repeats across records: a device name or a key.
func (d *decoder) name() string {
	b := d.raw()
	pos := d.names
	d.names++
	if d.shared == nil || len(b) == 0 {
		return string(b)
	}
	return d.shared.intern(pos, b)
}
