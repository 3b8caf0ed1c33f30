package modbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

const downlinkKeys = `
	"rpc":[
		{"tag":"getSp","type":"32float","functionCode":3,"objectsCount":2,"address":4},
		{"tag":"setSp","type":"32float","functionCode":16,"objectsCount":2,"address":4},
		{"tag":"setI32","type":"32int","functionCode":16,"objectsCount":2,"address":10},
		{"tag":"setI16","type":"16int","functionCode":6,"objectsCount":1,"address":6},
		{"tag":"relay","type":"bits","functionCode":5,"objectsCount":1,"address":3},
		{"tag":"getRelay","type":"bits","functionCode":1,"objectsCount":1,"address":3},
		{"tag":"getCoils","type":"bits","functionCode":1,"objectsCount":3,"address":0}],
	"attributeUpdates":[
		{"tag":"sp16","type":"16int","functionCode":6,"objectsCount":1,"address":20},
		{"tag":"i32","type":"32int","functionCode":16,"objectsCount":2,"address":21},
		{"tag":"f32","type":"32float","functionCode":16,"objectsCount":2,"address":23},
		{"tag":"coil","type":"bits","functionCode":5,"objectsCount":1,"address":5},
		{"tag":"name","type":"string","functionCode":16,"objectsCount":2,"address":30}]`

// downlinkConnector has slave "a" (unit 1, BIG/BIG) and slave "b" (unit 2,
// byte BIG, word LITTLE) on one simulator, with the same downlink keys.
func downlinkConnector(t *testing.T, s *sim.Sim) *Connector {
	t.Helper()
	host, port := hostPort(t, s.Addr())
	slave := func(unit int, name, wordOrder string) string {
		return fmt.Sprintf(`{"host":%q,"port":%s,"unitId":%d,"deviceName":%q,"pollPeriod":1000,"byteOrder":"BIG","wordOrder":%q,
			"timeseries":[{"tag":"r0","type":"16uint","functionCode":3,"address":0}],%s}`, host, port, unit, name, wordOrder, downlinkKeys)
	}
	return connector(t, []byte(`{"master":{"slaves":[`+slave(1, "a", "BIG")+","+slave(2, "b", "LITTLE")+`]}}`))
}

func rpc(t *testing.T, d *Device, method, params string) string {
	t.Helper()
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	res, err := d.RPC(context.Background(), protocols.RPCRequest{ID: 1, Device: d.Info().Name, Method: method, Params: raw})
	if err != nil {
		t.Fatalf("%s %s: %v", method, params, err)
	}
	if !json.Valid(res) {
		t.Fatalf("%s: reply is not JSON: %s", method, res)
	}
	return string(res)
}

func rpcErr(d *Device, method, params string) error {
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	_, err := d.RPC(context.Background(), protocols.RPCRequest{Method: method, Params: raw})
	return err
}

func wantRegs(t *testing.T, s *sim.Sim, unit uint8, addr uint16, want ...uint16) {
	t.Helper()
	if got := s.Get(unit, addr, len(want)); !equalRegs(got, want) {
		t.Errorf("unit %d @%d = %04X, want %04X", unit, addr, got, want)
	}
}

func TestRPCConfiguredMethods(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	a, b := c.Device("a"), c.Device("b")

	// Upstream's FC 16 word-order vectors, written by rpc[] entries.
	vectors := []struct {
		d      *Device
		unit   uint8
		method string
		params string
		addr   uint16
		regs   []uint16
	}{
		{a, 1, "setI32", "305419896", 10, []uint16{0x1234, 0x5678}},
		{b, 2, "setI32", "305419896", 10, []uint16{0x5678, 0x1234}},
		{a, 1, "setSp", "12.34", 4, []uint16{0x4145, 0x70A4}},
		{b, 2, "setSp", "12.34", 4, []uint16{0x70A4, 0x4145}},
	}
	for _, v := range vectors {
		if got, want := rpc(t, v.d, v.method, v.params), `{"result":{"value":`+v.params+`}}`; got != want {
			t.Errorf("%s on %s: %s, want %s", v.method, v.d.Info().Name, got, want)
		}
		wantRegs(t, s, v.unit, v.addr, v.regs...)
	}
	for _, d := range []*Device{a, b} {
		if got := rpc(t, d, "getSp", ""); got != `{"result":{"value":12.34}}` {
			t.Errorf("getSp on %s: %s", d.Info().Name, got)
		}
	}

	// The widget shape {"value": …} and a numeric string; the reply echoes the value as sent.
	if got := rpc(t, a, "setI16", `{"value": "-3"}`); got != `{"result":{"value":"-3"}}` {
		t.Errorf("setI16: %s", got)
	}
	wantRegs(t, s, 1, 6, 0xFFFD)

	for _, c := range []struct {
		params string
		want   bool
	}{{"true", true}, {`{"value":0}`, false}, {`"1"`, true}, {`"off"`, false}, {"1", true}} {
		rpc(t, a, "relay", c.params)
		if got := s.Coils(1, 3, 1); len(got) != 1 || got[0] != c.want {
			t.Errorf("relay %s: coil %v", c.params, got)
		}
	}
	if got := rpc(t, a, "getRelay", ""); got != `{"result":{"value":true}}` {
		t.Errorf("getRelay: %s", got)
	}
	s.SetCoils(1, 0, true, false, true)
	if got := rpc(t, a, "getCoils", "null"); got != `{"result":{"value":[true,false,true]}}` {
		t.Errorf("getCoils: %s", got)
	}
}

