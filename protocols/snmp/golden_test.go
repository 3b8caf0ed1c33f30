package snmp

import (
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/config.json through the parser and
// compares the problems and the parsed config with want.golden;
// `go test -run TestGolden -update` rewrites them.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		return golden.Config(t, dir, "snmp.json", func(o *spec.Obj) any { return Parse(o, protocols.ReportStrategy{}) })
	})
}

// TestREADME keeps the README's configuration reference and sample in
// step with the field tables and sample.json.
func TestREADME(t *testing.T) {
	golden.ProtocolREADME(t, Sample, Sections()...)
}
