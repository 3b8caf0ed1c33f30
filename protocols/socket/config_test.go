package socket

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upstreamDir is upstream's config corpus beside the repository (absent in
// a plain clone: the tests skip).
const upstreamDir = "../../../shared/upstream-configs"

func upstreamFile(t *testing.T, rel string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(upstreamDir, rel))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("upstream config corpus not found at %s", upstreamDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Upstream's default socket.json and its unit-test configs (the current
// layout and the older flat one) load without errors, to the same device.
func TestUpstreamConfigsLoad(t *testing.T) {
	files := []string{
		"thingsboard_gateway/config/socket.json",
		"tests/unit/connectors/socket/data/new_config.json",
		"tests/unit/connectors/socket/data/old_config.json",
	}
	found, _ := filepath.Glob(filepath.Join(upstreamDir, "tests/unit/connectors/socket/data/*.json"))
	for _, f := range found {
		rel, _ := filepath.Rel(upstreamDir, f)
		if !strings.Contains(strings.Join(files, " "), rel) {
			t.Errorf("%s: new upstream file, add it here", rel)
		}
	}
	for _, rel := range files {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			cfg, probs, err := Load(filepath.Base(rel), upstreamFile(t, rel))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			for _, p := range probs {
				t.Errorf("unexpected problem: %s", p)
			}
			if cfg.Type != "TCP" || cfg.Address != "127.0.0.1" || cfg.Port != 50000 || cfg.BufferSize != 1024 || cfg.Framing != FramingLine {
				t.Errorf("server %+v", cfg)
			}
			if cfg.Old != strings.HasPrefix(filepath.Base(rel), "old") {
				t.Errorf("old layout detected: %v", cfg.Old)
			}
			if len(cfg.Devices) != 1 {
				t.Fatalf("devices: %d", len(cfg.Devices))
			}
			d := cfg.Devices[0]
			if d.Name != "Device Example" || d.Type != "default" || d.Encoding.Name != "utf-8" || d.Address != "*:*" {
				t.Errorf("device %+v", d)
			}
			if len(d.Telemetry) != 2 || len(d.Attributes) != 2 || len(d.Requests) != 1 || len(d.Updates) != 1 || len(d.RPC) != 1 {
				t.Fatalf("sections %+v", d)
			}
			if ok, _ := d.Matches("10.1.2.3:4567"); !ok {
				t.Error("*:* does not match a peer")
			}
			if d.Updates[0].Encoding.Name != "utf-16" || d.RPC[0].Method != "rpcMethod1" || !d.RPC[0].WithResponse {
				t.Errorf("downlinks %+v %+v", d.Updates[0], d.RPC[0])
			}
			ar := d.Requests[0]
			if ar.Client || ar.Equal != "atr" || ar.Match.String() != "[0:3]" || len(ar.Names) != 1 || ar.Names[0].String() != "[3:]" {
				t.Errorf("attribute request %+v", ar)
			}
		})
	}
}

func TestSampleLoads(t *testing.T) {
	cfg, probs, err := Load("sample.json", Sample)
	if err != nil || len(probs) > 0 {
		t.Fatalf("sample: %v %v", err, probs)
	}
	if len(cfg.Devices) != 1 || len(cfg.Devices[0].RPC) != 1 {
		t.Fatalf("%+v", cfg)
	}
}

// Bad entries are named by file, JSON path and value; a bad device is
// skipped, a bad server setting refuses the file.
func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		refused    bool
		want       []string
	}{
		{"bad type", `{"socket":{"type":"SCTP"},"devices":[]}`, true,
			[]string{`f.json: socket.type: unknown value "SCTP" (want one of: TCP, UDP)`}},
		{"bad port", `{"socket":{"port":70000}}`, true,
			[]string{`f.json: socket.port: 70000 is out of range (want 0..65535)`}},
		{"bad buffer", `{"socket":{"bufferSize":0}}`, true,
			[]string{`f.json: socket.bufferSize: 0 is out of range`}},
		{"bad framing", `{"socket":{"framing":"json"}}`, true,
			[]string{`f.json: socket.framing: unknown value "json" (want one of: line, fixed, read)`}},
		{"bad encoding skips device", `{"devices":[{"address":"*:*","deviceName":"A","encoding":"ebcdic"},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`error (entry skipped): f.json: devices[0].encoding: unknown encoding "ebcdic"`}},
		{"no address", `{"devices":[{"deviceName":"A"},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`error (entry skipped): f.json: devices[0].address: is required`}},
		{"bad request", `{"devices":[{"address":"*:*","deviceName":"A","attributeRequests":[{"type":"shared","requestExpression":"atr","attributeNameExpression":"[3:]"}]},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`error (entry skipped): f.json: devices[0].attributeRequests[0].requestExpression: "atr" is not of the form ${[from:to]==text}`}},
		{"step slice", `{"devices":[{"address":"*:*","deviceName":"A","attributeRequests":[{"requestExpression":"${[0:3:1]==a}","attributeNameExpression":"[3:]"}]},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`[0:3:1]: a step is not supported`}},
		{"custom converter", `{"devices":[{"address":"*:*","deviceName":"A","converter":"MyConverter"},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`error (entry skipped): f.json: devices[0].converter: "MyConverter": custom converter classes are not supported`}},
		{"duplicate name", `{"devices":[{"address":"*:*","deviceName":"A"},{"address":"1:*","deviceName":"A"}]}`, false,
			[]string{`error (entry skipped): f.json: devices[1].deviceName: "A" is already the name of devices[0]`}},
		{"bad processing", `{"devices":[{"address":"*:*","deviceName":"A","serverSideRpc":[{"methodRPC":"m","methodProcessing":"read"}]},{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`devices[0].serverSideRpc[0].methodProcessing: unknown value "read" (want one of: write)`}},
		{"unknown key", `{"socket":{"bufferSise":10},"devices":[{"address":"*:*","deviceName":"B"}]}`, false,
			[]string{`warning: f.json: socket.bufferSise: unknown key, ignored (did you mean "bufferSize"?)`}},
		{"upstream's buffer_size", `{"socket":{"buffer_size":10},"devices":[{"address":"*:*","deviceName":"B"}]}`, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, probs, err := Load("f.json", []byte(tc.json))
			var all []string
			if err != nil {
				all = append(all, err.Error())
			}
			for _, p := range probs {
				all = append(all, p.String())
			}
			if (err != nil) != tc.refused {
				t.Fatalf("refused=%v: %v", err != nil, all)
			}
			joined := strings.Join(all, "\n")
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("missing %q in:\n%s", w, joined)
				}
			}
			if tc.want == nil && len(all) > 0 {
				t.Errorf("unexpected: %s", joined)
			}
			if !tc.refused && !strings.Contains(tc.name, "unknown") && !strings.Contains(tc.name, "buffer") && len(cfg.Devices) != 1 {
				t.Errorf("devices %d, want the good one", len(cfg.Devices))
			}
		})
	}
	cfg, _, _ := Load("f.json", []byte(`{"socket":{"buffer_size":10}}`))
	if cfg.BufferSize != 10 {
		t.Errorf("buffer_size: %d", cfg.BufferSize)
	}
}
