package socket

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
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

// A device script's downlink(cmd) takes the RPCs and attribute updates no
// serverSideRpc/attributeUpdates entry declares: its payload bytes go to
// the device's open TCP connection as they are, and its "reply" answers.
// Returning None leaves the reserved set and the unknown-method error as
// they are without a script.
func TestScriptDownlink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.star")
	src := `
def uplink(msg):
    return {"device": "D1", "telemetry": {"t": float(msg.text)}}

def downlink(cmd):
    if cmd.kind == "attributes":
        return [{"payload": "%s=%s\n" % (k, v)} for k, v in cmd.values.items()]
    if cmd.method == "setpoint":
        return {"payload": b"\x02" + binary.pack_int(cmd.params, 2) + b"\x03", "reply": {"written": 4}}
    return None
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, s := start(t, `{"name": "S", "socket": {"type": "TCP", "address": "127.0.0.1", "port": 0},
  "devices": [{"address": "127.0.0.1:*", "deviceName": "D1", "script": "`+path+`",
    "attributeUpdates": [{"encoding": "utf-8", "attributeOnThingsBoard": "mode"}],
    "serverSideRpc": [{"methodRPC": "raw", "withResponse": true, "methodProcessing": "write", "encoding": "utf-8"}]}]}`)
	nc := dial(t, c, "tcp")
	if _, err := nc.Write([]byte("21.5\n")); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, wait, "the first reading", func() bool { return len(s.Values("D1", "t")) == 1 })
	cm := c.Commander("D1", "")
	ctx := context.Background()
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 1, Device: "D1", Method: "setpoint", Params: json.RawMessage(`258`)})
	if err != nil || string(res) != `{"written":4}` {
		t.Fatalf("setpoint = %s, %v", res, err)
	}
	readExactly(t, nc, "\x02\x01\x02\x03")
	// An entry still takes its own method and attribute.
	if res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 2, Device: "D1", Method: "raw", Params: json.RawMessage(`"R\n"`)}); err != nil || string(res) != `{"result":"ok"}` {
		t.Fatalf("raw = %s, %v", res, err)
	}
	readExactly(t, nc, "R\n")
	ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"mode": json.RawMessage(`"M\n"`), "limit": json.RawMessage(`7`)})
	if err != nil || len(ignored) != 0 {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	readExactly(t, nc, "M\nlimit=7\n") // entries first, then the script
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 3, Device: "D1", Method: "nope"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Fatalf("nope: %v", err)
	}
}

func readExactly(t *testing.T, nc net.Conn, want string) {
	t.Helper()
	if err := nc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != want {
		t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
}
