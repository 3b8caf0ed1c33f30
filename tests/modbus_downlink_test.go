package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestModbusCommands: RPC and shared-attribute writes travel platform →
// gateway → Modbus slave and the replies come back, through a real mosquitto
// and the simulator over TCP.
func TestModbusCommands(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	s := startSim(t, 1, 40)
	s.Set(1, 0, 78)
	host, port := splitHostPort(s.Addr())
	conf := fmt.Sprintf(`{"master": {"slaves": [{
	  "type": "tcp", "host": %q, "port": %s, "unitId": 1, "deviceName": "PLC 1", "deviceType": "plc",
	  "pollPeriod": 200, "timeout": 1, "byteOrder": "BIG", "wordOrder": "BIG",
	  "timeseries": [{"tag": "level", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 0}],
	  "attributeUpdates": [{"tag": "setpoint", "type": "32float", "functionCode": 16, "objectsCount": 2, "address": 10}],
	  "rpc": [
	    {"tag": "getLevel", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 0},
	    {"tag": "setMode", "type": "16int", "functionCode": 6, "objectsCount": 1, "address": 20}
	  ]}]}}`, host, port)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/rpc", "v1/gateway/telemetry", "v1/devices/me/rpc/response/+")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": []byte(conf)},
		map[string]any{"syncDevicesSharedAttributesOnConnect": false})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "PLC 1") > 0
	})
	send := func(topic, body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), topic, []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	rpc := func(id int, method, params string) string {
		t.Helper()
		send("v1/gateway/rpc", fmt.Sprintf(`{"device":"PLC 1","data":{"id":%d,"method":%q,"params":%s}}`, id, method, params))
		r := waitReply(t, sub, "v1/gateway/rpc", hasID(fmt.Sprint(id)))
		return string(r["data"])
	}
	if got := rpc(1, "getLevel", "null"); got != `{"result":{"value":78}}` {
		t.Errorf("rpc read: %s", got)
	}
	if got := rpc(2, "setMode", "-5"); !strings.Contains(got, `"result"`) {
		t.Errorf("rpc write: %s", got)
	}
	if v := s.Get(1, 20, 1)[0]; v != 0xFFFB {
		t.Errorf("register 20 = %#x after setMode -5, want 0xfffb", v)
	}
	if got := rpc(3, "set", `"type=16uint;functionCode=6;objectsCount=1;address=30;value=77;"`); !strings.Contains(got, `"result"`) {
		t.Errorf("reserved set: %s", got)
	}
	if got := rpc(4, "get", `"type=16uint;functionCode=3;objectsCount=1;address=30;"`); got != `{"result":{"value":77}}` {
		t.Errorf("reserved get: %s", got)
	}
	if got := rpc(5, "set", `"type=16int;functionCode=6;objectsCount=1;address=30;value=70000;"`); !strings.Contains(got, "does not fit 16int") {
		t.Errorf("overflow: %s", got)
	}
	send("v1/gateway/attributes", `{"device":"PLC 1","data":{"setpoint":12.34}}`)
	testpeer.Eventually(t, 10*time.Second, "the setpoint registers to be written", func() error {
		if r := s.Get(1, 10, 2); r[0] != 0x4145 || r[1] != 0x70A4 {
			return fmt.Errorf("setpoint registers %#x", r)
		}
		return nil
	})
	send("v1/devices/me/rpc/request/50", `{"method":"modbus_read","params":{"type":"16uint","functionCode":3,"objectsCount":1,"address":0}}`)
	sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/devices/me/rpc/response/50" {
				if !strings.Contains(string(m.Payload), `"PLC 1":78`) {
					t.Errorf("connector rpc: %s", m.Payload)
				}
				return true
			}
		}
		return false
	})
}
