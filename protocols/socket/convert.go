package socket

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/industryos/gateway/protocols"
)

// ErrDecode is wrapped by errors of bytes that the encoding cannot read.
var ErrDecode = errors.New("cannot decode")

// Slice is a Python slice of a message: nil bounds are open, negative
// ones count from the end.
type Slice struct {
	From, To *int
}

// Of returns b[From:To] with Python's clamping: never out of range.
func (s Slice) Of(b []byte) []byte {
	n := len(b)
	idx := func(p *int, def int) int {
		if p == nil {
			return def
		}
		i := *p
		if i < 0 {
			i += n
		}
		return min(max(i, 0), n)
	}
	from, to := idx(s.From, 0), idx(s.To, n)
	if from >= to {
		return b[:0]
	}
	return b[from:to]
}

func (s Slice) String() string {
	f := func(p *int) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(*p)
	}
	return "[" + f(s.From) + ":" + f(s.To) + "]"
}

// Encoding is a Python codec name with its decoder and encoder.
type Encoding struct {
	Name   string
	decode func([]byte) (string, error)
	encode func(string) ([]byte, error)
}

// Decode turns message bytes into text. Upstream drops NUL bytes before
// decoding, which garbles UTF-16; here NUL characters are dropped after.
func (e Encoding) Decode(b []byte) (string, error) {
	s, err := e.decode(b)
	if err != nil {
		return "", err
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s, nil
}

// Encode turns text into bytes to send, as Python's str.encode does
// ("hex" parses hex digits, spaces allowed).
func (e Encoding) Encode(s string) ([]byte, error) { return e.encode(s) }

// Encodings lists the supported names (Python spellings; "_" and "-" and
// case are interchangeable).
var Encodings = []string{"utf-8", "ascii", "latin-1", "utf-16", "utf-16-le", "utf-16-be", "hex"}

// LookupEncoding returns the codec named name.
func LookupEncoding(name string) (Encoding, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
	e := Encoding{Name: n}
	switch n {
	case "utf-8", "utf8", "u8", "utf":
		e.Name = "utf-8"
		e.decode = func(b []byte) (string, error) {
			if !utf8.Valid(b) {
				return "", fmt.Errorf("%w % x as utf-8", ErrDecode, clip(b))
			}
			return string(b), nil
		}
		e.encode = func(s string) ([]byte, error) { return []byte(s), nil }
	case "ascii", "us-ascii", "646":
		e.Name = "ascii"
		e.decode = func(b []byte) (string, error) {
			for _, c := range b {
				if c >= 0x80 {
					return "", fmt.Errorf("%w byte %#x as ascii", ErrDecode, c)
				}
			}
			return string(b), nil
		}
		e.encode = func(s string) ([]byte, error) {
			for _, r := range s {
				if r >= 0x80 {
					return nil, fmt.Errorf("%q is not ascii", r)
				}
			}
			return []byte(s), nil
		}
	case "latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1", "8859", "cp819":
		e.Name = "latin-1"
		e.decode = func(b []byte) (string, error) {
			r := make([]rune, len(b))
			for i, c := range b {
				r[i] = rune(c)
			}
			return string(r), nil
		}
		e.encode = func(s string) ([]byte, error) {
			out := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return nil, fmt.Errorf("%q is not latin-1", r)
				}
				out = append(out, byte(r))
			}
			return out, nil
		}
	case "utf-16", "utf16", "u16":
		e.Name = "utf-16"
		e.decode = func(b []byte) (string, error) {
			// Python: a byte-order mark decides, little-endian without one.
			switch {
			case len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe:
				return decode16(b[2:], false)
			case len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff:
				return decode16(b[2:], true)
			}
			return decode16(b, false)
		}
		e.encode = func(s string) ([]byte, error) { return encode16([]byte{0xff, 0xfe}, s, false), nil }
	case "utf-16-le", "utf-16le":
		e.Name = "utf-16-le"
		e.decode = func(b []byte) (string, error) { return decode16(b, false) }
		e.encode = func(s string) ([]byte, error) { return encode16(nil, s, false), nil }
	case "utf-16-be", "utf-16be":
		e.Name = "utf-16-be"
		e.decode = func(b []byte) (string, error) { return decode16(b, true) }
		e.encode = func(s string) ([]byte, error) { return encode16(nil, s, true), nil }
	case "hex":
		e.decode = func(b []byte) (string, error) { return hex.EncodeToString(b), nil }
		e.encode = func(s string) ([]byte, error) {
			b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				return nil, fmt.Errorf("%q is not hex data: %w", clipStr(s), err)
			}
			return b, nil
		}
	default:
		return Encoding{}, fmt.Errorf("unknown encoding %q (supported: %s)", name, strings.Join(Encodings, ", "))
	}
	return e, nil
}

