package socket

import (
	"fmt"
	"testing"

	"github.com/industryos/gateway/protocols/kit/golden"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestGolden runs testdata/<case>/config.json through the parser and
// compares the problems and the parsed config with want.golden; a case
// with a message.txt (one message as a peer sends it) also shows what each
// device converts it to. `go test -run TestGolden -update` rewrites them.
func TestGolden(t *testing.T) {
	golden.Run(t, "testdata", func(t *testing.T, dir string) []byte {
		var parsed *Config
		out := golden.Config(t, dir, "socket.json", func(o *spec.Obj) any {
			parsed = Parse(o)
			return parsed
		})
		msg, ok := golden.Input(t, dir, "message.txt")
		if !ok {
			return out
		}
		for _, d := range parsed.Devices {
			r, errs := d.Convert(msg, nil)
			out = fmt.Appendf(out, "# converted by %s\n", d.Name)
			for _, e := range errs {
				out = fmt.Appendf(out, "error: %v\n", e)
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