func TestReservedGetSet(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	a, b := c.Device("a"), c.Device("b")

	s.Set(1, 2, 78)
	if got := rpc(t, a, "get", `"type=16int;functionCode=3;objectsCount=1;address=2;"`); got != `{"result":{"value":78}}` {
		t.Errorf("get: %s", got)
	}
	// Upstream replies with the value as its parser left it: a string.
	if got := rpc(t, a, "set", `"type=16int;functionCode=6;objectsCount=1;address=2;value=77;"`); got != `{"result":{"value":"77"}}` {
		t.Errorf("set: %s", got)
	}
	wantRegs(t, s, 1, 2, 77)
	if got := rpc(t, a, "GET", `" type = 16uint ; functionCode = 4 ; address = 2"`); got != `{"result":{"value":77}}` {
		t.Errorf("get with spaces, input register: %s", got)
	}
	rpc(t, a, "set", `"type=16int;functionCode=6;objectsCount=1;address=2; -5"`)
	wantRegs(t, s, 1, 2, 0xFFFB)

	for _, v := range []struct {
		d    *Device
		unit uint8
		regs []uint16
	}{{a, 1, []uint16{0x4145, 0x70A4}}, {b, 2, []uint16{0x70A4, 0x4145}}} {
		rpc(t, v.d, "set", `"type=32float;functionCode=16;objectsCount=2;address=40;value=12.34;"`)
		wantRegs(t, s, v.unit, 40, v.regs...)
		if got := rpc(t, v.d, "get", `"type=32float;functionCode=3;objectsCount=2;address=40;"`); got != `{"result":{"value":12.34}}` {
			t.Errorf("get 32float on %s: %s", v.d.Info().Name, got)
		}
	}
	// FC 6 with a two-register type goes out as FC 16.
	rpc(t, a, "set", `"type=32int;functionCode=6;objectsCount=2;address=44;value=305419896"`)
	wantRegs(t, s, 1, 44, 0x1234, 0x5678)

	rpc(t, a, "set", `"type=bits;functionCode=5;objectsCount=1;address=7;value=true;"`)
	if got := s.Coils(1, 7, 1); len(got) != 1 || !got[0] {
		t.Errorf("coil 7: %v", got)
	}
	rpc(t, a, "set", `"type=bits;functionCode=15;objectsCount=3;address=8;value=[1,0,1]"`)
	if got := s.Coils(1, 8, 3); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("coils 8..10: %v", got)
	}
	rpc(t, a, "set", `"type=string;functionCode=16;objectsCount=2;address=60;value=hey;"`)
	wantRegs(t, s, 1, 60, 0x6865, 0x7900)
	if got := rpc(t, a, "get", `"type=string;functionCode=3;objectsCount=2;address=60;"`); got != `{"result":{"value":"hey"}}` {
		t.Errorf("get string: %s", got)
	}
}

