package tests

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// Serial Modbus through the gateway: pymodbus (Debian python3-pymodbus)
// serves RTU on one end of a socat pty pair, the gateway polls the other.

func needModbusPeers(t *testing.T) {
	t.Helper()
	testpeer.NeedProgram(t, "socat", "socat")
	testpeer.NeedPymodbus(t)
}

func rpcReplied(msgs []testpeer.Msg, reply string) bool {
	for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
		if string(m.Payload) == reply {
			return true
		}
	}
	return false
}

// TestModbusSerialEndToEnd: upstream's modbus_serial.json, unchanged but
// for its port, polls a pymodbus RTU slave over a pty; values reach
// mosquitto decoded, and a shared attribute and RPCs reach the slave.
func TestModbusSerialEndToEnd(t *testing.T) {
	modbusSerialEndToEnd(t, func(t *testing.T, path string) { startGateway(t, path, nil) })
}

// TestModbusSerialBinary is TestModbusSerialEndToEnd through the built
// iotgw binary: the serial line opened by the shipped program.
func TestModbusSerialBinary(t *testing.T) {
	modbusSerialEndToEnd(t, func(t *testing.T, path string) {
		r := runBinary(t, path)
		t.Cleanup(func() { r.noCrash(t) })
	})
}

func modbusSerialEndToEnd(t *testing.T, start func(t *testing.T, path string)) {
	needModbusPeers(t)
	raw, err := os.ReadFile("../../shared/upstream-configs/thingsboard_gateway/config/modbus_serial.json")
	if err != nil {
		t.Skipf("upstream config corpus absent: %v", err)
	}
	a, b := testpeer.PtyPair(t)
	slave := testpeer.StartPySlave(t, "serial", "rtu", b, "1")
	file := bytes.Replace(raw, []byte(`"/dev/tty0"`), []byte(fmt.Sprintf("%q", a)), 1)

	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": file})
	start(t, path)

	const dev = "Modbus Temperature Sensor"
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		v := deviceValues(msgs, dev)
		return v["temperature"] == "1501" && v["humidity"] == "1502"
	})
	// 16int reads the first of its two registers: 1503.
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, dev, "16int", "1503") })

	ctx, cancel := contextTimeout(20 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"`+dev+`","data":{"shared_attribute_write":65539}}`), 1); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ req, reply string }{
		{`{"device":"` + dev + `","data":{"id":1,"method":"getValue"}}`, `{"device":"` + dev + `","id":1,"data":{"result":{"value":false}}}`},
		{`{"device":"` + dev + `","data":{"id":2,"method":"setValue","params":true}}`, `{"device":"` + dev + `","id":2,"data":{"result":{"value":true}}}`},
		{`{"device":"` + dev + `","data":{"id":3,"method":"getValue"}}`, `{"device":"` + dev + `","id":3,"data":{"result":{"value":true}}}`},
		{`{"device":"` + dev + `","data":{"id":4,"method":"get","params":"type=16uint;functionCode=4;objectsCount=1;address=7;"}}`, `{"device":"` + dev + `","id":4,"data":{"result":{"value":1507}}}`},
	} {
		if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(r.req), 1); err != nil {
			t.Fatal(err)
		}
		plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return rpcReplied(msgs, r.reply) })
		if strings.Contains(r.req, `"id":1,`) {
			// The device actor runs commands in arrival order, so the
			// attribute update published before this RPC is on the slave.
			if got := slave.Do("hr 1 29") + "," + slave.Do("hr 1 30"); got != "hr 1 29 1,hr 1 30 3" {
				t.Errorf("shared_attribute_write 65539 wrote %q", got)
			}
		}
	}
}

// TestModbusSerialDeadSlave: two slaves on one line; when one stops
// answering it is disconnected from the platform and backs off, while the
// other keeps reporting on its schedule. It reconnects once it answers.
func TestModbusSerialDeadSlave(t *testing.T) {
	needModbusPeers(t)
	a, b := testpeer.PtyPair(t)
	slave := testpeer.StartPySlave(t, "serial", "rtu", b, "1,2")
	unit := func(u int) string {
		return fmt.Sprintf(`{"type":"serial","method":"rtu","port":%q,"baudrate":9600,"timeout":0.3,"unitId":%d,"byteOrder":"BIG",
		 "deviceName":"meter%d","pollPeriod":200,"connectAttemptTimeMs":500,"connectAttemptCount":2,
		 "reportStrategy":{"type":"ON_RECEIVED"},
		 "timeseries":[{"tag":"ir0","type":"16uint","functionCode":4,"objectsCount":1,"address":0}]}`, a, u, u)
	}
	file := []byte(`{"master":{"slaves":[` + unit(1) + "," + unit(2) + `]}}`)
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": file})
	startGateway(t, path, nil)

	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return deviceValues(msgs, "meter1")["ir0"] == "1500" && deviceValues(msgs, "meter2")["ir0"] == "2500"
	})
	if got := slave.Do("mute 2"); got != "muted 2" {
		t.Fatal(got)
	}
	disconnectedAt := -1
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for i, m := range msgs {
			if m.Topic == "v1/gateway/disconnect" && strings.Contains(string(m.Payload), `"meter2"`) {
				disconnectedAt = i
				return true
			}
		}
		return false
	})
	// meter1 keeps reporting after meter2 is gone.
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return len(telemetryPoints(msgs[disconnectedAt:], "meter1")) >= 5
	})
	if got := slave.Do("unmute 2"); got != "unmuted 2" {
		t.Fatal(got)
	}
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		return len(telemetryPoints(msgs[disconnectedAt:], "meter2")) > 0
	})
}

// telemetryPoints lists the timestamps device reported in msgs.
func telemetryPoints(msgs []testpeer.Msg, device string) []int64 {
	got, err := telemetry(msgs)
	if err != nil {
		return nil
	}
	var ts []int64
	for p := range got {
		if p.Device == device {
			ts = append(ts, p.Ts)
		}
	}
	return ts
}
