package opcua

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidParams is wrapped by get/set params errors.
var ErrInvalidParams = errors.New("invalid rpc params")

// setSeparators are the upstream separators between target and value, in the
// order they are tried.
var setSeparators = []string{"; ", ";=", "=", " "}

func trimParams(s string) string {
	return strings.TrimRight(strings.TrimSpace(s), "; \t\r\n")
}

// ParseGetParams parses the params of the reserved "get" method, e.g.
// "ns=2;i=13;" or "Frequency", into the target (a node id or path text).
func ParseGetParams(s string) (string, error) {
	t := trimParams(s)
	if t == "" {
		return "", fmt.Errorf("%w %q: missing node id or path", ErrInvalidParams, s)
	}
	return t, nil
}

// ParseSetParams parses the params of the reserved "set" method:
// "ns=2;i=13; 56;" gives ("ns=2;i=13", "56") and "Frequency= 35 ;" gives
// ("Frequency", "35"). The separators "; ", ";=", "=" and " " are tried in
// that order, each from its last occurrence; a split whose target looks like
// a node id (or cuts one short) but does not parse as one is skipped, so the "=" inside
// "ns=2;i=13" is never taken for the separator.
func ParseSetParams(s string) (target, value string, err error) {
	t := trimParams(s)
	if t == "" {
		return "", "", fmt.Errorf("%w %q: missing node id or path and value", ErrInvalidParams, s)
	}
	nodeTarget := LooksLikeNodeID(t)
	for _, sep := range setSeparators {
		end := len(t)
		for {
			i := strings.LastIndex(t[:end], sep)
			if i < 0 {
				break
			}
			end = i
			l := strings.TrimSpace(t[:i])
			r := strings.TrimSpace(t[i+len(sep):])
			if l == "" || r == "" {
				continue
			}
			if nodeTarget || LooksLikeNodeID(l) {
				if _, err := ParseNodeID(l); err != nil {
					continue
				}
			}
			return l, r, nil
		}
	}
	return "", "", fmt.Errorf("%w %q: want \"<node id or path>; <value>\" or \"<path>=<value>\"", ErrInvalidParams, s)
}
