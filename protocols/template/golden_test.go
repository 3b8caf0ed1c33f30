package template

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/: config.json → the problems and parsed
// config, and, where the case has a data.json (register values), the
// reading the first device converts it to. `go test -run TestGolden
// -update` rewrites the want.golden files.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		var parsed *Config
		out := golden.Config(t, dir, file, func(o *spec.Obj) any {
			parsed = Parse(o, protocols.ReportStrategy{})
			return parsed
		})
		raw, ok := golden.Input(t, dir, "data.json")
		if !ok {
			return out
		}
		var regs map[string]any
		if err := json.Unmarshal(raw, &regs); err != nil {
			t.Fatal(err)
		}
		r, err := Convert(parsed.Devices[0], regs)
		out = append(out, "# converted\n"...)
		if err != nil {
			out = fmt.Appendf(out, "error: %v\n", err)
		}
		return append(out, golden.Dump(r)...)
	})
}

// TestREADME keeps the README's configuration reference and sample in
// step with the field tables and sample.json.
func TestREADME(t *testing.T) {
	golden.ProtocolREADME(t, Sample, Sections()...)
}
