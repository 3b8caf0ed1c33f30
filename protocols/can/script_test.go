package can

import (
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