func TestRPCErrors(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	a := c.Device("a")
	rpc(t, a, "get", `"type=16int;functionCode=3;address=0"`) // opens the link
	before := s.Requests()
	cases := []struct {
		method, params string
		want           string
		is             error
	}{
		{"nope", "", `unknown rpc method "nope" for modbus device "a" (known: get, set, getSp, setSp, setI32, setI16, relay, getRelay, getCoils)`, protocols.ErrUnknownMethod},
		{"get", `"type=16int;functionCode=6;objectsCount=1;address=2;"`, `modbus device "a": get: functionCode 6 is not a read (want 1, 2, 3 or 4)`, ErrParams},
		{"get", `{"type":"16int"}`, `modbus device "a": get: params must be a string like "type=16int;functionCode=3;objectsCount=1;address=2;", got {"type":"16int"}`, ErrParams},
		{"set", "", `modbus device "a": set: params must be a string like "type=16int;functionCode=6;objectsCount=1;address=2;value=77;", got none`, ErrParams},
		{"set", `"type=16int;functionCode=6;objectsCount=1;address=2;"`, `modbus device "a": set: value is required for functionCode 6`, ErrParams},
		{"set", `"type=16int;functionCode=6;objectsCount=1;address=2;value=70000;"`, `modbus device "a": set: value "70000" does not fit 16int (range -32768..32767)`, ErrValue},
		{"set", `"type=16uint;functionCode=6;address=2;value=ten;"`, `modbus device "a": set: value "ten" is not a number (16uint)`, ErrValue},
		{"get", `"type=32int;functionCode=3;address=65535"`, `modbus device "a": get: address 65535 with 2 objects is out of range`, ErrParams},
		{"get", `"what ever"`, `modbus device "a": get: "what ever" is not key=value (want e.g. "type=16int;functionCode=3;objectsCount=1;address=2;")`, ErrParams},
		{"setI16", "70000", `modbus device "a": setI16: value 70000 does not fit 16int (range -32768..32767)`, ErrValue},
		{"setI16", "null", `modbus device "a": setI16: no value to write (params are empty)`, ErrValue},
		{"setI16", `{"v":1}`, `modbus device "a": setI16: params object has no "value"`, ErrValue},
		{"setSp", `"1e39"`, `modbus device "a": setSp: value "1e39" does not fit 32float (max ±3.4028234663852886e+38)`, ErrValue},
		{"relay", "2", `modbus device "a": relay: value 2 is not a bit (want true, false, 1 or 0)`, ErrValue},
	}
	for _, c := range cases {
		err := rpcErr(a, c.method, c.params)
		if err == nil || err.Error() != c.want || !errors.Is(err, c.is) {
			t.Errorf("%s %s:\n got %v\nwant %s", c.method, c.params, err, c.want)
		}
	}
	if n := s.Requests() - before; n != 0 {
		t.Errorf("rejected requests reached the device %d times", n)
	}
	// A request the slave refuses.
	err := rpcErr(a, "get", `"type=32int;functionCode=3;address=99"`)
	want := fmt.Sprintf("modbus tcp://%s unit 1: read holding registers @99 x2: illegal data address", s.Addr())
	if err == nil || err.Error() != want || !errors.Is(err, ErrException) {
		t.Errorf("refused read: %v, want %s", err, want)
	}
}

func TestUpdateAttributes(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	a, b := c.Device("a"), c.Device("b")
	if got := a.SharedAttributeKeys(); !slices.Equal(got, []string{"sp16", "i32", "f32", "coil", "name"}) {
		t.Errorf("shared keys %v", got)
	}
	values := map[string]json.RawMessage{
		"sp16": json.RawMessage(`77`), "i32": json.RawMessage(`305419896`), "f32": json.RawMessage(`"12.34"`),
		"coil": json.RawMessage(`true`), "name": json.RawMessage(`"ab"`), "other": json.RawMessage(`1`), "another": json.RawMessage(`{}`),
	}
	ctx := context.Background()
	ignored, err := a.UpdateAttributes(ctx, values)
	if err != nil || !slices.Equal(ignored, []string{"another", "other"}) {
		t.Fatalf("a: ignored %v, %v", ignored, err)
	}
	wantRegs(t, s, 1, 20, 77)
	wantRegs(t, s, 1, 21, 0x1234, 0x5678, 0x4145, 0x70A4)
	wantRegs(t, s, 1, 30, 0x6162, 0)
	if got := s.Coils(1, 5, 1); len(got) != 1 || !got[0] {
		t.Errorf("coil %v", got)
	}
	if _, err := b.UpdateAttributes(ctx, values); err != nil {
		t.Fatal(err)
	}
	wantRegs(t, s, 2, 21, 0x5678, 0x1234, 0x70A4, 0x4145)

	ignored, err = a.UpdateAttributes(ctx, map[string]json.RawMessage{
		"sp16": json.RawMessage(`70000`), "coil": json.RawMessage(`"maybe"`), "f32": json.RawMessage(`1`), "x": json.RawMessage(`1`)})
	want := `attribute "coil": value "maybe" is not a bit (want true, false, 1 or 0)` + "\n" +
		`attribute "sp16": value 70000 does not fit 16int (range -32768..32767)`
	if err == nil || err.Error() != want || !errors.Is(err, ErrValue) || !slices.Equal(ignored, []string{"x"}) {
		t.Errorf("errors:\n got %v (ignored %v)\nwant %s", err, ignored, want)
	}
	wantRegs(t, s, 1, 20, 77)             // the bad value wrote nothing
	wantRegs(t, s, 1, 23, 0x3F80, 0x0000) // the good one still went out
}

