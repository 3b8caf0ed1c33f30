package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Config reads caseDir/config.json, runs parse on it and renders what a
// config case expects: every problem (errors, entries skipped, warnings),
// then the parsed config as Dump shows it. The file is named after the
// protocol's (modbus.json) so problem paths read as `iotgw check` prints them.
func Config(t *testing.T, caseDir, file string, parse func(*spec.Obj) any) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(caseDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ps spec.Problems
	var b bytes.Buffer
	var parsed any
	if o := spec.Parse(&ps, file, raw); o != nil {
		parsed = parse(o)
	}
	b.WriteString("# problems\n")
	for _, p := range ps.List {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	b.WriteString("# config\n")
	if ps.HasErrors() {
		b.WriteString("(not loaded)\n")
	} else {
		b.Write(Dump(parsed))
	}
	return b.Bytes()
}

// Input reads a case's optional input file (data.json, message.txt, …);
// ok is false when the case has none, so it checks the config only.
func Input(t *testing.T, caseDir, name string) (raw []byte, ok bool) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(caseDir, name))
	if os.IsNotExist(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return raw, true
}