func decode16(b []byte, big bool) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%w %d bytes as utf-16: odd length", ErrDecode, len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		if big {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return string(utf16.Decode(u)), nil
}

func encode16(out []byte, s string, big bool) []byte {
	for _, u := range utf16.Encode([]rune(s)) {
		if big {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	return out
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func clipStr(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// KeyError is one key of a message that could not be converted.
type KeyError struct {
	Key *KeyConfig
	Err error
}

func (e KeyError) Error() string { return fmt.Sprintf("%s (%s): %v", e.Key.Key, e.Key.Path, e.Err) }

// Convert turns one message into the device's values: every configured key
// is the text of its byte slice, as upstream's BytesSocketUplinkConverter
// (values are strings). A key whose bytes do not decode is left out and
// returned in errs; the others are still converted.
func (d *DeviceConfig) Convert(msg []byte, errs []KeyError) (protocols.Reading, []KeyError) {
	var r protocols.Reading
	n := len(d.Telemetry) + len(d.Attributes)
	if n == 0 {
		return r, errs
	}
	// One allocation for both lists: the sink keeps the slices.
	dps := make([]protocols.Datapoint, 0, n)
	for _, k := range d.Telemetry {
		s, err := d.Encoding.Decode(k.Slice.Of(msg))
		if err != nil {
			errs = append(errs, KeyError{k, err})
			continue
		}
		dps = append(dps, protocols.Datapoint{Key: k.Key, Value: protocols.String(s)})
	}
	nt := len(dps)
	for _, k := range d.Attributes {
		s, err := d.Encoding.Decode(k.Slice.Of(msg))
		if err != nil {
			errs = append(errs, KeyError{k, err})
			continue
		}
		dps = append(dps, protocols.Datapoint{Key: k.Key, Value: protocols.String(s)})
	}
	if nt > 0 {
		r.Telemetry = dps[:nt:nt]
	}
	if len(dps) > nt {
		r.Attributes = dps[nt:]
	}
	return r, errs
}

// Matches reports whether msg is this attribute request: its Match slice,
// read as UTF-8 as upstream does, equals Equal.
func (a *AttrRequest) Matches(msg []byte) bool {
	return string(a.Match.Of(msg)) == a.Equal
}

// Keys are the attribute names msg asks for: each Names slice as UTF-8
// text, surrounding white space dropped (a line's "\r"), empty ones left out.
func (a *AttrRequest) Keys(msg []byte) ([]string, error) {
	keys := make([]string, 0, len(a.Names))
	for _, s := range a.Names {
		b := s.Of(msg)
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("attribute name %s: %w % x as utf-8", s, ErrDecode, clip(b))
		}
		if k := strings.TrimSpace(string(b)); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Matches reports whether a peer "ip:port" belongs to the device.
func (d *DeviceConfig) Matches(peer string) (bool, error) {
	if peer == d.Address {
		return true, nil
	}
	if d.match == nil {
		return false, nil
	}
	return d.match.MatchString(peer)
}

// Text is the text a JSON value is written as: a string's contents, any
// other value's JSON (upstream writes Python's str(), so True/None/{'a': 1};
// JSON text is what a non-Python peer can read).
func Text(raw []byte) string {
	if s, ok := protocols.JSONString(raw); ok {
		return s
	}
	return strings.TrimSpace(string(raw))
}