func connectorRPC(t *testing.T, c *Connector, method, params string) string {
	t.Helper()
	res, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: method, Params: json.RawMessage(params)})
	if err != nil {
		t.Fatalf("%s %s: %v", method, params, err)
	}
	if !json.Valid(res) {
		t.Fatalf("%s: reply is not JSON: %s", method, res)
	}
	return string(res)
}

func TestConnectorRPCAllSlaves(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	s.Set(1, 2, 78)
	s.Set(2, 2, 79)
	get := `{"type":"16int","functionCode":3,"objectsCount":1,"address":2,"connectorId":"d83f1c95"}`
	if got := connectorRPC(t, c, "modbus_get", get); got != `{"result":{"a":78,"b":79}}` {
		t.Errorf("get: %s", got)
	}
	if got := connectorRPC(t, c, "modbus_read", `"type=16int;functionCode=3;address=2"`); got != `{"result":{"a":78,"b":79}}` {
		t.Errorf("get, string params: %s", got)
	}
	set := `{"type":"32int","functionCode":16,"objectsCount":2,"address":50,"value":305419896}`
	if got := connectorRPC(t, c, "modbus_set", set); got != `{"result":{"a":305419896,"b":305419896}}` {
		t.Errorf("set: %s", got)
	}
	wantRegs(t, s, 1, 50, 0x1234, 0x5678)
	wantRegs(t, s, 2, 50, 0x5678, 0x1234)

	s.SetFailing(2, true)
	want := fmt.Sprintf(`{"result":{"a":78,"b":{"error":"modbus tcp://%s unit 2: read holding registers @2 x1: server device failure"}}}`, s.Addr())
	if got := connectorRPC(t, c, "modbus_get", get); got != want {
		t.Errorf("one failing slave:\n got %s\nwant %s", got, want)
	}
}

func TestConnectorRPCAdHoc(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 3, Registers: 100})
	c := downlinkConnector(t, s)
	host, port := hostPort(t, s.Addr())
	connectorRPC(t, c, "modbus_get", `{"type":"16int","functionCode":3,"address":0}`) // a and b take the link
	s.Set(3, 2, 80)
	// Unit 3 is no configured slave; it shares a and b's link. Without
	// orders it decodes with upstream's defaults, LITTLE/LITTLE.
	adHoc := `{"host":%q,"port":%s,"unitId":3,"type":"16int","functionCode":3,"objectsCount":1,"address":2%s}`
	if got := connectorRPC(t, c, "modbus_get", fmt.Sprintf(adHoc, host, port, "")); got != `{"result":20480}` {
		t.Errorf("ad-hoc get, byte order LITTLE: %s", got)
	}
	if got := connectorRPC(t, c, "modbus_get", fmt.Sprintf(adHoc, host, port, `,"byteOrder":"BIG"`)); got != `{"result":80}` {
		t.Errorf("ad-hoc get, byte order BIG: %s", got)
	}
	// Commands use the endpoint's command link (no poll ran, so it is the only one).
	if l := c.devices[0].cmdLink; l == nil || l.refs != 2 || len(c.pool.links) != 1 {
		t.Errorf("the ad-hoc slave must give its share of the link back (links %d)", len(c.pool.links))
	}

	s2 := startSim(t, sim.Options{Devices: 1, Registers: 10})
	host2, port2 := hostPort(t, s2.Addr())
	got := connectorRPC(t, c, "modbus_set", fmt.Sprintf(`{"host":%q,"port":%q,"unitId":1,"byteOrder":"BIG","wordOrder":"LITTLE",
		"type":"32float","functionCode":16,"objectsCount":2,"address":0,"value":12.34,"timeout":5000}`, host2, port2))
	if got != `{"result":12.34}` {
		t.Errorf("ad-hoc set: %s", got)
	}
	wantRegs(t, s2, 1, 0, 0x70A4, 0x4145)
	if len(c.pool.links) != 1 {
		t.Errorf("the ad-hoc link stays open: %d links", len(c.pool.links))
	}

	// The rpc's deadline bounds the ad-hoc slave's timeout.
	s2.SetSilent(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "modbus_get", Params: json.RawMessage(
		fmt.Sprintf(`{"host":%q,"port":%s,"unitId":1,"type":"16int","functionCode":3,"address":0}`, host2, port2))})
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Errorf("silent ad-hoc slave: %v after %v", err, time.Since(start))
	}
	s2.SetSilent(false)
}

