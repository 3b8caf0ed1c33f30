package exec

import (
	"errors"
	"testing"
)

// FuzzParseLine: no stdout line panics, and every refusal is ErrMalformed.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"device":"d","ts":1,"telemetry":{"a":1,"b":1.5,"c":"x","d":true,"e":{"f":[1]}}}`))
	f.Add([]byte(`{"id":3,"reply":{"ok":1}}`))
	f.Add([]byte(`{"id":3,"error":"no"}`))
	f.Add([]byte(`{"device":"d","attributes":{"big":18446744073709551615,"neg":-1e400}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if _, err := ParseLine(line); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T %v", err, err)
		}
	})
}
