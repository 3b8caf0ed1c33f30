package can

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// j1939 reads two parameter groups of a truck's engine bus; a frame it
// cannot read raises.
const j1939 = `
def uplink(msg):
    d = msg.payload
    if msg.meta["id"] == 0x18FEF100:   # CCVS: wheel-based speed, 1/256 km/h
        return {"device": msg.config["name"], "profile": "truck", "telemetry": {"speed": binary.int(d[1:3], "little") / 256}}
    if len(d) < 8:
        fail("EEC1 frame of %d bytes" % len(d))
    return {"device": msg.config["name"], "telemetry": {"rpm": binary.int(d[3:5], "little") * 0.125}}
`

// A device with a script converts the frames of its nodeIds: values the
// keys' layouts cannot express, a frame the script fails on counted, keys
// of other devices decoded as before.
func TestScriptDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j1939.star")
	if err := os.WriteFile(path, []byte(j1939), 0o644); err != nil {
		t.Fatal(err)
	}
	_, s, ecu := startVirtual(t, `{"name":"t","interface":"virtual","channel":"%s","reconnectPeriod":0.05,
 "devices":[
  {"name":"Truck","script":"`+path+`","nodeIds":["0x18FEF100", 217056256],"isExtendedId":true},
  {"name":"Car","timeseries":[{"key":"temperature","nodeId":258,"value":"0:1:int"}]}]}`)
	for _, f := range []Frame{
		{ID: 0x18FEF100, Extended: true, Data: []byte{0, 0x00, 0x19, 0, 0, 0, 0, 0}}, // 25 km/h
		{ID: 0x0CF00400, Extended: true, Data: []byte{0, 0, 0}},                      // short EEC1
		{ID: 258, Data: []byte{21}},
		{ID: 0x0CF00400, Extended: true, Data: []byte{0, 0, 0, 0x80, 0x3e, 0, 0, 0}}, // 2000 rpm
		{ID: 0x100, Data: []byte{1, 2, 3}},                                           // nobody reads it
	} {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	s.Wait(t, waitTimeout, "speed, rpm, temperature and one failure", func() bool {
		_, a := s.Latest("Truck", "speed")
		_, b := s.Latest("Truck", "rpm")
		_, c := s.Latest("Car", "temperature")
		return a && b && c && len(s.MalformedReports()) == 1 && s.UnmatchedCount() == 1
	})
	speed, _ := s.Latest("Truck", "speed")
	rpm, _ := s.Latest("Truck", "rpm")
	if speed.String() != "25" || rpm.String() != "2000" {
		t.Fatalf("speed %v rpm %v", speed, rpm)
	}
	if r := s.MalformedReports()[0].String(); !strings.HasPrefix(r, "can id 0xcf00400 script: ") || !strings.Contains(r, `j1939.star:7:13: in uplink: fail: EEC1 frame of 3 bytes`) {
		t.Fatalf("malformed %s", r)
	}
}

func TestScriptDeviceConfig(t *testing.T) {
	build := func(js string) string {
		ps := &spec.Problems{}
		root := spec.Parse(ps, "can.json", []byte(js))
		_, err := NewConnector(protocols.ConnectorConfig{Name: "can-test", Type: "can", Config: root, Logger: zerolog.Nop()})
		if err == nil {
			t.Fatalf("no error for %s", js)
		}
		return err.Error()
	}
	got := build(`{"name":"t","interface":"virtual","channel":"x","devices":[
  {"name":"B","script":"b.star"},
  {"name":"C","script":"c.star","nodeIds":[4096]}]}`)
	got += "\n" + build(`{"name":"t","interface":"virtual","channel":"x","devices":[{"name":"A","script":"/nonexistent/a.star","nodeIds":[1]}]}`)
	for _, want := range []string{
		`can.json: devices[0].nodeIds: is required with a script: the frame ids it converts (numbers or "0x" strings)`,
		`can.json: devices[1].nodeIds[0]: 4096 is not a CAN id (0..2047; isExtendedId: false)`,
		`can.json: devices[0].script: /nonexistent/a.star: cannot read: no such file or directory`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// A device script's downlink(cmd) turns the RPCs and attribute updates no
// entry names into frames on the (virtual) bus: nodeId and the flags from
// each output, payload as the data; None leaves "set" and the
// unknown-method error as they are; a frame that breaks the CAN limits is
// an error, not a truncated frame.
func TestScriptDownlink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pump.star")
	src := `
def uplink(msg):
    return None

def downlink(cmd):
    if cmd.kind == "attributes":
        return [{"nodeId": 0x18EF0010, "isExtendedId": True, "payload": binary.pack_int(v, 2, "little")} for v in cmd.values.values()]
    if cmd.method == "speed":
        return [{"nodeId": 0x123, "payload": b"\x01" + binary.pack_int(cmd.params["rpm"], 2)},
                {"nodeId": 0x124, "payload": b"", "reply": {"ok": cmd.params["rpm"]}}]
    if cmd.method == "huge":
        return {"nodeId": 0x123, "payload": b"123456789"}
    return None
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _, ecu := startVirtual(t, `{"name":"t","interface":"virtual","channel":"%s","reconnectPeriod":0.05,
 "devices":[{"name":"Pump","script":"`+path+`","nodeIds":[16],
   "serverSideRpc":[{"method":"stop","nodeId":16,"dataInHex":"00"}]}]}`)
	cm := c.Commander("Pump", "")
	ctx := context.Background()
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 1, Device: "Pump", Method: "speed", Params: json.RawMessage(`{"rpm":1500}`)})
	if err != nil || string(res) != `{"ok":1500}` {
		t.Fatalf("speed = %s, %v", res, err)
	}
	checkFrame(t, recv(t, ecu), 0x123, false, "01 05 dc")
	checkFrame(t, recv(t, ecu), 0x124, false, "")
	// The entry keeps its method.
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 2, Device: "Pump", Method: "stop"}); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, recv(t, ecu), 16, false, "00")
	if ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"limit": json.RawMessage(`513`)}); err != nil || len(ignored) != 0 {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	checkFrame(t, recv(t, ecu), 0x18EF0010, true, "01 02")
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 3, Device: "Pump", Method: "huge"}); !errors.Is(err, ErrInvalidFrame) {
		t.Fatalf("huge: %v", err)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 4, Device: "Pump", Method: "other"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Fatalf("other: %v", err)
	}
}