func TestConnectorRPCErrors(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	c := downlinkConnector(t, s)
	cases := []struct {
		method, params string
		want           string
		is             error
	}{
		{"opcua_get", `{}`, `unknown rpc method "opcua_get" for modbus connector "modbus" (want modbus_<name>)`, protocols.ErrUnknownMethod},
		{"modbus_get", `null`, `modbus connector "modbus": modbus_get: params are required (want {"type", "functionCode", "address", "objectsCount"?, "value"?})`, ErrParams},
		{"modbus_get", `[1]`, `modbus connector "modbus": modbus_get: params must be an object like {"type":"16int","functionCode":3,"address":2}, got [1]`, ErrParams},
		{"modbus_set", `{"type":"16int","functionCode":6,"address":2}`, `modbus connector "modbus": modbus_set: value is required for functionCode 6`, ErrParams},
		{"modbus_set", `{"type":"16int","functionCode":333,"address":2,"value":1}`, `modbus connector "modbus": modbus_set: functionCode 333 is not supported (want 1, 2, 3, 4, 5, 6, 15 or 16)`, ErrParams},
		{"modbus_set", `{"type":"16int","functionCode":6,"address":2,"value":70000}`, `modbus connector "modbus": modbus_set: value 70000 does not fit 16int (range -32768..32767)`, ErrValue},
		{"modbus_set", `{"type":"16int","functionCode":6,"address":2,"value":"rrrree"}`, `modbus connector "modbus": modbus_set: value "rrrree" is not a number (16int)`, ErrValue},
		{"modbus_get", `{"host":"127.0.0.1","port":70000,"unitId":1,"type":"16int","functionCode":3,"address":2}`,
			`modbus connector "modbus": modbus_get: params.port: 70000 is out of range (want 1..65535)`, ErrParams},
		{"modbus_get", `{"unitId":1,"type":"16int","functionCode":3,"address":2}`,
			`modbus connector "modbus": modbus_get: params.host: is required`, ErrParams},
		{"modbus_get", `{"host":"127.0.0.1","port":502,"unitId":1,"byteOrder":"MIDDLE","type":"16int","functionCode":3,"address":2}`,
			`modbus connector "modbus": modbus_get: params.byteOrder: unknown value "MIDDLE" (want one of: BIG, LITTLE)`, ErrParams},
	}
	for _, c2 := range cases {
		_, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: c2.method, Params: json.RawMessage(c2.params)})
		if err == nil || err.Error() != c2.want || !errors.Is(err, c2.is) {
			t.Errorf("%s %s:\n got %v\nwant %s", c2.method, c2.params, err, c2.want)
		}
	}
	if n := s.Requests(); n != 0 {
		t.Errorf("rejected requests reached the slaves %d times", n)
	}
	if len(c.pool.links) != 0 {
		t.Errorf("rejected requests opened %d links", len(c.pool.links))
	}
}

