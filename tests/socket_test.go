package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// socketConnectorConfig is upstream's default socket.json on port.
func socketConnectorConfig(port int) []byte {
	return []byte(fmt.Sprintf(`{
  "socket": {"address": "127.0.0.1", "type": "TCP", "port": %d, "bufferSize": 1024},
  "devices": [{
    "address": "*:*", "addressFilter": "*:*", "deviceName": "Device Example", "deviceType": "default", "encoding": "utf-8",
    "telemetry": [{"key": "temp", "byteFrom": 0, "byteTo": -1}, {"key": "hum", "byteFrom": 0, "byteTo": 2}],
    "attributes": [{"key": "name", "byteFrom": 0, "byteTo": -1}, {"key": "num", "byteFrom": 2, "byteTo": 4}],
    "attributeRequests": [{"type": "shared", "requestExpression": "${[0:3]==atr}", "attributeNameExpression": "[3:]"}],
    "attributeUpdates": [{"encoding": "utf-16", "attributeOnThingsBoard": "sharedName"}],
    "serverSideRpc": [{"methodRPC": "rpcMethod1", "withResponse": true, "encoding": "utf-8"}]
  }]
}`, port))
}

// dialUntilUp connects to addr, retrying while the gateway starts its server.
func dialUntilUp(t *testing.T, addr string) net.Conn {
	t.Helper()
	return testpeer.Dial(t, addr)
}

func readExactly(t *testing.T, nc net.Conn, n int, what string) string {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		t.Fatalf("%s: %v (got %q)", what, err, b)
	}
	return string(b)
}

// TestSocketConnectorEndToEnd: a TCP device sends lines to the gateway's
// socket server (upstream's default socket.json); its values reach the
// platform; its attribute request is answered by the platform on its
// connection; a shared attribute update and an RPC from the platform are
// written to its connection and the RPC's reply reaches the platform.
func TestSocketConnectorEndToEnd(t *testing.T) {
	socketEndToEnd(t, func(path string) { startGateway(t, path, nil) })
}

// The same through the built binary.
func TestSocketConnectorBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	socketEndToEnd(t, func(path string) { runBinary(t, path) })
}

func socketEndToEnd(t *testing.T, start func(path string)) {
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	port := testpeer.FreePort(t)
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"socket": socketConnectorConfig(port)})
	start(path)

	dev := dialUntilUp(t, fmt.Sprintf("127.0.0.1:%d", port))
	// One message split over two writes arrives as one.
	dev.Write([]byte("23"))
	dev.Write([]byte(".5\n"))
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		for p, vs := range got {
			if p.Device == "Device Example" && string(vs["temp"]) == `"23.5"` && string(vs["hum"]) == `"23"` {
				return true
			}
		}
		return false
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "Device Example", "num", `".5"`) })

	// The device asks for its shared attribute; the platform answers.
	dev.Write([]byte("atrsharedName\n"))
	var req struct {
		ID     int64    `json:"id"`
		Device string   `json:"device"`
		Client bool     `json:"client"`
		Keys   []string `json:"keys"`
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		ms := testpeer.OnTopic(msgs, "v1/gateway/attributes/request")
		return len(ms) > 0 && json.Unmarshal(ms[0].Payload, &req) == nil
	})
	if req.Device != "Device Example" || req.Client || strings.Join(req.Keys, ",") != "sharedName" {
		t.Fatalf("attribute request %+v", req)
	}
	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes/response",
		[]byte(fmt.Sprintf(`{"id":%d,"device":"Device Example","values":{"sharedName":"pump-7"}}`, req.ID)), 1); err != nil {
		t.Fatal(err)
	}
	want := `{"sharedName":"pump-7"}`
	if got := readExactly(t, dev, len(want), "attribute response"); got != want {
		t.Errorf("attribute response %q, want %q", got, want)
	}

	// A shared attribute update, in the entry's encoding (UTF-16 with BOM).
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"Device Example","data":{"sharedName":"hi","other":1}}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := readExactly(t, dev, 6, "attribute update"); got != "\xff\xfeh\x00i\x00" {
		t.Errorf("attribute update bytes % x", got)
	}

	// An RPC: its params reach the device, the reply the platform.
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"Device Example","data":{"id":5,"method":"rpcMethod1","params":"ON"}}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := readExactly(t, dev, 2, "rpc"); got != "ON" {
		t.Errorf("rpc bytes %q", got)
	}
	plat.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if bytes.Equal(m.Payload, []byte(`{"device":"Device Example","id":5,"data":{"result":"ok"}}`)) {
				return true
			}
		}
		return false
	})
}
