package socket

import (
	"path/filepath"
	"strings"
	"testing"
)

// A device whose converter is a Starlark script: upstream's serial
// converter, ported, reads a line the peer sends; the device's entry is
// the script's config. A line the script fails on is counted and the next
// one converts.
func TestScriptDevice(t *testing.T) {
	conv, err := filepath.Abs("../../examples/scripts/custom_serial_uplink.star")
	if err != nil {
		t.Fatal(err)
	}
	c, s := start(t, `{"name": "S", "socket": {"type": "TCP", "address": "127.0.0.1", "port": 0},
  "devices": [{"address": "127.0.0.1:*", "deviceName": "SerialDevice1", "converter": "`+conv+`",
    "telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
    "attributes": [{"key": "SerialNumber", "type": "json", "fromByte": 5}]}]}`)
	nc := dial(t, c, "tcp")
	if _, err := nc.Write([]byte("40.5\r\"SN-0042\"\nbad\rnot json\n41.0\r\"SN-0042\"\n")); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, wait, "two lines converted, one failed", func() bool {
		return len(s.Values("SerialDevice1", "humidity")) == 2 && len(s.MalformedReports()) == 1
	})
	var got []string
	for _, v := range s.Values("SerialDevice1", "humidity") {
		got = append(got, v.String())
	}
	if sn, _ := s.Latest("SerialDevice1", "SerialNumber"); strings.Join(got, " ") != "40.5 41" || sn.String() != "SN-0042" {
		t.Fatalf("humidity %v, serial number %v", got, sn)
	}
	if r := s.MalformedReports()[0].String(); !strings.Contains(r, "custom_serial_uplink.star:") || !strings.Contains(r, "in convert: json.decode") {
		t.Fatalf("malformed %s", r)
	}
}
