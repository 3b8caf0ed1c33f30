package modbus

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func parseString(t testing.TB, raw string, global protocols.ReportStrategy) (*Config, *spec.Problems) {
	t.Helper()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "modbus.json", []byte(raw))
	return Parse(root, global), ps
}

// slaveJSON wraps key entries and extra slave fields into a one-slave file.
func slaveJSON(extra, timeseries string) string {
	return `{"master":{"slaves":[{"host":"127.0.0.1","port":5020,"type":"tcp","unitId":1,
		"deviceName":"dev","pollPeriod":1000` + extra + `,
		"timeseries":[` + timeseries + `]}]}}`
}

func problems(ps *spec.Problems) []string {
	var out []string
	for _, p := range ps.List {
		out = append(out, p.String())
	}
	return out
}

func TestSampleParsesCleanly(t *testing.T) {
	cfg, ps := parseString(t, string(Sample), protocols.ReportStrategy{})
	if len(ps.List) != 0 {
		t.Fatalf("sample has problems:\n%s", strings.Join(problems(ps), "\n"))
	}
	if len(cfg.Slaves) != 3 {
		t.Fatalf("%d slaves", len(cfg.Slaves))
	}
	s := cfg.Slaves[0]
	if s.Endpoint() != "tcp://192.168.10.20:502" || s.Timeout != 1500*time.Millisecond || s.ByteOrder != Big || s.WordOrder != Big {
		t.Errorf("slave 0: %s %v %v %v", s.Endpoint(), s.Timeout, s.ByteOrder, s.WordOrder)
	}
	if got := cfg.Slaves[1].Endpoint(); got != "rtuovertcp://192.168.10.30:4001" {
		t.Errorf("rtu over tcp endpoint %q", got)
	}
	if got := cfg.Slaves[2].Endpoint(); got != "rtu:///dev/ttyUSB0" || cfg.Slaves[2].Parity != "E" || cfg.Slaves[2].Baudrate != 9600 {
		t.Errorf("serial: %q %s %d", got, cfg.Slaves[2].Parity, cfg.Slaves[2].Baudrate)
	}
	if cfg.Slaves[1].DelayBetweenRequests != 20*time.Millisecond {
		t.Errorf("delay %v", cfg.Slaves[1].DelayBetweenRequests)
	}
	ts := s.Timeseries
	if ts[0].Type != TypeFloat32 || ts[0].FunctionCode != 4 || ts[0].Count != 2 || ts[0].Round != 2 {
		t.Errorf("voltage key: %+v", ts[0])
	}
	if ts[3].Variants["1"] != protocols.String("running") {
		t.Errorf("variants %v", ts[3].Variants)
	}
	if len(s.RPC) != 2 || len(s.AttributeUpdates) != 1 {
		t.Errorf("rpc %d attributeUpdates %d", len(s.RPC), len(s.AttributeUpdates))
	}
}

