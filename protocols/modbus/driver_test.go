package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

func startSim(t testing.TB, o sim.Options) *sim.Sim {
	t.Helper()
	s, err := sim.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func connector(t testing.TB, raw []byte) *Connector {
	t.Helper()
	ps := &spec.Problems{}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "modbus", Type: "modbus", Config: spec.Parse(ps, "modbus.json", raw)})
	if err != nil {
		t.Fatal(err)
	}
	if w := ps.Warnings(); len(w) > 0 {
		t.Logf("warnings: %v", w)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func values(dps []protocols.Datapoint) map[string]protocols.Value {
	m := map[string]protocols.Value{}
	for _, dp := range dps {
		m[dp.Key] = dp.Value
	}
	return m
}

func TestPollDecodesTypesAndOrders(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 100})
	s.Set(1, 0, 0x1234, 0x5678) // 32int BIG/BIG
	s.Set(1, 2, 0x70A4, 0x4145) // 32float word LITTLE
	s.Set(1, 4, 0xFEFF)         // 16int byte LITTLE = -2
	s.Set(1, 5, 0x4845, 0x4C4C, 0x4F00)
	s.Set(1, 8, 0x3FF0, 0, 0, 0) // 64float 1.0
	s.Set(1, 12, 235)            // 16int, divider 10
	s.Set(1, 13, 0x8001)         // bits
	s.Set(1, 20, 0x7856, 0x3412) // 32uint LITTLE/LITTLE
	s.SetCoils(1, 0, true, false, true)
	s.Set(2, 0, 0x7856, 0x3412) // unit 2 defaults to LITTLE/LITTLE
	host, port := hostPort(t, s.Addr())
	raw := fmt.Sprintf(`{"master":{"slaves":[
	{"host":%[1]q,"port":%[2]s,"type":"tcp","unitId":1,"deviceName":"one","pollPeriod":1000,"byteOrder":"BIG","wordOrder":"BIG",
	 "attributes":[{"tag":"name","type":"string","functionCode":3,"objectsCount":3,"address":5}],
	 "timeseries":[
		{"tag":"i32","type":"32int","functionCode":3,"objectsCount":2,"address":0},
		{"tag":"f32","type":"32float","functionCode":3,"objectsCount":2,"address":2,"wordOrder":"LITTLE"},
		{"tag":"i16","type":"16int","functionCode":3,"objectsCount":1,"address":4,"byteOrder":"LITTLE"},
		{"tag":"f64","type":"64float","functionCode":4,"objectsCount":4,"address":8},
		{"tag":"scaled","type":"16int","functionCode":3,"objectsCount":1,"address":12,"divider":10},
		{"tag":"flag","type":"bits","functionCode":3,"objectsCount":1,"address":13,"bit":0},
		{"tag":"u32","type":"32uint","functionCode":3,"objectsCount":2,"address":20,"byteOrder":"LITTLE","wordOrder":"LITTLE"},
		{"tag":"coils","type":"bits","functionCode":1,"objectsCount":3,"address":0,"bitTargetType":"int"},
		{"tag":"di","type":"bits","functionCode":2,"objectsCount":1,"address":2}]},
	{"host":%[1]q,"port":%[2]s,"type":"tcp","unitId":2,"deviceName":"two","pollPeriod":1000,
	 "timeseries":[{"tag":"i32","type":"32int","functionCode":3,"objectsCount":2,"address":0}]}]}}`, host, port)
	c := connector(t, []byte(raw))
	devs := c.Devices()
	if len(devs) != 2 {
		t.Fatalf("%d devices", len(devs))
	}
	want := map[string]protocols.Value{
		"i32": protocols.Int(0x12345678), "f32": protocols.Float(12.34), "i16": protocols.Int(-2),
		"f64": protocols.Float(1), "scaled": protocols.Float(23.5), "flag": protocols.Bool(true),
		"u32": protocols.Uint(0x12345678), "coils": protocols.String("[1,0,1]"), "di": protocols.Bool(true),
	}
	// Both devices share one link; poll them concurrently to exercise the
	// unit-id serialization.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for _, d := range devs {
		wg.Add(1)
		go func(d protocols.Device) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				r, err := d.Poll(context.Background())
				if err != nil {
					errs <- err
					return
				}
				got := values(r.Telemetry)
				if d.Info().Name == "two" {
					if got["i32"] != protocols.Int(0x12345678) {
						errs <- fmt.Errorf("two: %v", got)
					}
					continue
				}
				for k, v := range want {
					if !sameValue(got[k], v) {
						errs <- fmt.Errorf("%s = %#v, want %#v", k, got[k], v)
					}
				}
				if a := values(r.Attributes); a["name"] != protocols.String("HELLO") || len(r.Attributes) != 1 {
					errs <- fmt.Errorf("attributes %v", r.Attributes)
				}
				if len(r.Telemetry) != len(want) {
					errs <- fmt.Errorf("%d timeseries", len(r.Telemetry))
				}
			}
		}(d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	d1, d2 := c.devices[0], c.devices[1]
	if d1.link == nil || d1.link != d2.link {
		t.Error("slaves on one endpoint must share a link")
	}
	// Keys are grouped: holding 0..7, 12..13 and 20..21, input 8..11, coils, discrete inputs.
	if d1.Requests() != 6 {
		t.Errorf("%d requests per poll, want 6", d1.Requests())
	}
}

