package spec

import (
	"encoding/json"
	"strings"
)

// RawJSON returns key's value as the file wrote it, when the object came
// from Parse (through Obj and List): unlike Any, an object's keys keep
// their order, which a script walking its extensionConfig relies on as
// upstream's Python does. ok is false when the key is absent or the text
// is not at hand (a YAML file, a rewritten object); marks key known.
func (o *Obj) RawJSON(key string) (json.RawMessage, bool) {
	if _, ok := o.get(key); !ok || o.src == nil {
		return nil, false
	}
	return rawAt(o.src, append(append([]seg(nil), o.segs...), seg{key: key}))
}

// RawText returns the object itself as the file wrote it; ok is false
// when the text is not at hand (see RawJSON).
func (o *Obj) RawText() (json.RawMessage, bool) {
	if o.src == nil {
		return nil, false
	}
	return rawAt(o.src, o.segs)
}

// seg is one step of a JSON path: a key, or an index when key is "".
type seg struct {
	key   string
	index int
}

// rawAt walks raw along segs and returns the value there. A key written
// twice is the last one, as encoding/json decodes it.
func rawAt(raw []byte, segs []seg) (json.RawMessage, bool) {
	var cur json.RawMessage = raw
	for _, s := range segs {
		dec := json.NewDecoder(strings.NewReader(string(cur)))
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var found json.RawMessage
		switch {
		case s.key != "" && tok == json.Delim('{'):
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, false
				}
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					return nil, false
				}
				if k, _ := kt.(string); k == s.key {
					found = v
				}
			}
		case s.key == "" && tok == json.Delim('['):
			for i := 0; dec.More(); i++ {
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					return nil, false
				}
				if i == s.index {
					found = v
					break
				}
			}
		}
		if found == nil {
			return nil, false
		}
		cur = found
	}
	return cur, true
}
