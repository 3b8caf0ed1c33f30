package modbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// The wire tests run the driver against pymodbus's server over a real
// transport: a pty pair for serial RTU, a socket for RTU-over-TCP and UDP.

func wireSlave(dev string, unit int, extra string) string {
	return fmt.Sprintf(`{%s,"unitId":%d,"deviceName":"unit%d","pollPeriod":1000,"timeout":0.5,
	 "byteOrder":"BIG","wordOrder":"BIG",
	 "timeseries":[
		{"tag":"hr0","type":"16uint","functionCode":3,"objectsCount":1,"address":0},
		{"tag":"hr1","type":"16uint","functionCode":3,"objectsCount":1,"address":1},
		{"tag":"ir5","type":"16uint","functionCode":4,"objectsCount":1,"address":5},
		{"tag":"co","type":"bits","functionCode":1,"objectsCount":1,"address":2},
		{"tag":"di","type":"bits","functionCode":2,"objectsCount":1,"address":3}],
	 "attributeUpdates":[{"tag":"sp","type":"32int","functionCode":16,"objectsCount":2,"address":40}],
	 "rpc":[{"tag":"setCoil","type":"bits","functionCode":5,"objectsCount":1,"address":7},
	        {"tag":"getCoil","type":"bits","functionCode":1,"objectsCount":1,"address":7}]}`, dev, unit, unit)
}

func wantUnit(t *testing.T, d *Device, unit int) {
	t.Helper()
	r, err := d.Poll(context.Background())
	if err != nil {
		t.Fatalf("unit %d: %v", unit, err)
	}
	got := values(r.Telemetry)
	want := map[string]protocols.Value{
		"hr0": protocols.Uint(uint64(unit * 1000)), "hr1": protocols.Uint(uint64(unit*1000 + 1)),
		"ir5": protocols.Uint(uint64(unit*1000 + 505)), "co": protocols.Bool(true), "di": protocols.Bool(true),
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !sameValue(g, w) {
			t.Errorf("unit %d %s = %v, want %v", unit, k, g, w)
		}
	}
}

// exercise polls every device concurrently (the link must serialize them)
// and runs a write and an RPC on each.
func exercise(t *testing.T, c *Connector, py *testpeer.PySlave) {
	var wg sync.WaitGroup
	for _, d := range c.Devices() {
		d := d.(*Device)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				wantUnit(t, d, int(d.cfg.UnitID))
			}
		}()
	}
	wg.Wait()
	for _, dd := range c.Devices() {
		d := dd.(*Device)
		u := int(d.cfg.UnitID)
		sp := 70000 + u
		if _, err := d.UpdateAttributes(context.Background(), map[string]json.RawMessage{"sp": json.RawMessage(fmt.Sprint(sp))}); err != nil {
			t.Fatalf("unit %d: %v", u, err)
		}
		// 32int BIG/BIG: high word at 40.
		if got, want := py.Do("hr %d 40", u), fmt.Sprintf("hr %d 40 %d", u, sp>>16); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got, want := py.Do("hr %d 41", u), fmt.Sprintf("hr %d 41 %d", u, sp&0xffff); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got := rpc(t, d, "getCoil", ""); got != `{"result":{"value":false}}` {
			t.Errorf("unit %d getCoil before set = %s", u, got)
		}
		rpc(t, d, "setCoil", "true")
		if got := rpc(t, d, "getCoil", ""); got != `{"result":{"value":true}}` {
			t.Errorf("unit %d getCoil after set = %s", u, got)
		}
	}
}

func TestWireSerialRTUTwoSlaves(t *testing.T) {
	a, b := testpeer.PtyPair(t)
	py := testpeer.StartPySlave(t, "serial", "rtu", b, "1,2")
	dev := fmt.Sprintf(`"type":"serial","method":"rtu","port":%q,"baudrate":9600`, a)
	c := connector(t, []byte(`{"master":{"slaves":[`+wireSlave(dev, 1, "")+","+wireSlave(dev, 2, "")+`]}}`))
	exercise(t, c, py)
}

func TestWireRTUOverTCP(t *testing.T) {
	py := testpeer.StartPySlave(t, "tcp", "rtu", "0", "1,2")
	dev := fmt.Sprintf(`"type":"tcp","method":"rtu","host":"127.0.0.1","port":%s`, py.Port)
	c := connector(t, []byte(`{"master":{"slaves":[`+wireSlave(dev, 1, "")+","+wireSlave(dev, 2, "")+`]}}`))
	if ep := c.Devices()[0].(*Device).cfg.Endpoint(); !strings.HasPrefix(ep, "rtuovertcp://") {
		t.Fatalf("endpoint %s", ep)
	}
	exercise(t, c, py)
}