func TestPollAnimatedSim(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 3, Registers: 40, Animate: true, Tick: 5 * time.Millisecond})
	c := connector(t, sim.GatewayConfig(s.Addr(), 3, 40, 100*time.Millisecond))
	ticks := map[uint64]bool{}
	for round := 0; round < 5; round++ {
		for _, d := range c.devices {
			r, err := d.Poll(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			unit := d.Config().UnitID
			if len(r.Telemetry) != 40 {
				t.Fatalf("%d values", len(r.Telemetry))
			}
			tick := sim.TickOf(unit, uint16(r.Telemetry[0].Value.U))
			ticks[tick] = true
			for i, dp := range r.Telemetry {
				if want := sim.Value(unit, uint16(i), tick); dp.Key != fmt.Sprintf("r%d", i) || dp.Value != protocols.Uint(uint64(want)) {
					t.Fatalf("%s: %s = %v, want %d (tick %d)", d.Info().Name, dp.Key, dp.Value, want, tick)
				}
			}
		}
	}
	if d := c.devices[0].Info(); d.Name != "sim-dev-1" || d.PollPeriod != 100*time.Millisecond {
		t.Errorf("info %+v", d)
	}
}

func simConnector(t testing.TB, addr string, extra string, timeseries string) *Connector {
	host, port := hostPort(t, addr)
	raw := fmt.Sprintf(`{"master":{"slaves":[{"host":%q,"port":%s,"type":"tcp","unitId":1,"deviceName":"d","pollPeriod":1000,
		"byteOrder":"BIG","wordOrder":"BIG"%s,"timeseries":[%s]}]}}`, host, port, extra, timeseries)
	return connector(t, []byte(raw))
}

const twoKeys = `{"tag":"a","type":"16uint","functionCode":3,"address":0},{"tag":"b","type":"16uint","functionCode":3,"address":1}`

func TestReconnectAfterSimRestart(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 10})
	addr := s.Addr()
	d := simConnector(t, addr, "", twoKeys).devices[0]
	if _, err := d.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := d.Poll(context.Background())
	if !errors.Is(err, ErrConnection) {
		t.Fatalf("poll after the sim stopped: %v", err)
	}
	if d.link.isOpen() {
		t.Error("a broken link must be closed")
	}
	_, err = d.Poll(context.Background())
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("poll while the sim is down: %v", err)
	}
	s2 := startSim(t, sim.Options{Addr: addr, Devices: 1, Registers: 10})
	s2.Set(1, 0, 42)
	r, err := d.Poll(context.Background())
	if err != nil {
		t.Fatalf("poll after restart: %v", err)
	}
	if values(r.Telemetry)["a"] != protocols.Uint(42) {
		t.Errorf("after restart: %v", r.Telemetry)
	}
}

