package opcua

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidNodeID is wrapped by every ParseNodeID error.
var ErrInvalidNodeID = errors.New("invalid node id")

// IDKind is the identifier type of a NodeID.
type IDKind uint8

const (
	// Numeric is the i= form.
	Numeric IDKind = iota
	// StringID is the s= form.
	StringID
	// GUID is the g= form (text GUID).
	GUID
	// Opaque is the b= form (base64 ByteString).
	Opaque
)

// NodeID is an OPC-UA node id; only the field matching Kind is meaningful.
type NodeID struct {
	Namespace uint16
	Kind      IDKind
	Numeric   uint32
	Str       string
	GUID      [16]byte
	Opaque    []byte
}

// nodeIDError formats errors as `invalid node id "ns=x;i=8": namespace "x" is not a number`.
type nodeIDError struct {
	input, msg string
}

func (e *nodeIDError) Error() string { return fmt.Sprintf("invalid node id %q: %s", e.input, e.msg) }
func (e *nodeIDError) Unwrap() error { return ErrInvalidNodeID }

// LooksLikeNodeID reports whether s starts like a node id (ns=, i=, s=, g=, b=),
// which is how expressions are classified before being parsed.
func LooksLikeNodeID(s string) bool {
	s = strings.TrimSpace(s)
	for _, p := range []string{"ns=", "nsu=", "i=", "s=", "g=", "b="} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ParseNodeID parses "ns=3;i=8", "i=85", "ns=2;s=Name", "ns=1;g=<guid>" and
// "ns=1;b=<base64>". The namespace is optional and defaults to 0.
func ParseNodeID(s string) (NodeID, error) {
	in := s
	fail := func(format string, a ...any) (NodeID, error) {
		return NodeID{}, &nodeIDError{input: in, msg: fmt.Sprintf(format, a...)}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return fail("empty")
	}
	var id NodeID
	if strings.HasPrefix(s, "nsu=") {
		return fail("namespace URIs (nsu=) are not supported, use ns=<index>")
	}
	if strings.HasPrefix(s, "ns=") {
		semi := strings.IndexByte(s, ';')
		if semi < 0 {
			return fail("missing \";\" after the namespace")
		}
		nsText := strings.TrimSpace(s[3:semi])
		ns, err := strconv.ParseUint(nsText, 10, 16)
		if err != nil {
			if n, e2 := strconv.ParseUint(nsText, 10, 64); e2 == nil && n > 0xFFFF {
				return fail("namespace %s is out of range (want 0..65535)", nsText)
			}
			return fail("namespace %q is not a number", nsText)
		}
		id.Namespace = uint16(ns)
		s = strings.TrimLeft(s[semi+1:], " \t")
	}
	if len(s) < 2 || s[1] != '=' {
		return fail("missing identifier (want i=, s=, g= or b=)")
	}
	v := s[2:]
	switch s[0] {
	case 'i':
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fail("numeric identifier %q is not a number in 0..4294967295", v)
		}
		id.Kind, id.Numeric = Numeric, uint32(n)
	case 's':
		if v == "" {
			return fail("empty string identifier")
		}
		id.Kind, id.Str = StringID, v
	case 'g':
		g, ok := parseGUID(strings.TrimSpace(v))
		if !ok {
			return fail("guid identifier %q is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", v)
		}
		id.Kind, id.GUID = GUID, g
	case 'b':
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return fail("opaque identifier %q is not base64", v)
		}
		if len(b) == 0 {
			return fail("empty opaque identifier")
		}
		id.Kind, id.Opaque = Opaque, b
	default:
		return fail("unknown identifier type %q (want i, s, g or b)", s[:1])
	}
	return id, nil
}

// MustParseNodeID is ParseNodeID that panics; for tests and constants.
func MustParseNodeID(s string) NodeID {
	id, err := ParseNodeID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func parseGUID(s string) ([16]byte, bool) {
	var g [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return g, false
	}
	return g, true
}

// String formats the id canonically: "ns=3;i=8", with "ns=0;" left out
// ("i=85"), GUIDs in upper case and opaque ids in standard base64.
func (id NodeID) String() string {
	var b strings.Builder
	if id.Namespace != 0 {
		b.WriteString("ns=")
		b.WriteString(strconv.Itoa(int(id.Namespace)))
		b.WriteByte(';')
	}
	switch id.Kind {
	case Numeric:
		b.WriteString("i=")
		b.WriteString(strconv.FormatUint(uint64(id.Numeric), 10))
	case StringID:
		b.WriteString("s=")
		b.WriteString(id.Str)
	case GUID:
		h := strings.ToUpper(hex.EncodeToString(id.GUID[:]))
		b.WriteString("g=")
		b.WriteString(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
	case Opaque:
		b.WriteString("b=")
		b.WriteString(base64.StdEncoding.EncodeToString(id.Opaque))
	}
	return b.String()
}

// Equal reports whether two node ids are the same.
func (id NodeID) Equal(o NodeID) bool {
	if id.Namespace != o.Namespace || id.Kind != o.Kind {
		return false
	}
	switch id.Kind {
	case Numeric:
		return id.Numeric == o.Numeric
	case StringID:
		return id.Str == o.Str
	case GUID:
		return id.GUID == o.GUID
	default:
		return string(id.Opaque) == string(o.Opaque)
	}
}
