package snmp

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/config.json through the parser and
// compares the problems and the parsed config with want.golden; a case
// with a trap.hex (a notification as it arrives, in hex) adds what the
// trap receiver makes of it. `go test -run TestGolden -update` rewrites
// them.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		var parsed *Config
		out := golden.Config(t, dir, "snmp.json", func(o *spec.Obj) any {
			parsed = Parse(o, protocols.ReportStrategy{})
			return parsed
		})
		raw, ok := golden.Input(t, dir, "trap.hex")
		if !ok {
			return out
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "# trap\n"...)
		p, err := DecodeTrap(b)
		if err != nil {
			return fmt.Appendf(out, "error: %v\n", err)
		}
		trapOID := TrapOID(p)
		r, matched, errs := TrapReading(parsed.Traps.Mapping, trapOID, p.Variables)
		out = fmt.Appendf(out, "version %s, community %q, trap %s, matched %v\n", p.Version, p.Community, trapOID, matched)
		for _, err := range errs {
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
