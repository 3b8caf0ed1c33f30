package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/can"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// canConnectorConfig is an upstream can connector file on the in-process
// virtual bus named channel: values from frames, a polling request sent
// once when the bus opens, a shared attribute and RPC methods as frames.
func canConnectorConfig(channel string) []byte {
	return []byte(fmt.Sprintf(`{
  "name": "CAN",
  "interface": "virtual",
  "channel": %q,
  "reconnectPeriod": 1,
  "devices": [{
    "name": "Car", "type": "car",
    "attributes": [{"key": "serialNumber", "nodeId": 1, "isExtendedId": true, "value": "0:-1:string:ascii",
      "polling": {"type": "once", "dataInHex": "aa bb cc dd"}}],
    "timeseries": [
      {"key": "rpm", "nodeId": 418119424, "isExtendedId": true, "command": "2:2:big:48059", "value": "4:2:little:int", "expression": "value * 10"},
      {"key": "temperature", "nodeId": 258, "value": "0:4:little:float"},
      {"key": "doorOpen", "nodeId": 259, "value": "0:1:bool"}],
    "attributeUpdates": [{"attributeOnThingsBoard": "wheelSpeed", "nodeId": 305, "dataLength": 2,
      "dataByteorder": "little", "dataBefore": "00", "dataAfter": "ff"}],
    "serverSideRpc": [{"method": "setLightLevel", "nodeId": 5, "dataLength": 1, "response": true}]
  }]
}`, channel))
}

func canRecv(t *testing.T, ecu *can.VirtualEndpoint, what string) can.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := ecu.Recv(ctx)
	if err != nil {
		t.Fatalf("%s: no frame on the virtual bus: %v", what, err)
	}
	return f
}

func wantFrame(t *testing.T, got can.Frame, id uint32, ext bool, data ...byte) {
	t.Helper()
	if got.ID != id || got.Extended != ext || got.FD || !bytes.Equal(got.Data, data) {
		t.Errorf("frame %v, want id %#x ext %v data % x", got, id, ext, data)
	}
}

// TestCANConnectorEndToEnd: frames put on the virtual bus by a simulated
// ECU reach the platform as telemetry and attributes of the configured
// device; a shared attribute update and an RPC from the platform become the
// configured frames on the bus, and the RPC's reply reaches the platform.
func TestCANConnectorEndToEnd(t *testing.T) {
	channel := "e2e-" + t.Name()
	// The gateway runs in this process, so this endpoint and the
	// connector's share the virtual channel.
	ecu := can.NewVirtualBus(channel)
	defer ecu.Close()
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"can": canConnectorConfig(channel)})
	startGateway(t, path, nil)

	// The polling frame says the connector's bus is open.
	wantFrame(t, canRecv(t, ecu, "polling once"), 1, true, 0xaa, 0xbb, 0xcc, 0xdd)

	temp := binary.LittleEndian.AppendUint32(nil, math.Float32bits(21.5))
	for _, f := range []can.Frame{
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0xd2, 0x04}},
		{ID: 258, Data: temp},
		{ID: 259, Data: []byte{1}},
		{ID: 1, Extended: true, Data: []byte("SN-42")},
		{ID: 0x555, Data: []byte{1}}, // nobody's: counted, not sent
	} {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		values := deviceValues(msgs, "Car")
		return values["rpm"] == "12340" && values["temperature"] == "21.5" && values["doorOpen"] == "true"
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "Car", "serialNumber", `"SN-42"`) })
	connected := false
	for _, m := range testpeer.OnTopic(plat.Messages(), "v1/gateway/connect") {
		var c struct{ Device, Type string }
		if json.Unmarshal(m.Payload, &c) == nil && c.Device == "Car" && c.Type == "car" {
			connected = true
		}
	}
	if !connected {
		t.Errorf("no connect for Car with profile car: %v", testpeer.OnTopic(plat.Messages(), "v1/gateway/connect"))
	}

	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"Car","data":{"wheelSpeed":513,"ignored":1}}`), 1); err != nil {
		t.Fatal(err)
	}
	wantFrame(t, canRecv(t, ecu, "attribute update"), 305, false, 0x00, 0x01, 0x02, 0xff)

	rpcs := []struct {
		req   string
		id    uint32
		data  []byte
		reply string
	}{
		{`{"device":"Car","data":{"id":7,"method":"setLightLevel","params":7}}`, 5, []byte{7},
			`{"device":"Car","id":7,"data":{"success":true}}`},
		{`{"device":"Car","data":{"id":8,"method":"set","params":"nodeId=0x123;dataInHex=01 02"}}`, 0x123, []byte{1, 2},
			`{"device":"Car","id":8,"data":{"success":true}}`},
	}
	for _, r := range rpcs {
		if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(r.req), 1); err != nil {
			t.Fatal(err)
		}
		wantFrame(t, canRecv(t, ecu, r.req), r.id, false, r.data...)
		plat.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
			for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
				if string(m.Payload) == r.reply {
					return true
				}
			}
			return false
		})
	}
	// An unknown method is answered with an error and sends nothing.
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"Car","data":{"id":9,"method":"nope"}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if bytes.Contains(m.Payload, []byte(`"id":9`)) && bytes.Contains(m.Payload, []byte(`unknown rpc method \"nope\"`)) {
				return true
			}
		}
		return false
	})
	select {
	case f := <-ecu.C():
		t.Errorf("unexpected frame on the bus: %v", f)
	default:
	}
}
