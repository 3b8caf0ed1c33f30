package can

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
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

// Upstream's default can.json and the files of its CAN integration tests
// load without errors; the entries upstream would fail on at run time are
// skipped, each with its reason.
func TestUpstreamConfigsLoad(t *testing.T) {
	want := map[string][]string{
		"thingsboard_gateway/config/can.json": {
			`error (entry skipped): can.json: devices[0].serverSideRpc[0].dataInHex: "aa bb cc dd ee ff    aa bb aa bb cc d ee ff" is not hex data: the byte at position 36 has one digit (two hex digits per byte)`,
		},
		"tests/integration/data/can/attribute_updates.json": {
			`error (entry skipped): attribute_updates.json: devices[0].attributeUpdates[4].nodeId: 123456 is out of range for a standard id (want 0..2047, or set isExtendedId)`,
		},
		"tests/integration/data/can/rpc.json": {
			`warning: rpc.json: devices[0].serverSideRpc[0].dataInHex: 14 bytes is not a CAN FD length: sent padded with zeros to 16 bytes`,
			`warning: rpc.json: devices[1].serverSideRpc[0].dataInHex: 14 bytes is not a CAN FD length: sent padded with zeros to 16 bytes`,
			`error (entry skipped): rpc.json: devices[3].serverSideRpc[0].dataInHex: "123" is not hex data: the last byte has one digit (two hex digits per byte)`,
		},
		"tests/integration/data/can/ts_and_attr.json": {
			`error (entry skipped): ts_and_attr.json: devices[3].timeseries[1].command: "3:3:little:22222" has another layout than the command of nodeId 4 at devices[3].timeseries[0].command (one command layout per nodeId)`,
		},
		"tests/integration/data/can/polling_once.json":     nil,
		"tests/integration/data/can/polling_always.json":   nil,
		"tests/integration/data/can/multiple_polling.json": nil,
	}
	files, _ := filepath.Glob(filepath.Join(upstreamDir, "tests/integration/data/can/*.json"))
	for _, f := range files {
		rel, _ := filepath.Rel(upstreamDir, f)
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: new upstream file, add its expectations", rel)
		}
	}
	for rel, wantProbs := range want {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			cfg, probs, err := Load(filepath.Base(rel), upstreamFile(t, rel))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if len(cfg.Devices) == 0 {
				t.Fatal("no devices")
			}
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
				t.Log(p)
			}
			for _, w := range wantProbs {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("missing problem %q", w)
				}
			}
			for _, g := range got {
				if strings.HasPrefix(g, "error") && !slices.ContainsFunc(wantProbs, func(w string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("unexpected skip %q", g)
				}
			}
		})
	}
	// What the integration files rely on: the `attribute` spelling and
	// the Python expressions.
	cfg, _, _ := Load("attribute_updates.json", upstreamFile(t, "tests/integration/data/can/attribute_updates.json"))
	var attrs []string
	for _, dl := range cfg.Devices[0].AttributeUpdates {
		attrs = append(attrs, dl.Attribute)
	}
	if strings.Join(attrs, ",") != "boolAttr,intAttr,floatAttr,stringAttr" {
		t.Errorf("attribute updates: %v", attrs)
	}
	f, err := cfg.Devices[0].AttributeUpdates[3].Frame(map[string]any{"value": "abc"})
	if err != nil || string(f.Data) != "Testabc" || !f.FD {
		t.Errorf("'Test' + value: %v %v", f, err)
	}
}

