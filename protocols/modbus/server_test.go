package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	mb "github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// upstreamServerFile is upstream's default modbus.json with the server
// enabled on port and the master section emptied (its slaves are not here).
func upstreamServerFile(t testing.TB, port int) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../../shared/upstream-configs/thingsboard_gateway/config/modbus.json")
	if err != nil {
		t.Skipf("upstream config corpus absent: %v", err)
	}
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	slave := file["slave"].(map[string]any)
	slave["sendDataToThingsBoard"] = true
	slave["port"] = port
	file["master"] = map[string]any{"slaves": []any{}}
	out, _ := json.Marshal(file)
	return out
}

// TestServerUpstreamDefault: the served registers hold upstream's default
// `values` with the file's orders, a Modbus master (pymodbus) reads and
// writes them, the reporting device polls what the master wrote, and its
// shared attribute and RPC write the registers.
func TestServerUpstreamDefault(t *testing.T) {
	port := testpeer.FreePort(t)
	c := connector(t, upstreamServerFile(t, port))
	if c.Config().Server == nil {
		t.Fatal("server not configured")
	}
	d := c.Device("Modbus Slave Example")
	if d == nil {
		t.Fatal("reporting device missing")
	}
	r, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// byteOrder LITTLE: 12334 (0x302E) is 0x2E30 on the wire; "ON" is text,
	// never reordered.
	attrs, tele := values(r.Attributes), values(r.Telemetry)
	if !sameValue(tele["smm"], protocols.Int(12334)) || !sameValue(attrs["sm"], protocols.String("ON")) {
		t.Errorf("poll: attributes %v telemetry %v", attrs, tele)
	}
	got := testpeer.PyMaster(t, port, "hr:1:2", "hr:29:3", "co:5:1")
	want := []string{"hr 1 [20302,11824]", "hr 29 [56068,0,5632]", "co 5 [0]"} // "ON"; 1243 as 32int LITTLE/LITTLE; 22 as 16int LITTLE
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("master read %q, want %q", got, want)
	}

	// A master's write becomes the device's next reading.
	if got := testpeer.PyMaster(t, port, "whr:2:"+fmt.Sprint(0x3930)); got[0] != "ok" { // 12345 little-endian
		t.Fatalf("write: %v", got)
	}
	r, err = d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v := values(r.Telemetry)["smm"]; !sameValue(v, protocols.Int(12345)) {
		t.Errorf("after the master's write smm = %v, want 12345", v)
	}

	// Platform → registers.
	if _, err := d.UpdateAttributes(context.Background(), map[string]json.RawMessage{"shared_attribute_write": json.RawMessage("70000")}); err != nil {
		t.Fatal(err)
	}
	rpc(t, d, "setValue", "7")
	// 32int 70000 = 0x00011170, LITTLE/LITTLE: words [0x7011, 0x0100]; 16int 7 LITTLE = 0x0700.
	if got := testpeer.PyMaster(t, port, "hr:29:3"); got[0] != fmt.Sprintf("hr 29 [%d,%d,%d]", 0x7011, 0x0100, 0x0700) {
		t.Errorf("after platform writes: %v", got)
	}
}

func TestServerNotStartedUnlessReported(t *testing.T) {
	port := testpeer.FreePort(t)
	raw := fmt.Sprintf(`{"master":{"slaves":[]},"slave":{"type":"tcp","host":"127.0.0.1","port":%d,"deviceName":"s","pollPeriod":100}}`, port)
	c := connector(t, []byte(raw))
	if c.Config().Server != nil || len(c.Devices()) != 0 {
		t.Fatalf("server configured without sendDataToThingsBoard: %+v", c.Config().Server)
	}
}

func TestServerPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	raw := fmt.Sprintf(`{"slave":{"host":"127.0.0.1","port":%d,"sendDataToThingsBoard":true,"deviceName":"s","pollPeriod":100}}`, port)
	c := connector(t, []byte(raw))
	_, err = c.Device("s").Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("modbus server 127.0.0.1:%d (slave)", port)) {
		t.Fatalf("busy port: %v", err)
	}
	l.Close()
	// The next poll binds it.
	if _, err := c.Device("s").Poll(context.Background()); err != nil {
		t.Fatalf("after the port is free: %v", err)
	}
}

