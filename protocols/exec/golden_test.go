package exec

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/: config.json → the problems and parsed
// config, and, where the case has lines.txt (stdout lines), what each line
// reads as. `go test -run TestGolden -update` rewrites want.golden.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		out := golden.Config(t, dir, file, func(o *spec.Obj) any { return Parse(o) })
		raw, ok := golden.Input(t, dir, "lines.txt")
		if !ok {
			return out
		}
		for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			out = fmt.Appendf(out, "# %s\n", line)
			r, err := ParseLine(line)
			if err != nil {
				out = fmt.Appendf(out, "error: %v\n", err)
				continue
			}
			out = append(out, golden.Dump(r)...)
		}
		return out
	})
}

// TestREADME keeps the README's configuration reference and sample in
// step with the field tables and sample.json.
func TestREADME(t *testing.T) {
	golden.ProtocolREADME(t, Sample, Sections()...)
}