// Upstream's default can.json runs on the virtual bus (its socketcan vcan0
// replaced by a virtual channel): polling frames go out, frames come back
// as values through Python expressions, attribute updates and RPC become
// frames, and the skipped RPC answers with its reason.
func TestUpstreamDefaultFileRuns(t *testing.T) {
	raw := upstreamFile(t, "thingsboard_gateway/config/can.json")
	ch := "upstream-" + t.Name()
	ecu := NewVirtualBus(ch)
	t.Cleanup(func() { ecu.Close() })
	ps := &spec.Problems{}
	root := spec.Parse(ps, "can.json", raw)
	c, err := NewConnector(protocols.ConnectorConfig{Name: "can", Type: "can", Config: root, Logger: zerolog.Nop()},
		WithOpener(func(context.Context) (Bus, error) { return VirtualBus{NewVirtualBus(ch)}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(ps.Skips()) != 1 {
		t.Errorf("skips: %v", ps.Skips())
	}
	s := sinktest.New()
	run(t, c, s)
	s.Wait(t, waitTimeout, "bus open", func() bool { return s.Ups() == 1 })

	// Polling, in file order: the door attribute once, rpm and milliage.
	checkFrame(t, recv(t, ecu), 41, false, "AB CD AB CD")
	checkFrame(t, recv(t, ecu), 1918, true, "aaaa bbbb aaaa bbbb")
	checkFrame(t, recv(t, ecu), 1918, true, "aa bb cc dd ee ff aa bb")

	// bool(value & 0b00000100) on command 8717 (0x220d).
	if err := ecu.Send(Frame{ID: 41, Data: []byte{0, 0, 0x22, 0x0d, 0x0c}}); err != nil {
		t.Fatal(err)
	}
	// value / 4 on command 48059, and the node's command-less value * 10.
	if err := ecu.Send(Frame{ID: 1918, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0x04, 0xd2, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]protocols.Value{
		"isDriverDoorOpened": protocols.Bool(true),
		"rpm":                protocols.Float(1234.0 / 4),
		"milliage":           protocols.Int(0xd204 * 10),
	}
	s.Wait(t, waitTimeout, "decoded values", func() bool {
		for k, v := range want {
			if got, ok := s.Latest("Car", k); !ok || got.Kind != v.Kind || !got.Equal(v) {
				return false
			}
		}
		return true
	})

	for _, p := range s.Pushes() {
		if p.Device == "Car" && p.Profile != "can" {
			t.Errorf("profile %q, want upstream's default, the connector type", p.Profile)
		}
	}
	cmd := c.Commander("Car", "can")
	ctx := context.Background()
	// dataExpression "value + 5", 4 bytes little endian, extended id 64.
	if ign, err := cmd.UpdateAttributes(ctx, map[string]json.RawMessage{"softwareVersion": []byte("7")}); err != nil || len(ign) != 0 {
		t.Fatalf("attribute update: %v %v", ign, err)
	}
	checkFrame(t, recv(t, ecu), 64, true, "0c 00 00 00")
	// "userSpeed if maxAllowedSpeed > userSpeed else maxAllowedSpeed", then dataAfter.
	if _, err := cmd.RPC(ctx, protocols.RPCRequest{ID: 1, Method: "setSpeed", Params: []byte(`{"userSpeed": 170, "maxAllowedSpeed": 150}`)}); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, recv(t, ecu), 16, false, "96 01 02")
	if _, err := cmd.RPC(ctx, protocols.RPCRequest{ID: 2, Method: "setLightLevel", Params: []byte(`{"value": 300}`)}); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, recv(t, ecu), 5, false, "00 AA 2c 01")
	// sendSameData was skipped at load: its RPC says why, and
	// enableUnknownRpc does not turn it into a frame built from the params.
	_, err = cmd.RPC(ctx, protocols.RPCRequest{ID: 3, Method: "sendSameData"})
	if !errors.Is(err, ErrSkippedEntry) || !strings.Contains(err.Error(), `rpc sendSameData: serverSideRpc entry devices[0].serverSideRpc[0]: the entry was skipped at load: devices[0].serverSideRpc[0].dataInHex: "aa bb cc dd ee ff    aa bb aa bb cc d ee ff" is not hex data`) {
		t.Errorf("skipped RPC: %v", err)
	}
}

// An attribute update naming a skipped entry fails with the reason; the
// file's valid entries still work (upstream's attribute_updates.json).
func TestUpstreamAttributeUpdates(t *testing.T) {
	raw := upstreamFile(t, "tests/integration/data/can/attribute_updates.json")
	js := strings.Replace(string(raw), `"virtual_channel"`, `"%s"`, 1)
	c, _, ecu := startVirtual(t, js)
	cmd := c.Commander("Car", "can")
	_, err := cmd.UpdateAttributes(context.Background(), map[string]json.RawMessage{
		"boolAttr": []byte("true"), "intAttr": []byte("-2"), "floatAttr": []byte("1.5"), "stringAttr": []byte(`"xyz"`), "wrongConfigAttr": []byte("true")})
	if !errors.Is(err, ErrSkippedEntry) || !strings.Contains(err.Error(), `attribute "wrongConfigAttr" (devices[0].attributeUpdates[4]): the entry was skipped at load: devices[0].attributeUpdates[4].nodeId: 123456 is out of range`) {
		t.Errorf("skipped attribute: %v", err)
	}
	got := map[uint32]string{}
	for range 4 {
		f := recv(t, ecu)
		got[f.ID] = strings.ToUpper(strings.ReplaceAll(f.String(), " ", ""))
	}
	want := map[uint32]string{1: "0X1[STD]01", 2: "0X2[EXT]FEFFFFFF", 3: "0X3[STD]3FC00000", 4: "0X4[STD,FD]5465737478797A"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("id %d: %s, want %s", id, got[id], w)
		}
	}
}
