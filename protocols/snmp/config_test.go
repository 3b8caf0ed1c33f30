package snmp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// The upstream default file and the upstream unit-test configs load without
// errors (the custom-converter device is skipped with a message).
func TestUpstreamCorpusLoads(t *testing.T) {
	root := "../../../shared/upstream-configs"
	if _, err := os.Stat(root); err != nil {
		t.Skip("upstream config corpus absent (../shared/upstream-configs)")
	}
	files := []string{filepath.Join(root, "thingsboard_gateway/config/snmp.json")}
	_ = filepath.WalkDir(filepath.Join(root, "tests"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(strings.ToLower(p), "snmp") && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps := &spec.Problems{}
		c, err := NewConnector(protocols.ConnectorConfig{Name: "snmp", Config: spec.Parse(ps, f, raw)})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(c.Devices()) == 0 {
			t.Errorf("%s: no devices", f)
		}
	}
}

func TestSampleLoads(t *testing.T) {
	ps := &spec.Problems{}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "snmp", Config: spec.Parse(ps, "sample.json", Sample)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Warnings()) != 0 {
		t.Errorf("warnings: %v", ps.Warnings())
	}
	d := c.Devices()[1].(*Device).Config()
	if d.Version != gosnmp.Version3 || d.V3.Level != gosnmp.AuthPriv || d.V3.AuthProtocol != gosnmp.SHA256 {
		t.Errorf("v3 = %+v", d.V3)
	}
}

func TestBadEntriesNamePathAndValue(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`{"devices":[{"deviceName":"d","ip":"h","attributes":[{"key":"k","method":"fetch","oid":"1.3"}]}]}`, `devices[0].attributes[0].method`},
		{`{"devices":[{"deviceName":"d","ip":"h","attributes":[{"key":"k","method":"get","oid":"1.x.3"}]}]}`, `"1.x.3" is not a numeric OID`},
		{`{"devices":[{"deviceName":"d","ip":"h","version":"5"}]}`, `devices[0].version`},
		{`{"devices":[{"deviceName":"d","ip":"h","version":3,"user":"u","authProtocol":"SHA","authKey":"short"}]}`, `devices[0].authKey: must be at least 8`},
		{`{"devices":[{"deviceName":"d","ip":"h","timeout":-1}]}`, `devices[0].timeout`},
	} {
		ps := &spec.Problems{}
		// A bad entry is skipped with a message; the file still loads.
		c, err := NewConnector(protocols.ConnectorConfig{Name: "snmp", Config: spec.Parse(ps, "snmp.json", []byte(tc.js))})
		if err != nil {
			t.Fatalf("%s: %v", tc.js, err)
		}
		var msgs []string
		for _, p := range ps.Skips() {
			msgs = append(msgs, p.String())
		}
		all := strings.Join(msgs, "\n")
		if !strings.Contains(all, tc.want) || !strings.Contains(all, "snmp.json") {
			t.Errorf("%s: skips = %s, want %q", tc.js, all, tc.want)
		}
		if strings.Contains(all, "short") {
			t.Errorf("secret echoed: %s", all)
		}
		if strings.Contains(tc.js, `"attributes"`) {
			if len(c.Devices()) != 1 || len(c.Devices()[0].(*Device).Config().Attributes) != 0 {
				t.Errorf("%s: bad key not dropped", tc.js)
			}
		} else if len(c.Devices()) != 0 {
			t.Errorf("%s: bad device not dropped", tc.js)
		}
	}
}
