package modbus

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/config.json through the parser and
// compares the problems and the parsed config with want.golden; a case
// with a data.json (each tag's registers, or bits for function codes 1
// and 2, as the slave answers) also shows the values they decode to;
// `go test -run TestGolden -update` rewrites them.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		var parsed *Config
		out := golden.Config(t, dir, "modbus.json", func(o *spec.Obj) any {
			parsed = Parse(o, protocols.ReportStrategy{})
			return parsed
		})
		raw, ok := golden.Input(t, dir, "data.json")
		if !ok {
			return out
		}
		return append(out, decodeCase(t, parsed, raw)...)
	})
}

// TestREADME keeps the README's configuration reference and sample in
// step with the field tables and sample.json.
func TestREADME(t *testing.T) {
	golden.ProtocolREADME(t, Sample, Sections()...)
}

// decodeCase decodes the read keys of the first slave from data.json.
func decodeCase(t *testing.T, cfg *Config, raw []byte) []byte {
	var data map[string][]uint16
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	out := []byte("# decoded\n")
	s := cfg.Slaves[0]
	for _, k := range append(append([]*KeyConfig{}, s.Attributes...), s.Timeseries...) {
		words, ok := data[k.Tag]
		if !ok {
			continue
		}
		var v protocols.Value
		var err error
		if isBitFunction(k.FunctionCode) {
			bits := make([]bool, len(words))
			for i, w := range words {
				bits[i] = w != 0
			}
			v, err = k.DecodeBits(bits)
		} else {
			v, err = k.DecodeRegisters(words)
		}
		if err != nil {
			out = fmt.Appendf(out, "%s: error: %v\n", k.Tag, err)
			continue
		}
		out = fmt.Appendf(out, "%s: %s\n", k.Tag, v.AppendJSON(nil))
	}
	return out
}