func TestConfigErrors(t *testing.T) {
	key := func(fields string) string {
		return `{"tag":"k","address":0,"functionCode":3` + fields + `}`
	}
	cases := []struct {
		name       string
		raw        string
		want       string // one of the problems, exactly
		wantErrors int    // -1: don't check
	}{
		{"unknown type", slaveJSON("", key(`,"type":"33int"`)),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].type: unknown type "33int" (want one of: string, bytes, bits, 8int, 8uint, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float, bit, int, long, integer, uint, float, double)`, 0},
		{"missing type", slaveJSON("", key(``)),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].type: is required`, 0},
		{"missing deviceName", `{"master":{"slaves":[{"host":"h","port":502,"pollPeriod":1000}]}}`,
			`modbus.json: master.slaves[0].deviceName: is required`, 1},
		{"pollPeriod text", strings.Replace(slaveJSON("", ""), `"pollPeriod":1000`, `"pollPeriod":"fast"`, 1),
			`modbus.json: master.slaves[0].pollPeriod: "fast" is not a number of milliseconds`, 1},
		{"pollPeriod zero", strings.Replace(slaveJSON("", ""), `"pollPeriod":1000`, `"pollPeriod":0`, 1),
			`modbus.json: master.slaves[0].pollPeriod: 0 must be a positive number of milliseconds`, 1},
		{"pollPeriod missing", strings.Replace(slaveJSON("", ""), `,"pollPeriod":1000`, ``, 1),
			`modbus.json: master.slaves[0].pollPeriod: is required`, 1},
		{"misspelt key", strings.Replace(slaveJSON("", ""), `"pollPeriod":1000`, `"pollPeriod":1000,"pollPeriood":5`, 1),
			`warning: modbus.json: master.slaves[0].pollPeriood: unknown key, ignored (did you mean "pollPeriod"?)`, 0},
		{"unknown key", slaveJSON(`,"colour":"red"`, ""),
			`warning: modbus.json: master.slaves[0].colour: unknown key, ignored`, 0},
		{"count larger than the type", slaveJSON("", key(`,"type":"16uint","objectsCount":2`)),
			`warning: modbus.json: master.slaves[0].timeseries[0].objectsCount: 2 is more than type 16uint needs (1 register): 2 are read and the first decoded`, 0},
		{"count larger than the type, write", `{"master":{"slaves":[{"host":"h","port":502,"deviceName":"d","pollPeriod":1000,
			"attributeUpdates":[{"tag":"k","address":0,"functionCode":6,"type":"16int","objectsCount":2}]}]}}`,
			`warning: modbus.json: master.slaves[0].attributeUpdates[0].objectsCount: 2 is more than type 16int needs (1 register): only that is written`, 0},
		{"rpc with an unknown type", `{"master":{"slaves":[{"host":"h","port":502,"deviceName":"d","pollPeriod":1000,
			"rpc":[{"tag":"k","address":0,"functionCode":3,"type":"4bits","objectsCount":1}]}]}}`,
			`warning: modbus.json: master.slaves[0].rpc[0].type: unknown type "4bits" (want one of: string, bytes, bits, 8int, 8uint, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float, bit, int, long, integer, uint, float, double, word, dword, unsigned, coil, coils)`, 0},
		{"count mismatch", slaveJSON("", key(`,"type":"32float","objectsCount":1`)),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].objectsCount: 1 does not fit type 32float (want 2 registers)`, 0},
		{"count mismatch coils", slaveJSON("", `{"tag":"k","address":0,"functionCode":1,"type":"16uint","registersCount":2}`),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].objectsCount: 2 does not fit type 16uint (want 16 bits)`, 0},
		{"legacy alias width", slaveJSON("", key(`,"type":"int","objectsCount":3`)),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].type: type "int" with objectsCount 3 would be 48 bits wide (want objectsCount 1, 2 or 4)`, 0},
		{"write fc in timeseries", slaveJSON("", `{"tag":"k","address":0,"functionCode":5,"type":"bits"}`),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].functionCode: 5 is not a read function code (want one of: 1, 2, 3, 4)`, 0},
		{"read fc in attributeUpdates", `{"master":{"slaves":[{"host":"h","port":502,"deviceName":"d","pollPeriod":1000,
			"attributeUpdates":[{"tag":"k","address":0,"functionCode":3,"type":"16int"}]}]}}`,
			`error (entry skipped): modbus.json: master.slaves[0].attributeUpdates[0].functionCode: 3 is not a write function code (want one of: 5, 6, 15, 16)`, 0},
		{"address range", slaveJSON("", `{"tag":"k","address":"0-10","functionCode":3,"type":"16int"}`),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].address: range "0-10" is not supported yet (use one key per address)`, 0},
		{"address past end", slaveJSON("", `{"tag":"k","address":65535,"functionCode":3,"type":"32int"}`),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].address: 65535 with 2 objects runs past address 65535`, 0},
		{"bit out of range", slaveJSON("", `{"tag":"k","address":0,"functionCode":1,"type":"bits","objectsCount":4,"bit":4}`),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].bit: 4 is out of range (the key has 4 bits: 0..3)`, 0},
		{"bad byteOrder", slaveJSON(`,"byteOrder":"MIDDLE"`, ""),
			`modbus.json: master.slaves[0].byteOrder: unknown value "MIDDLE" (want one of: BIG, LITTLE)`, 1},
		{"bad timeout", slaveJSON(`,"timeout":"slow"`, ""),
			`modbus.json: master.slaves[0].timeout: "slow" is not a number of seconds`, 1},
		{"divider zero", slaveJSON("", key(`,"type":"16int","divider":0`)),
			`error (entry skipped): modbus.json: master.slaves[0].timeseries[0].divider: must not be zero`, 0},
		{"ascii", slaveJSON(`,"method":"ascii"`, ""),
			`modbus.json: master.slaves[0].method: "ascii" framing is not supported (want socket or rtu)`, 1},
		{"serial without port", `{"master":{"slaves":[{"type":"serial","deviceName":"d","pollPeriod":1000}]}}`,
			`modbus.json: master.slaves[0].port: is required`, 1},
		{"duplicate deviceName", `{"master":{"slaves":[{"host":"h","deviceName":"d","pollPeriod":1000},{"host":"h","deviceName":"d","pollPeriod":1000}]}}`,
			`modbus.json: master.slaves[1].deviceName: "d" is already used by master.slaves[0]`, 1},
		{"server not reported", `{"master":{"slaves":[]},"slave":{"type":"tcp","port":5026}}`,
			`warning: modbus.json: slave.sendDataToThingsBoard: is not true: the Modbus server is not started (as upstream)`, 0},
		{"server over udp", `{"slave":{"type":"udp","port":5026,"sendDataToThingsBoard":true}}`,
			`modbus.json: slave.type: "udp" is not supported for the server yet (want tcp or serial)`, 1},
		{"server serial unit", `{"slave":{"type":"serial","port":"/dev/ttyS0","unitId":248,"sendDataToThingsBoard":true}}`,
			`modbus.json: slave.unitId: 248 is not a serial slave address (want 1-247, or 0 for every unit)`, 1},
		{"master on the served line", `{"slave":{"type":"serial","port":"/dev/ttyS0","sendDataToThingsBoard":true},
			"master":{"slaves":[{"type":"serial","port":"/dev/ttyS0","deviceName":"m","pollPeriod":1000}]}}`,
			`modbus.json: master.slaves[0].port: "/dev/ttyS0" is the line the slave section serves`, 1},
		{"server bad value", `{"slave":{"port":5026,"sendDataToThingsBoard":true,"values":{"holding_registers":{"timeseries":[
			{"tag":"t","type":"16int","address":1,"objectsCount":1,"value":70000}]}}}}`,
			`error (entry skipped): modbus.json: slave.values.holding_registers.timeseries[0].value: value 70000 does not fit 16int (range -32768..32767)`, 0},
		{"server bad table", `{"slave":{"port":5026,"sendDataToThingsBoard":true,"values":{"holdingRegisters":{}}}}`,
			`modbus.json: slave.values.holdingRegisters: unknown table (want coils_initializer, discrete_inputs, holding_registers or input_registers)`, 1},
		{"no master", `{"name":"x"}`, `modbus.json: master: is required`, 1},
		{"fc 6 for 32 bits", `{"master":{"slaves":[{"host":"h","deviceName":"d","pollPeriod":1000,
			"attributeUpdates":[{"tag":"k","address":0,"functionCode":6,"type":"32int","objectsCount":2}]}]}}`,
			`warning: modbus.json: master.slaves[0].attributeUpdates[0].functionCode: 6 writes a single register but the key has 2; functionCode 16 is used`, 0},
		{"bad json", `{"master":`, `modbus.json: invalid JSON: unexpected EOF`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := parseString(t, tc.raw, protocols.ReportStrategy{})
			got := problems(ps)
			found := false
			for _, p := range got {
				if p == tc.want {
					found = true
				}
			}
			if !found {
				t.Errorf("missing problem\n  want: %s\n  got:  %s", tc.want, strings.Join(got, "\n        "))
			}
			if tc.wantErrors >= 0 && len(ps.Errors()) != tc.wantErrors {
				t.Errorf("%d errors, want %d: %s", len(ps.Errors()), tc.wantErrors, strings.Join(got, "\n"))
			}
		})
	}
}

func TestConfigCollectsAllErrors(t *testing.T) {
	raw := `{"master":{"slaves":[
		{"host":"h","pollPeriod":-1,"timeseries":[{"tag":"a","type":"9int","functionCode":3,"address":0}]},
		{"host":"h","deviceName":"x","pollPeriod":100,"timeseries":[{"type":"16int","functionCode":9,"address":0}]}]}}`
	_, ps := parseString(t, raw, protocols.ReportStrategy{})
	want := []string{
		`modbus.json: master.slaves[0].deviceName: is required`,
		`modbus.json: master.slaves[0].pollPeriod: -1 must be a positive number of milliseconds`,
		`master.slaves[0].timeseries[0].type: unknown type "9int"`,
		`modbus.json: master.slaves[1].timeseries[0].tag: is required`,
		`modbus.json: master.slaves[1].timeseries[0].functionCode: 9 is not a read function code (want one of: 1, 2, 3, 4)`,
	}
	all := strings.Join(problems(ps), "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in\n%s", w, all)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, ps := parseString(t, slaveJSON("", `{"tag":"t","type":"32float","functionCode":3,"address":4}`), protocols.ReportStrategy{})
	if ps.HasErrors() {
		t.Fatal(problems(ps))
	}
	s := cfg.Slaves[0]
	if s.Timeout != DefaultTimeout || s.ByteOrder != Little || s.WordOrder != Little || s.DeviceType != "default" ||
		s.ConnectAttemptCount != MinConnectAttemptCount || s.ConnectAttemptTime != DefaultConnectAttemptTime || s.Method != "socket" {
		t.Errorf("defaults: %+v", s)
	}
	k := s.Timeseries[0]
	if k.Count != 2 || k.Round != DefaultRound || k.Bit != -1 || k.ByteOrder != Little {
		t.Errorf("key defaults: %+v", k)
	}
}

func TestReportPrecedence(t *testing.T) {
	global := protocols.ReportStrategy{Type: protocols.OnReceived, Period: time.Second}
	raw := `{"reportStrategy":{"type":"ON_CHANGE"},"master":{"slaves":[
		{"host":"h","deviceName":"inherits-file","pollPeriod":1000,
		 "timeseries":[{"tag":"a","type":"16int","functionCode":3,"address":0},
		               {"tag":"b","type":"16int","functionCode":3,"address":1,"reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":5000}}]},
		{"host":"h","deviceName":"own","pollPeriod":1000,"reportStrategy":{"type":"DISABLED"}}]}}`
	cfg, ps := parseString(t, raw, global)
	if ps.HasErrors() {
		t.Fatal(problems(ps))
	}
	c, err := NewConnector(protocols.ConnectorConfig{Config: spec.Parse(&spec.Problems{}, "modbus.json", []byte(raw)), Report: global})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Slaves[0].Report; got.Type != protocols.OnChange {
		t.Errorf("file-level strategy not inherited: %+v", got)
	}
	if got := cfg.Slaves[1].Report; got.Type != protocols.ReportDisabled {
		t.Errorf("slave strategy: %+v", got)
	}
	info := c.devices[0].Info()
	if info.KeyReport["b"].Type != protocols.OnReportPeriod || info.KeyReport["b"].Period != 5*time.Second {
		t.Errorf("key strategy: %+v", info.KeyReport)
	}
	if _, ok := info.KeyReport["a"]; ok {
		t.Error("key a has no own strategy")
	}
	// Nothing in the file: the global strategy applies.
	cfg, _ = parseString(t, slaveJSON("", ""), global)
	if cfg.Slaves[0].Report != global {
		t.Errorf("global strategy: %+v", cfg.Slaves[0].Report)
	}
}

func TestNewReportsErrors(t *testing.T) {
	ps := &spec.Problems{}
	root := spec.Parse(ps, "modbus.json", []byte(`{"master":{"slaves":[{"host":"h","port":502,"pollPeriod":1000}]}}`))
	_, err := NewConnector(protocols.ConnectorConfig{Name: "m", Type: "modbus", Config: root})
	if err == nil || !strings.Contains(err.Error(), `modbus.json: master.slaves[0].deviceName: is required`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewConnector(protocols.ConnectorConfig{}); err == nil {
		t.Fatal("nil config accepted")
	}
	if f, ok := protocols.Lookup("modbus"); !ok || f == nil {
		t.Fatal("modbus is not registered")
	}
}

func TestPlanGrouping(t *testing.T) {
	raw := `{"master":{"slaves":[{"host":"h","deviceName":"d","pollPeriod":1000,
		"attributes":[{"tag":"s","type":"string","functionCode":3,"objectsCount":4,"address":10}],
		"timeseries":[
			{"tag":"a","type":"16int","functionCode":3,"address":0},
			{"tag":"b","type":"32float","functionCode":3,"address":1},
			{"tag":"c","type":"16uint","functionCode":3,"address":3},
			{"tag":"gap","type":"16uint","functionCode":3,"address":5},
			{"tag":"overlap","type":"16uint","functionCode":3,"address":12},
			{"tag":"in","type":"16uint","functionCode":4,"address":0},
			{"tag":"c1","type":"bits","functionCode":1,"address":0},
			{"tag":"c2","type":"bits","functionCode":1,"address":1,"objectsCount":3},
			{"tag":"far","type":"16uint","functionCode":3,"address":200},
			{"tag":"far2","type":"64uint","functionCode":3,"address":322}]}]}}`
	cfg, ps := parseString(t, raw, protocols.ReportStrategy{})
	if ps.HasErrors() {
		t.Fatal(problems(ps))
	}
	plan := buildPlan(cfg.Slaves[0])
	type span struct{ fc, addr, count, keys int }
	var got []span
	for _, r := range plan {
		got = append(got, span{r.fc, r.addr, r.count, len(r.keys)})
	}
	want := []span{{1, 0, 4, 2}, {3, 0, 4, 3}, {3, 5, 1, 1}, {3, 10, 4, 2}, {3, 200, 1, 1}, {3, 322, 4, 1}, {4, 0, 1, 1}}
	if len(got) != len(want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %v, want %v", i, got[i], want[i])
		}
	}
	// 125 registers at most per read.
	var keys []string
	for i := 0; i < 130; i++ {
		keys = append(keys, `{"tag":"r`+strconv.Itoa(i)+`","type":"16uint","functionCode":3,"address":`+strconv.Itoa(i)+`}`)
	}
	cfg, _ = parseString(t, slaveJSON("", strings.Join(keys, ",")), protocols.ReportStrategy{})
	plan = buildPlan(cfg.Slaves[0])
	if len(plan) != 2 || plan[0].count != 125 || plan[1].addr != 125 || plan[1].count != 5 {
		t.Errorf("split plan: %+v", plan)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(Sample)
	f.Add([]byte(slaveJSON("", `{"tag":"k","type":"33int","functionCode":3,"address":"0-10"}`)))
	f.Add([]byte(`{"master":{"slaves":[{"type":"serial","port":"/dev/x","deviceName":"d","pollPeriod":"1e3","timeseries":[{"tag":"a","type":"bits","functionCode":3,"bit":40,"objectsCount":"3"}]}]}}`))
	f.Add([]byte(`{"master":{"slaves":[{"host":"h","deviceName":"d","pollPeriod":1,"timeseries":[{"tag":"a","type":"int","functionCode":1,"address":65535,"objectsCount":2000,"variants":{"1":[]}}]}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ps := &spec.Problems{}
		root := spec.Parse(ps, "modbus.json", raw)
		c, err := NewConnector(protocols.ConnectorConfig{Config: root})
		if root == nil {
			return
		}
		if err == nil {
			for _, d := range c.devices {
				_ = d.Info()
				for _, r := range d.plan {
					if r.count <= 0 || r.count > requestLimit(r.fc) || r.addr+r.count > 65536 {
						t.Fatalf("bad request %+v", r)
					}
				}
			}
			_ = c.Close()
		}
	})
}