// Devices on one link are polled by their own actors while commands arrive
// for them and for the connector; the link lock keeps every request whole.
func TestCommandsConcurrentWithPolls(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	s.Set(1, 0, 1)
	s.Set(2, 0, 2)
	c := downlinkConnector(t, s)
	a, b := c.Device("a"), c.Device("b")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, d := range []*Device{a, b} {
		run(func(int) error {
			r, err := d.Poll(context.Background())
			if err == nil && (len(r.Telemetry) != 1 || r.Telemetry[0].Value != protocols.Uint(uint64(d.Config().UnitID))) {
				err = fmt.Errorf("%s polled %v", d.Info().Name, r.Telemetry)
			}
			return err
		})
		run(func(i int) error {
			v := fmt.Sprint(1000*int(d.Config().UnitID) + i)
			if _, err := d.RPC(context.Background(), protocols.RPCRequest{Method: "setI16", Params: json.RawMessage(v)}); err != nil {
				return err
			}
			res, err := d.RPC(context.Background(), protocols.RPCRequest{Method: "get", Params: json.RawMessage(`"type=16int;functionCode=3;address=6"`)})
			if err == nil && string(res) != `{"result":{"value":`+v+`}}` {
				err = fmt.Errorf("%s read back %s, want %s", d.Info().Name, res, v)
			}
			return err
		})
	}
	run(func(int) error {
		res, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: "modbus_get", Params: json.RawMessage(`{"type":"16uint","functionCode":3,"address":0}`)})
		if err == nil && string(res) != `{"result":{"a":1,"b":2}}` {
			err = fmt.Errorf("connector rpc %s", res)
		}
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One link for polls and one for commands, however many slaves share the endpoint.
	if len(c.pool.links) != 2 {
		t.Errorf("%d links for one endpoint, want a poll link and a command link", len(c.pool.links))
	}
}

// TestCommandsDoNotWaitBehindSlowPolls: on a TCP endpoint shared by two
// slaves, a write to one is not queued behind a slow poll of the other.
func TestCommandsDoNotWaitBehindSlowPolls(t *testing.T) {
	s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0", Devices: 2, Registers: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, port, _ := net.SplitHostPort(s.Addr())
	slave := func(unit int, name string) string {
		return fmt.Sprintf(`{"type":"tcp","host":%q,"port":%s,"unitId":%d,"deviceName":%q,"pollPeriod":1000,"timeout":5,"byteOrder":"BIG",
		  "timeseries":[{"tag":"r0","type":"16uint","functionCode":3,"objectsCount":1,"address":0}],
		  "attributeUpdates":[{"tag":"sp","type":"16uint","functionCode":6,"objectsCount":1,"address":5}]}`, host, port, unit, name)
	}
	ps := &spec.Problems{}
	root := spec.Parse(ps, "modbus.json", []byte(`{"master":{"slaves":[`+slave(1, "fast")+`,`+slave(2, "slow")+`]}}`))
	conn, err := NewConnector(protocols.ConnectorConfig{Name: "m", Type: "modbus", Config: root})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	devs := conn.Devices()
	fast, slow := devs[0].(*Device), devs[1].(*Device)
	s.SetDelay(2, 3*time.Second)
	done := make(chan error, 1)
	go func() { _, err := slow.Poll(context.Background()); done <- err }()
	for s.Delayed() == 0 {
		runtime.Gosched()
	}
	// The slow poll holds the shared poll link for 3 s; the write must not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := fast.UpdateAttributes(ctx, map[string]json.RawMessage{"sp": json.RawMessage("42")}); err != nil {
		t.Fatalf("write queued behind the slow slave's poll: %v", err)
	}
	if v := s.Get(1, 5, 1)[0]; v != 42 {
		t.Fatalf("register 5 = %d", v)
	}
	s.SetDelay(2, 0)
	if err := <-done; err != nil {
		t.Fatalf("slow poll: %v", err)
	}
}

// An rpc entry with a type this build does not know loads with a warning,
// the rest of the slave runs, and calling it answers why (upstream fails the
// call, not the file).
func TestRPCUnusableEntry(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 100})
	host, port := hostPort(t, s.Addr())
	c := connector(t, []byte(fmt.Sprintf(`{"master":{"slaves":[{"host":%q,"port":%s,"unitId":1,"deviceName":"a","pollPeriod":1000,
		"timeseries":[{"tag":"r0","type":"16uint","functionCode":3,"address":0}],
		"rpc":[{"tag":"nibble","type":"4bits","functionCode":3,"objectsCount":1,"address":0},
		       {"tag":"getR0","type":"16uint","functionCode":3,"objectsCount":1,"address":0}]}]}}`, host, port)))
	a := c.Device("a")
	err := rpcErr(a, "nibble", "")
	want := `modbus device "a": nibble: rpc entry master.slaves[0].rpc[0] is not usable: type: unknown type "4bits"`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrParams) {
		t.Fatalf("unusable rpc: %v\nwant prefix %s", err, want)
	}
	if got := rpc(t, a, "getR0", ""); !strings.HasPrefix(got, `{"result":{"value":`) {
		t.Errorf("the valid rpc of the same slave: %s", got)
	}
}