func TestWireUDP(t *testing.T) {
	py := testpeer.StartPySlave(t, "udp", "socket", "0", "1,2")
	dev := fmt.Sprintf(`"type":"udp","method":"socket","host":"127.0.0.1","port":%s`, py.Port)
	c := connector(t, []byte(`{"master":{"slaves":[`+wireSlave(dev, 1, "")+","+wireSlave(dev, 2, "")+`]}}`))
	exercise(t, c, py)
}

func TestWireRTUOverUDP(t *testing.T) {
	py := testpeer.StartPySlave(t, "udp", "rtu", "0", "3")
	dev := fmt.Sprintf(`"type":"udp","method":"rtu","host":"127.0.0.1","port":%s`, py.Port)
	c := connector(t, []byte(`{"master":{"slaves":[`+wireSlave(dev, 3, "")+`]}}`))
	exercise(t, c, py)
}

// A slave that stops answering times out; the other slave on the line keeps
// answering between its timeouts, and the dead one recovers once it answers.
func TestWireSerialDeadSlave(t *testing.T) {
	a, b := testpeer.PtyPair(t)
	py := testpeer.StartPySlave(t, "serial", "rtu", b, "1,2")
	dev := fmt.Sprintf(`"type":"serial","method":"rtu","port":%q,"baudrate":9600`, a)
	c := connector(t, []byte(`{"master":{"slaves":[`+wireSlave(dev, 1, "")+","+wireSlave(dev, 2, "")+`]}}`))
	one, two := c.Device("unit1"), c.Device("unit2")
	wantUnit(t, one, 1)
	wantUnit(t, two, 2)
	if got := py.Do("mute 2"); got != "muted 2" {
		t.Fatal(got)
	}
	for i := 0; i < 3; i++ {
		_, err := two.Poll(context.Background())
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, protocols.ErrTimeout) {
			t.Fatalf("muted unit 2: want timeout, got %v", err)
		}
		if !strings.Contains(err.Error(), "unit 2") {
			t.Errorf("error does not name the unit: %v", err)
		}
		wantUnit(t, one, 1)
	}
	if got := py.Do("unmute 2"); got != "unmuted 2" {
		t.Fatal(got)
	}
	wantUnit(t, two, 2)
	wantUnit(t, one, 1)
}

// Upstream's modbus_serial.json runs unchanged except for the port path.
func TestWireUpstreamSerialFile(t *testing.T) {
	raw, err := os.ReadFile("../../../shared/upstream-configs/thingsboard_gateway/config/modbus_serial.json")
	if err != nil {
		t.Skipf("upstream config corpus absent: %v", err)
	}
	a, b := testpeer.PtyPair(t)
	py := testpeer.StartPySlave(t, "serial", "rtu", b, "1")
	file := strings.Replace(string(raw), `"/dev/tty0"`, fmt.Sprintf("%q", a), 1)
	if file == string(raw) {
		t.Fatal("port /dev/tty0 not found in modbus_serial.json")
	}
	c := connector(t, []byte(file))
	d := c.Device("Modbus Temperature Sensor")
	if d == nil {
		t.Fatal("device missing")
	}
	r, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tel, attr := values(r.Telemetry), values(r.Attributes)
	if !sameValue(tel["temperature"], protocols.Uint(1501)) || !sameValue(tel["humidity"], protocols.Uint(1502)) {
		t.Errorf("telemetry %v", tel)
	}
	if _, ok := attr["16int"]; !ok {
		t.Errorf("attributes %v", attr)
	}
	if _, err := d.UpdateAttributes(context.Background(), map[string]json.RawMessage{"shared_attribute_write": json.RawMessage("65539")}); err != nil {
		t.Fatal(err)
	}
	if got := py.Do("hr 1 29") + "," + py.Do("hr 1 30"); got != "hr 1 29 1,hr 1 30 3" {
		t.Errorf("shared_attribute_write wrote %q", got)
	}
	rpc(t, d, "setValue", "true")
	if got := rpc(t, d, "getValue", ""); got != `{"result":{"value":true}}` {
		t.Errorf("getValue = %s", got)
	}
}

// BenchmarkWireSerialPoll polls one unit (5 keys, 4 requests) of pymodbus's
// serial RTU server over a pty pair: the serial path end to end.
func BenchmarkWireSerialPoll(b *testing.B) {
	a, pb := testpeer.PtyPair(b)
	testpeer.StartPySlave(b, "serial", "rtu", pb, "1")
	dev := fmt.Sprintf(`"type":"serial","method":"rtu","port":%q,"baudrate":9600`, a)
	c := connector(b, []byte(`{"master":{"slaves":[`+wireSlave(dev, 1, "")+`]}}`))
	d := c.Device("unit1")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*5/b.Elapsed().Seconds(), "values/s")
}