// FuzzServerConfig parses `slave` sections; every value that loads must lie
// inside the register space and read back from a store as it was encoded.
func FuzzServerConfig(f *testing.F) {
	f.Add([]byte(`{"slave":{"port":5026,"sendDataToThingsBoard":true,"byteOrder":"LITTLE","values":{"holding_registers":{
		"timeseries":[{"tag":"t","type":"32float","address":65534,"objectsCount":2,"value":1.5}],
		"rpc":[{"tag":"r","type":"16int","functionCode":6,"address":3,"value":-2}]},
		"coils_initializer":{"attributes":[{"tag":"c","type":"bits","address":9,"objectsCount":3,"value":[1,0,1]}]}}}}`))
	f.Add([]byte(`{"slave":{"sendDataToThingsBoard":true,"values":{"input_registers":{"attributes":[{"tag":"s","type":"string","address":0,"objectsCount":2,"value":"héllo"}]}}}}`))
	f.Add([]byte(`{"slave":{"sendDataToThingsBoard":true,"values":{"discrete_inputs":{"timeseries":[{"tag":"x","type":"8uint","objectsCount":8,"address":1,"value":"0x10"}]}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ps := &spec.Problems{}
		root := spec.Parse(ps, "modbus.json", raw)
		if root == nil {
			return
		}
		cfg := Parse(root, protocols.ReportStrategy{})
		if cfg.Server == nil || ps.HasErrors() {
			return
		}
		for _, v := range cfg.Server.Values {
			n := max(len(v.Regs), len(v.Bits))
			if int(v.Key.Address)+n > 65536 {
				t.Fatalf("value past the register space: %+v", v)
			}
			s := NewStore([]ServerValue{v})
			if v.Table <= 2 {
				if got := s.Bits(v.Table, v.Key.Address, n); !equalBits(got, v.Bits) {
					t.Fatalf("bits %v read back as %v", v.Bits, got)
				}
			} else if got := s.Registers(v.Table, v.Key.Address, n); !equalRegs(got, v.Regs) {
				t.Fatalf("registers %v read back as %v", v.Regs, got)
			}
		}
	})
}

// BenchmarkServerStore measures the served register path: a 10-register
// holding read and write through the library's handler interface.
func BenchmarkServerStore(b *testing.B) {
	s := NewStore(nil)
	w := &mb.HoldingRegistersRequest{Addr: 100, Quantity: 10, IsWrite: true, Args: make([]uint16, 10)}
	r := &mb.HoldingRegistersRequest{Addr: 100, Quantity: 10}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.HandleHoldingRegisters(w); err != nil {
			b.Fatal(err)
		}
		if _, err := s.HandleHoldingRegisters(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*20/b.Elapsed().Seconds(), "registers/s")
}

// BenchmarkServerPoll polls the reporting device of a served slave over
// loopback TCP (the whole server path: client, library server, store, codec).
func BenchmarkServerPoll(b *testing.B) {
	port := testpeer.FreePort(b)
	raw := fmt.Sprintf(`{"slave":{"host":"127.0.0.1","port":%d,"sendDataToThingsBoard":true,"deviceName":"s","pollPeriod":100,
	 "byteOrder":"BIG","values":{"holding_registers":{"timeseries":[
	  {"tag":"a","type":"32float","address":0,"objectsCount":2,"value":1.5},
	  {"tag":"b","type":"16int","address":2,"objectsCount":1,"value":-3},
	  {"tag":"c","type":"64uint","address":3,"objectsCount":4,"value":12345678901}]}}}}`, port)
	c := connector(b, []byte(raw))
	d := c.Device("s")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := d.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*3/b.Elapsed().Seconds(), "values/s")
}