func TestSilentSimTimesOut(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 10})
	d := simConnector(t, s.Addr(), `,"timeout":0.2`, twoKeys).devices[0]
	if _, err := d.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.SetSilent(true)
	start := time.Now()
	_, err := d.Poll(context.Background())
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, mb.ErrRequestTimedOut) {
		t.Fatalf("silent sim: %v", err)
	}
	// Generous bound: the point is that the slave's timeout, not some
	// library default, ends the wait.
	if elapsed > 2*time.Second {
		t.Errorf("timed out after %v with a 200ms timeout", elapsed)
	}
	want := fmt.Sprintf("modbus tcp://%s unit 1: read holding registers @0 x2: request timed out", s.Addr())
	if err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	s.SetSilent(false)
	if _, err := d.Poll(context.Background()); err != nil {
		t.Fatalf("after un-silencing: %v", err)
	}
}

func TestExceptionKeepsLink(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 10})
	d := simConnector(t, s.Addr(), "", twoKeys+`,{"tag":"far","type":"16uint","functionCode":3,"address":50}`).devices[0]
	s.Set(1, 0, 7, 8)
	r, err := d.Poll(context.Background())
	if !errors.Is(err, ErrException) || !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Fatalf("poll with an unmapped key: %v", err)
	}
	if got := values(r.Telemetry); len(r.Telemetry) != 2 || got["a"] != protocols.Uint(7) || got["b"] != protocols.Uint(8) {
		t.Errorf("partial reading %v", r.Telemetry)
	}
	if !d.link.isOpen() {
		t.Error("an exception must not close the link")
	}
	s.SetFailing(1, true)
	_, err = d.Poll(context.Background())
	want := fmt.Sprintf("modbus tcp://%s unit 1: read holding registers @0 x2: server device failure", s.Addr())
	if !errors.Is(err, mb.ErrServerDeviceFailure) || !strings.Contains(err.Error(), want) {
		t.Fatalf("failing unit: %v", err)
	}
	if !d.link.isOpen() {
		t.Error("an exception must not close the link")
	}
	s.SetFailing(1, false)
	before := s.Requests()
	if _, err := d.Poll(context.Background()); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Fatal(err)
	}
	if n := s.Requests() - before; n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestConnectionRefused(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	d := simConnector(t, addr, "", twoKeys).devices[0]
	_, err := d.Poll(context.Background())
	if !errors.Is(err, ErrConnection) {
		t.Fatalf("refused: %v", err)
	}
}

func TestWriteAndRead(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 20})
	host, port := hostPort(t, s.Addr())
	raw := fmt.Sprintf(`{"master":{"slaves":[{"host":%q,"port":%s,"deviceName":"d","pollPeriod":1000,"byteOrder":"BIG","wordOrder":"LITTLE",
		"attributeUpdates":[{"tag":"sp","type":"32float","functionCode":16,"objectsCount":2,"address":4},
		                    {"tag":"one","type":"16int","functionCode":6,"objectsCount":1,"address":6}],
		"rpc":[{"tag":"relay","type":"bits","functionCode":5,"objectsCount":1,"address":3},
		       {"tag":"getSp","type":"32float","functionCode":3,"objectsCount":2,"address":4}]}]}}`, host, port)
	d := connector(t, []byte(raw)).devices[0]
	ctx := context.Background()
	cfg := d.Config()
	if err := d.Write(ctx, cfg.AttributeUpdates[0], protocols.Float(12.34)); err != nil {
		t.Fatal(err)
	}
	if got := s.Get(1, 4, 2); !equalRegs(got, []uint16{0x70A4, 0x4145}) {
		t.Errorf("32float word LITTLE written as %04X", got)
	}
	if err := d.Write(ctx, cfg.AttributeUpdates[1], protocols.String("-3")); err != nil {
		t.Fatal(err)
	}
	if got := s.Get(1, 6, 1); !equalRegs(got, []uint16{0xFFFD}) {
		t.Errorf("16int written as %04X", got)
	}
	if err := d.Write(ctx, cfg.RPC[0], protocols.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if got := s.Coils(1, 3, 1); len(got) != 1 || !got[0] {
		t.Errorf("coil %v", got)
	}
	v, err := d.ReadKey(ctx, cfg.RPC[1])
	if err != nil || v != protocols.Float(12.34) {
		t.Errorf("ReadKey %v %v", v, err)
	}
	v, err = d.Read(ctx, 3, 6, 1, "16int")
	if err != nil || v != protocols.Int(-3) {
		t.Errorf("Read 16int %v %v", v, err)
	}
	v, err = d.Read(ctx, 1, 3, 1, "bits")
	if err != nil || v != protocols.Bool(true) {
		t.Errorf("Read coil %v %v", v, err)
	}
	if err := d.Write(ctx, cfg.RPC[1], protocols.Int(1)); err == nil {
		t.Error("writing with a read function code must fail")
	}
	if _, err := d.Read(ctx, 3, 65535, 2, "32int"); err == nil {
		t.Error("out of range read accepted")
	}
}

