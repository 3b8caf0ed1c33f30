package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestModbusServerEndToEnd: upstream's modbus.json with its slave section
// enabled (sendDataToThingsBoard, a free port, a short poll period, no
// master slaves), served over TCP to a pymodbus master.
func TestModbusServerEndToEnd(t *testing.T) {
	needModbusPeers(t)
	port := testpeer.FreePort(t)
	modbusSlaveEndToEnd(t, func(slave map[string]any) { slave["port"] = port },
		func(cmd string) string { return testpeer.PyMaster(t, port, cmd)[0] })
}

// TestModbusSerialServerEndToEnd: the same slave section served as RTU on
// one end of a socat pty pair (type serial, method rtu, the pty as port,
// unit 1), pymodbus's RTU master on the other.
func TestModbusSerialServerEndToEnd(t *testing.T) {
	needModbusPeers(t)
	a, b := testpeer.PtyPair(t)
	modbusSlaveEndToEnd(t, func(slave map[string]any) {
		slave["type"], slave["method"], slave["port"], slave["unitId"], slave["baudrate"] = "serial", "rtu", b, 1, 19200
	}, func(cmd string) string { return testpeer.PySerialMaster(t, a, 19200, cmd)[0] })
}

// modbusSlaveEndToEnd runs upstream's modbus.json slave section, adjusted
// by transport, against mosquitto as the platform and master as the
// Modbus master: the served values reach the platform; the master's write
// reaches it as telemetry; a shared attribute and an RPC from the platform
// land in the registers the master reads.
func modbusSlaveEndToEnd(t *testing.T, transport func(slave map[string]any), master func(cmd string) string) {
	t.Helper()
	raw, err := os.ReadFile("../../shared/upstream-configs/thingsboard_gateway/config/modbus.json")
	if err != nil {
		t.Skipf("upstream config corpus absent: %v", err)
	}
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	slave := file["slave"].(map[string]any)
	slave["sendDataToThingsBoard"], slave["pollPeriod"] = true, 200
	transport(slave)
	file["master"] = map[string]any{"slaves": []any{}}
	conf, _ := json.Marshal(file)

	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": conf})
	startGateway(t, path, nil)

	const dev = "Modbus Slave Example"
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return deviceValues(msgs, dev)["smm"] == "12334" })
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, dev, "sm", `"ON"`) })

	// 12345 with byteOrder LITTLE is 0x3930 on the wire.
	if got := master(fmt.Sprintf("whr:2:%d", 0x3930)); got != "ok" {
		t.Fatalf("master write: %s", got)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return deviceValues(msgs, dev)["smm"] == "12345" })

	ctx, cancel := contextTimeout(20 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"`+dev+`","data":{"shared_attribute_write":70000}}`), 1); err != nil {
		t.Fatal(err)
	}
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"`+dev+`","data":{"id":5,"method":"setValue","params":7}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return rpcReplied(msgs, `{"device":"`+dev+`","id":5,"data":{"result":{"value":7}}}`)
	})
	// The device runs commands in order: the attribute is written too.
	// 32int 70000 LITTLE/LITTLE = [0x7011, 0x0100]; 16int 7 LITTLE = 0x0700.
	if got, want := master("hr:29:3"), fmt.Sprintf("hr 29 [%d,%d,%d]", 0x7011, 0x0100, 0x0700); got != want {
		t.Errorf("registers after the platform's writes: %s, want %s", got, want)
	}
}
