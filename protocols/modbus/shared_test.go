package modbus

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// TestSlavesShareKeys: slaves listing the same keys hold one copy of them
// and one read plan; any difference in a key, including one it inherits
// from its slave, keeps it apart.
func TestSlavesShareKeys(t *testing.T) {
	slave := func(unit int, extra, timeseries string) string {
		return fmt.Sprintf(`{"host":"127.0.0.1","port":5020,"unitId":%d,"deviceName":"d%d","pollPeriod":1000%s,
			"attributes":[{"tag":"model","type":"string","functionCode":3,"objectsCount":4,"address":100}],
			"timeseries":[%s]}`, unit, unit, extra, timeseries)
	}
	const temp = `{"tag":"temp","type":"16int","functionCode":4,"objectsCount":1,"address":0}`
	const state = `{"tag":"state","type":"16uint","functionCode":4,"objectsCount":1,"address":1,"variants":{"1":"on"}}`
	slaves := []string{
		slave(1, "", temp+","+state),
		slave(2, "", temp+","+state),
		slave(3, "", temp+`,{"tag":"state","type":"16uint","functionCode":4,"objectsCount":1,"address":1,"variants":{"1":"run"}}`),
		slave(4, `,"byteOrder":"BIG"`, temp+","+state),
		slave(5, "", temp),
	}
	cfg, ps := parseString(t, `{"master":{"slaves":[`+strings.Join(slaves, ",")+`]}}`, protocols.ReportStrategy{})
	if len(ps.List) != 0 {
		t.Fatalf("problems: %v", problems(ps))
	}
	s := cfg.Slaves
	devs := make([]*Device, len(s))
	for i := range s {
		devs[i] = newDevice(s[i], &pool{})
	}
	if &s[0].Timeseries[0] != &s[1].Timeseries[0] || &s[0].Attributes[0] != &s[1].Attributes[0] {
		t.Error("slaves 1 and 2 list the same keys but hold two lists")
	}
	if &devs[0].plan[0] != &devs[1].plan[0] {
		t.Error("slaves 1 and 2 read the same keys but hold two plans")
	}
	if s[2].Timeseries[0] != s[0].Timeseries[0] || s[2].Timeseries[1] == s[0].Timeseries[1] {
		t.Error("slave 3 must share temp and not state, whose variants differ")
	}
	if s[2].Timeseries[1].Variants["1"] != protocols.String("run") {
		t.Errorf("slave 3's state variants: %v", s[2].Timeseries[1].Variants)
	}
	if s[3].Timeseries[0] == s[0].Timeseries[0] || s[3].Timeseries[0].ByteOrder != Big {
		t.Error("slave 4's keys inherit its byte order and must be its own")
	}
	if s[4].Timeseries[0] != s[0].Timeseries[0] || len(devs[4].plan) != 2 || len(devs[4].plan[1].keys) != 1 {
		t.Errorf("slave 5 shares temp and has a plan of its own: %+v", devs[4].plan)
	}
	for i := 2; i < len(devs); i++ {
		if &devs[i].plan[0] == &devs[0].plan[0] {
			t.Errorf("slave %d has other keys but slave 1's plan", i+1)
		}
	}
	// Without Parse (a config built in code) a slave plans alone.
	own := *s[0]
	own.reads = nil
	if d := newDevice(&own, &pool{}); &d.plan[0] == &devs[0].plan[0] {
		t.Error("a slave config built without Parse shares a plan")
	}
}

// BenchmarkSlaveHeap reports what a slave of 10 registers (the bench's)
// keeps on the heap once parsed and made a device: 2,521 bytes a slave
// before slaves shared their keys, 246 after.
func BenchmarkSlaveHeap(b *testing.B) {
	const perFile = 200
	raw := sim.GatewayConfig("127.0.0.1:5020", perFile, 10, time.Second)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := int64(ms.HeapAlloc)
	var cs []*Connector
	for b.Loop() {
		var ps spec.Problems
		c, err := NewConnector(protocols.ConnectorConfig{Name: "b", Type: "modbus", Config: spec.Parse(&ps, "modbus.json", raw)})
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(int64(ms.HeapAlloc)-before)/float64(len(cs)*perFile), "heap-B/slave")
	runtime.KeepAlive(cs)
}