func TestCloseAndCancel(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 2, Registers: 10})
	c := connector(t, sim.GatewayConfig(s.Addr(), 2, 2, time.Second))
	d1, d2 := c.devices[0], c.devices[1]
	for _, d := range c.devices {
		if _, err := d.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	l := d1.link
	_ = d1.Close()
	if !l.isOpen() {
		t.Error("link closed while a device still uses it")
	}
	_ = d2.Close()
	if l.isOpen() || !l.closed {
		t.Error("link kept open after its last device closed")
	}
	if _, err := d1.Poll(context.Background()); err != nil {
		t.Fatalf("poll after Close reopens: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d1.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	_ = c.Close()
	if _, err := d2.Poll(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after connector Close: %v", err)
	}
	if _, err := d1.Poll(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after connector Close: %v", err)
	}
}

func TestNewDoesNoIO(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1})
	c := connector(t, sim.GatewayConfig(s.Addr(), 1, 5, time.Second))
	_ = c.Devices()[0].Info()
	if n := s.Requests(); n != 0 {
		t.Errorf("%d requests before the first poll", n)
	}
	if c.devices[0].link != nil {
		t.Error("link taken before the first poll")
	}
}

func TestDelayBetweenRequests(t *testing.T) {
	s := startSim(t, sim.Options{Devices: 1, Registers: 10})
	d := simConnector(t, s.Addr(), `,"delayBetweenRequestsMs":1`,
		`{"tag":"a","type":"16uint","functionCode":3,"address":0},{"tag":"b","type":"16uint","functionCode":4,"address":5},{"tag":"c","type":"bits","functionCode":1,"address":0}`).devices[0]
	r, err := d.Poll(context.Background())
	if err != nil || len(r.Telemetry) != 3 || s.Requests() != 3 {
		t.Fatalf("%v %v requests %d", r, err, s.Requests())
	}
}

func BenchmarkPoll(b *testing.B) {
	for _, regs := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("registers=%d", regs), func(b *testing.B) {
			s := startSim(b, sim.Options{Devices: 1, Registers: regs, Animate: true, Tick: time.Millisecond})
			d := connector(b, sim.GatewayConfig(s.Addr(), 1, regs, time.Second)).devices[0]
			ctx := context.Background()
			if _, err := d.Poll(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*regs)/b.Elapsed().Seconds(), "values/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
		})
	}
}

// TestLinkIsTheEndpoint: a slave's link for the poll slots
// (protocols.LinkedDevice) is its endpoint, slow from the outset only for a
// serial line.
func TestLinkIsTheEndpoint(t *testing.T) {
	var _ protocols.LinkedDevice = (*Device)(nil)
	for _, tc := range []struct {
		cfg  SlaveConfig
		want string
		slow bool
	}{
		{SlaveConfig{Type: "serial", Device: "/dev/ttyUSB0"}, "rtu:///dev/ttyUSB0", true},
		{SlaveConfig{Type: "tcp", Host: "10.0.0.5", Port: 502}, "tcp://10.0.0.5:502", false},
		{SlaveConfig{Type: "tcp", Method: "rtu", Host: "10.0.0.5", Port: 4001}, "rtuovertcp://10.0.0.5:4001", false},
		{SlaveConfig{Type: "udp", Host: "10.0.0.5", Port: 502}, "udp://10.0.0.5:502", false},
	} {
		if got, slow := (&Device{cfg: &tc.cfg}).Link(); got != tc.want || slow != tc.slow {
			t.Errorf("%s %s: link %q slow %v, want %q %v", tc.cfg.Type, tc.cfg.Endpoint(), got, slow, tc.want, tc.slow)
		}
	}
}
