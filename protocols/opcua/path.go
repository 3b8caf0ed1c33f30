package opcua

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols/kit/pyre"
)

// ErrInvalidPath is wrapped by every path expression error.
var ErrInvalidPath = errors.New("invalid path")

// PathSep separates path segments in upstream files: a backslash-escaped dot
// (written "\\." inside JSON strings).
const PathSep = `\.`

// ExprKind classifies an upstream value expression.
type ExprKind uint8

const (
	// ExprNodeID is a node id such as ${ns=3;i=8}.
	ExprNodeID ExprKind = iota
	// ExprAbsolute is a browse path from the root: ${Root\.Objects\.Dev\.Node}.
	ExprAbsolute
	// ExprRelative is a browse path below the device node: ${Node}.
	ExprRelative
)

func (k ExprKind) String() string {
	switch k {
	case ExprNodeID:
		return "node id"
	case ExprAbsolute:
		return "absolute path"
	default:
		return "relative path"
	}
}

// Segment is one browse name in a path. A segment with regex metacharacters
// matches browse names with Pattern (a Python pattern, re.fullmatch);
// otherwise Name must match exactly.
type Segment struct {
	// HasNamespace is set when the segment carries a "2:Name" prefix.
	HasNamespace bool
	Namespace    uint16
	Name         string
	Pattern      *pyre.Regexp
}

// Match reports whether a browse name (namespace, name) matches the
// segment; the error is a pattern's match timeout (pyre.ErrTimeout).
func (s Segment) Match(ns uint16, name string) (bool, error) {
	if s.HasNamespace && ns != s.Namespace {
		return false, nil
	}
	if s.Pattern != nil {
		return s.Pattern.MatchString(name)
	}
	return name == s.Name, nil
}

// IsPattern reports whether the segment is a regular expression.
func (s Segment) IsPattern() bool { return s.Pattern != nil }

func (s Segment) String() string {
	if s.HasNamespace {
		return strconv.Itoa(int(s.Namespace)) + ":" + s.Name
	}
	return s.Name
}

// Path is a parsed browse path. Absolute paths start with the Root segment.
type Path struct {
	Absolute bool
	Segments []Segment
}

// String joins the segments with PathSep, the upstream spelling.
func (p Path) String() string {
	parts := make([]string, len(p.Segments))
	for i, s := range p.Segments {
		parts[i] = s.String()
	}
	return strings.Join(parts, PathSep)
}

// HasPattern reports whether any segment is a regular expression.
func (p Path) HasPattern() bool {
	for _, s := range p.Segments {
		if s.Pattern != nil {
			return true
		}
	}
	return false
}

// Expr is a parsed value expression: either a node id or a path.
type Expr struct {
	Kind ExprKind
	Node NodeID // for ExprNodeID
	Path Path   // for ExprAbsolute and ExprRelative
	Raw  string // the text inside ${...}
}

func (e Expr) String() string {
	if e.Kind == ExprNodeID {
		return e.Node.String()
	}
	return e.Path.String()
}

type pathError struct{ input, msg string }

func (e *pathError) Error() string { return fmt.Sprintf("invalid path %q: %s", e.input, e.msg) }
func (e *pathError) Unwrap() error { return ErrInvalidPath }

// Unwrap strips one "${...}" wrapper. A bare string is returned unchanged with
// wrapped=false; an unbalanced wrapper is an error.
func Unwrap(s string) (inner string, wrapped bool, err error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "${") {
		if !strings.HasSuffix(t, "}") || len(t) < 3 {
			return "", false, &pathError{input: s, msg: "unterminated \"${\""}
		}
		return t[2 : len(t)-1], true, nil
	}
	return t, false, nil
}

// ParseExpr parses an upstream value such as "${ns=3;i=8}",
// "${Root\.Objects\.Dev\.Node}" or "${Node}"; the ${} wrapper is optional.
func ParseExpr(s string) (Expr, error) {
	inner, _, err := Unwrap(s)
	if err != nil {
		return Expr{}, err
	}
	inner = strings.TrimSpace(inner)
	if inner == "" {
		return Expr{}, &pathError{input: s, msg: "empty expression"}
	}
	if LooksLikeNodeID(inner) {
		id, err := ParseNodeID(inner)
		if err != nil {
			return Expr{}, err
		}
		return Expr{Kind: ExprNodeID, Node: id, Raw: inner}, nil
	}
	p, err := ParsePath(inner)
	if err != nil {
		return Expr{}, err
	}
	k := ExprRelative
	if p.Absolute {
		k = ExprAbsolute
	}
	return Expr{Kind: k, Path: p, Raw: inner}, nil
}

const regexMeta = `[](){}*+?|^$\.`

// ParsePath parses a browse path (without ${}); segments are separated by
// `\.`. A path whose first segment is "Root" is absolute.
func ParsePath(s string) (Path, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Path{}, &pathError{input: in, msg: "empty path"}
	}
	parts := strings.Split(s, PathSep)
	p := Path{Segments: make([]Segment, 0, len(parts))}
	for i, part := range parts {
		seg, err := parseSegment(part)
		if err != "" {
			return Path{}, &pathError{input: in, msg: fmt.Sprintf("segment %d: %s", i+1, err)}
		}
		p.Segments = append(p.Segments, seg)
	}
	first := p.Segments[0]
	p.Absolute = !first.HasNamespace && first.Pattern == nil && first.Name == "Root"
	return p, nil
}

func parseSegment(part string) (Segment, string) {
	var seg Segment
	if part == "" {
		return seg, "empty segment"
	}
	if c := strings.IndexByte(part, ':'); c > 0 {
		if ns, err := strconv.ParseUint(part[:c], 10, 16); err == nil {
			seg.HasNamespace, seg.Namespace = true, uint16(ns)
			part = part[c+1:]
			if part == "" {
				return seg, "empty name after namespace"
			}
		}
	}
	seg.Name = part
	if strings.ContainsAny(part, regexMeta) {
		re, err := pyre.Compile(part, pyre.FullMatch)
		if err != nil {
			return seg, err.Error()
		}
		seg.Pattern = re
	}
	return seg, ""
}

// Join appends a relative path to the device node's path. Joining an absolute
// path returns it unchanged.
func Join(device, rel Path) Path {
	if rel.Absolute {
		return rel
	}
	segs := make([]Segment, 0, len(device.Segments)+len(rel.Segments))
	segs = append(segs, device.Segments...)
	segs = append(segs, rel.Segments...)
	return Path{Absolute: device.Absolute, Segments: segs}
}
