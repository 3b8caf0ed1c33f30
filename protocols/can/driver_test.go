package can

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// waitTimeout bounds every wait on an event; tests never sleep to sync.
const waitTimeout = 20 * time.Second

const testCfg = `{"name":"t","interface":"virtual","channel":"%s","reconnectPeriod":0.05,
 "reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":60000},
 "devices":[
  {"name":"Car","type":"car","sendDataOnlyOnChange":true,
   "attributes":[{"key":"serialNumber","nodeId":1,"isExtendedId":true,"value":"0:-1:string:ascii"}],
   "timeseries":[
     {"key":"rpm","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48059","value":"4:2:little:int","expression":"value * 10"},
     {"key":"milliage","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48060","value":{"start":4,"length":4,"byteorder":"little","type":"int","signed":true}},
     {"key":"temperature","nodeId":258,"value":"0:4:little:float","reportStrategy":{"type":"ON_RECEIVED"}},
     {"key":"doorOpen","nodeId":259,"value":"0:1:bool"}],
   "attributeUpdates":[
     {"attributeOnThingsBoard":"wheelSpeed","nodeId":305,"dataLength":2,"dataByteorder":"little","dataBefore":"00","dataAfter":"ff"},
     {"attributeOnThingsBoard":"tooBig","nodeId":306,"dataLength":1}],
   "serverSideRpc":[
     {"method":"sendSameData","nodeId":4,"isExtendedId":true,"dataInHex":"aa bb cc dd ee ff aa bb"},
     {"method":"setSpeed","nodeId":16,"dataExpression":"userSpeed * 10","dataLength":2,"response":true},
     {"method":"setLightLevel","nodeId":5,"dataLength":1},
     {"method":"fdMethod","nodeId":6,"isFd":true,"bitrateSwitch":true,"dataInHex":"01 02 03 04 05 06 07 08 09 0a 0b 0c"}]},
  {"name":"Bike","type":"bike","enableUnknownRpc":true,
   "timeseries":[{"key":"speed","nodeId":258,"value":"4:1:int"}],
   "serverSideRpc":[{"method":"horn","nodeId":7,"dataInHex":"01"}]},
  {"name":"Truck","overrideRpcConfig":true,"serverSideRpc":[{"method":"lamp","nodeId":8,"dataLength":1,"dataInHex":"ff"}]}
 ]}`

func newConn(t testing.TB, js string, opts ...Option) *Connector {
	t.Helper()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "can.json", []byte(js))
	c, err := NewConnector(protocols.ConnectorConfig{Name: "can-test", Type: "can", Config: root, Logger: zerolog.Nop()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run starts c.Run and stops it (checking it returned nil) at cleanup.
func run(t testing.TB, c *Connector, s *sinktest.Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
}

// startVirtual runs a connector on a fresh virtual channel and returns it
// with the sink and a test endpoint on the same channel ("the other ECUs").
func startVirtual(t *testing.T, js string, opts ...Option) (*Connector, *sinktest.Recorder, *VirtualEndpoint) {
	t.Helper()
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch)
	t.Cleanup(func() { ecu.Close() })
	c := newConn(t, fmt.Sprintf(js, ch), opts...)
	s := sinktest.New()
	run(t, c, s)
	s.Wait(t, waitTimeout, "bus open", func() bool { return s.Ups() == 1 })
	return c, s, ecu
}

func recv(t testing.TB, ep *VirtualEndpoint) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	f, err := ep.Recv(ctx)
	if err != nil {
		t.Fatalf("no frame on the bus: %v", err)
	}
	return f
}

func checkFrame(t testing.TB, got Frame, id uint32, ext bool, data string) {
	t.Helper()
	want, _ := parseHex(data)
	if got.ID != id || got.Extended != ext || got.FD || !bytes.Equal(got.Data, want) {
		t.Errorf("frame %v, want id %#x ext %v data % x", got, id, ext, want)
	}
}

func le32f(f float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(f)) }

func TestRunPushesDecodedValues(t *testing.T) {
	c, s, ecu := startVirtual(t, testCfg)

	// Start-up: every configured device is announced with its strategies.
	s.Wait(t, waitTimeout, "announcements", func() bool { return s.Pushed() >= 3 })
	ann := s.Pushes()[:3]
	onChange := protocols.ReportStrategy{Type: protocols.OnChange, Period: 10 * time.Second}
	period := protocols.ReportStrategy{Type: protocols.OnReportPeriod, Period: time.Minute}
	if ann[0].Device != "Car" || ann[0].Profile != "car" || ann[0].Report != onChange ||
		ann[0].KeyReport["temperature"] != (protocols.ReportStrategy{Type: protocols.OnReceived, Period: 10 * time.Second}) ||
		ann[1].Device != "Bike" || ann[1].Report != period || ann[2].Device != "Truck" || ann[2].Profile != "can" {
		t.Errorf("announcements: %+v", ann)
	}

	frames := []Frame{
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0xd2, 0x04}},             // rpm 1234*10
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbc, 0xfe, 0xff, 0xff, 0xff}}, // milliage -2
		{ID: 258, Data: append(le32f(21.5), 42)},                                                // Car temperature + Bike speed
		{ID: 259, Data: []byte{1}},                                                              // doorOpen
		{ID: 1, Extended: true, Data: []byte("SN-1")},                                           // serialNumber
		{ID: 0x555, Data: []byte{1}},                                                            // nobody's
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0x12, 0x34, 1, 2}},                   // unknown command
		{ID: 258, Data: le32f(1)},                                                               // Bike speed: byte 4 missing
		{ID: 259, Remote: true, Data: make([]byte, 1)},                                          // remote request
	}
	for _, f := range frames {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	s.Wait(t, waitTimeout, "all frames handled", func() bool {
		return len(s.DataPushes()) == 7 && s.UnmatchedCount() == 3 && len(s.MalformedReports()) == 1 && c.Stats().Pushed == 7
	})
	type dp struct {
		dev, key string
		attr     bool
		v        protocols.Value
	}
	var got []dp
	for _, p := range s.DataPushes() {
		if p.Ts.IsZero() || p.Report != c.byName[p.Device].report || p.Profile != c.byName[p.Device].cfg.Type {
			t.Errorf("push %+v: want a receive time and the device's strategy", p)
		}
		for _, d := range p.Reading.Telemetry {
			got = append(got, dp{p.Device, d.Key, false, d.Value})
		}
		for _, d := range p.Reading.Attributes {
			got = append(got, dp{p.Device, d.Key, true, d.Value})
		}
	}
	want := []dp{
		{"Car", "rpm", false, protocols.Int(12340)},
		{"Car", "milliage", false, protocols.Int(-2)},
		{"Car", "temperature", false, protocols.Float(21.5)},
		{"Bike", "speed", false, protocols.Int(42)},
		{"Car", "doorOpen", false, protocols.Bool(true)},
		{"Car", "serialNumber", true, protocols.String("SN-1")},
		{"Car", "temperature", false, protocols.Float(1)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("values\n got %v\nwant %v", got, want)
	}
	if m := s.MalformedReports()[0]; m.Where != "can id 0x102 key speed" || !errors.Is(m.Err, ErrConvert) || !strings.Contains(m.Err.Error(), `device "Bike"`) {
		t.Errorf("malformed: %v", s.MalformedReports())
	}
	if st := c.Stats(); st.Received != uint64(len(frames)) || st.Dropped != 0 || st.Pushed != 7 || st.Opens != 1 {
		t.Errorf("stats %+v", st)
	}
}

const pollCfg = `{"interface":"virtual","channel":"%s","reconnectPeriod":0.01,"devices":[{"name":"P",
 "attributes":[{"key":"sn","nodeId":1,"isExtendedId":true,"value":"0:-1:string","polling":{"type":"once","dataInHex":"aa bb cc dd"}}],
 "timeseries":[{"key":"rpm","nodeId":418119424,"isExtendedId":true,"value":"4:2:little:int","polling":{"type":"always","period":0.02,"dataInHex":"aaaa bbbb aaaa bbbb"}},
   {"key":"t","nodeId":258,"value":"0:1:int","polling":{"period":3600,"dataInHex":"01"}}]}]}`

// lossyBus wraps a bus; closing kill makes Recv fail as a lost adapter would.
type lossyBus struct {
	Bus
	kill chan struct{}
}

func (b *lossyBus) Recv(ctx context.Context) (Frame, error) {
	type res struct {
		f   Frame
		err error
	}
	// The virtual bus honours ctx, so a derived ctx ends the inner Recv.
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan res, 1)
	go func() {
		f, err := b.Bus.Recv(ictx)
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-b.kill:
		return Frame{}, errors.New("adapter unplugged")
	}
}

func TestPollingSendsExactFrames(t *testing.T) {
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch, WithQueue(4096))
	defer ecu.Close()
	var mu sync.Mutex
	var kill chan struct{}
	opener := func(ctx context.Context) (Bus, error) {
		mu.Lock()
		defer mu.Unlock()
		kill = make(chan struct{})
		return &lossyBus{Bus: VirtualBus{NewVirtualBus(ch)}, kill: kill}, nil
	}
	c := newConn(t, fmt.Sprintf(pollCfg, ch), WithOpener(opener))
	s := sinktest.New()
	run(t, c, s)

	once, always, third := "aa bb cc dd", "aaaa bbbb aaaa bbbb", "01"
	// Right after the open: every polling frame once, in file order.
	checkFrame(t, recv(t, ecu), 1, true, once)
	checkFrame(t, recv(t, ecu), 418119424, true, always)
	checkFrame(t, recv(t, ecu), 258, false, third)
	// Then only the "always" keys, each every period (the third key is
	// "always" by default, with a period longer than the test).
	for i := 0; i < 3; i++ {
		checkFrame(t, recv(t, ecu), 418119424, true, always)
	}
	s.Wait(t, waitTimeout, "open", func() bool { return s.Ups() == 1 })
	mu.Lock()
	close(kill)
	mu.Unlock()
	s.Wait(t, waitTimeout, "reopen", func() bool { return s.Ups() == 2 })
	// After the re-open the once frame is sent again. Periodic frames of
	// the first incarnation may still be queued before it.
	for {
		f := recv(t, ecu)
		if f.ID == 1 {
			checkFrame(t, f, 1, true, once)
			break
		}
		checkFrame(t, f, 418119424, true, always)
	}
	checkFrame(t, recv(t, ecu), 418119424, true, always)
	checkFrame(t, recv(t, ecu), 258, false, third)
	checkFrame(t, recv(t, ecu), 418119424, true, always)
	if l := s.Links(); len(l) != 3 || l[1].Up || l[1].Err == nil || !strings.Contains(l[1].Err.Error(), "adapter unplugged") {
		t.Errorf("links %v", l)
	}
	if st := c.Stats(); st.Opens != 2 || st.Lost != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAttributeUpdatesAndRPCFrames(t *testing.T) {
	c, _, ecu := startVirtual(t, testCfg)
	ctx := context.Background()
	car := c.Commander("Car", "car")
	if c.Commander("Nobody", "") != nil {
		t.Error("commander for an unknown device")
	}
	if k := car.SharedAttributeKeys(); fmt.Sprint(k) != "[wheelSpeed tooBig]" {
		t.Errorf("shared keys %v", k)
	}

	ignored, err := car.UpdateAttributes(ctx, map[string]json.RawMessage{"wheelSpeed": json.RawMessage(`513`), "other": json.RawMessage(`1`)})
	if err != nil || fmt.Sprint(ignored) != "[other]" {
		t.Errorf("update: %v %v", ignored, err)
	}
	checkFrame(t, recv(t, ecu), 305, false, "00 01 02 ff")
	_, err = car.UpdateAttributes(ctx, map[string]json.RawMessage{"tooBig": json.RawMessage(`300`)})
	if !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), `can device "Car": attribute "tooBig" (devices[0].attributeUpdates[1]): `) {
		t.Errorf("out of range update: %v", err)
	}

	rpc := func(cmd protocols.Commander, method, params string) (string, error) {
		res, err := cmd.RPC(ctx, protocols.RPCRequest{ID: 1, Method: method, Params: json.RawMessage(params)})
		return string(res), err
	}
	ok := func(cmd protocols.Commander, method, params string, id uint32, ext bool, data string) {
		t.Helper()
		res, err := rpc(cmd, method, params)
		if err != nil || res != `{"success":true}` {
			t.Fatalf("%s %s: %s %v", method, params, res, err)
		}
		checkFrame(t, recv(t, ecu), id, ext, data)
	}
	ok(car, "sendSameData", ``, 4, true, "aa bb cc dd ee ff aa bb")
	ok(car, "setSpeed", `{"userSpeed": 5}`, 16, false, "00 32")
	ok(car, "setLightLevel", `7`, 5, false, "07")
	ok(car, "setLightLevel", `{"value": 8}`, 5, false, "08")
	ok(car, "set", `"nodeId=0x123;dataInHex=01 02"`, 0x123, false, "01 02")
	ok(car, "set", `"nodeId=0x1234;isExtendedId=true;value=513;dataLength=2"`, 0x1234, true, "02 01")
	bike, truck := c.Commander("Bike", "bike"), c.Commander("Truck", "can")
	ok(bike, "horn", ``, 7, false, "01")
	ok(bike, "anything", `{"nodeId": 9, "dataInHex": "0a0b"}`, 9, false, "0a 0b")
	ok(truck, "lamp", `{"nodeId": 11}`, 11, false, "ff")
	ok(truck, "lamp", ``, 8, false, "ff")
	ok(truck, "lamp", `{"value": 3, "dataInHex": null}`, 8, false, "03")

	// The virtual bus carries CAN FD as python-can's does.
	if res, err := rpc(car, "fdMethod", ``); err != nil || res != `{"success":true}` {
		t.Fatalf("fd on virtual: %v", err)
	}
	if f := recv(t, ecu); !f.FD || !f.BRS || f.ID != 6 || len(f.Data) != 12 {
		t.Errorf("fd frame %v", f)
	}

	bad := map[string]struct{ method, params, want string }{
		"unknown":     {"nope", `{}`, `can device "Car": rpc nope: unknown rpc method "nope" (known: set, sendSameData, setSpeed, setLightLevel, fdMethod; enableUnknownRpc is off)`},
		"set object":  {"set", `{"nodeId":1}`, `can device "Car": rpc set: params must be a string like "nodeId=0x123;isExtendedId=false;dataInHex=01 02", got {"nodeId":1}`},
		"set params":  {"set", `"dataInHex=01"`, `can device "Car": rpc set: set params: nodeId: is required`},
		"bad value":   {"setLightLevel", `300`, `can device "Car": rpc setLightLevel: can conversion failed: 300 does not fit in 1 unsigned byte(s)`},
		"bad json":    {"setLightLevel", `{`, `can device "Car": rpc setLightLevel: params: { is not valid JSON: unexpected EOF`},
		"no variable": {"setSpeed", `{}`, ``},
	}
	for name, b := range bad {
		_, err := rpc(car, b.method, b.params)
		if err == nil || (b.want != "" && err.Error() != b.want) {
			t.Errorf("%s: got %v\nwant %s", name, err, b.want)
		}
	}
	if _, err := rpc(car, "nope", ``); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("unknown method is not ErrUnknownMethod: %v", err)
	}
	if _, err := rpc(bike, "anything", `{"dataInHex":"01"}`); err == nil || err.Error() != `can device "Bike": rpc anything: rpc "anything" params: nodeId: is required` {
		t.Errorf("unknown rpc without nodeId: %v", err)
	}
	if c.Stats().Sent != 13 {
		t.Errorf("sent %d, want 13", c.Stats().Sent)
	}
	// Nothing else reached the bus.
	select {
	case f := <-ecu.C():
		t.Errorf("unexpected frame %v", f)
	default:
	}
}

func TestCommandsWhileBusDown(t *testing.T) {
	c := newConn(t, fmt.Sprintf(testCfg, "down-"+t.Name()))
	_, err := c.Commander("Car", "car").RPC(context.Background(), protocols.RPCRequest{Method: "sendSameData"})
	if !errors.Is(err, protocols.ErrIO) || !strings.Contains(err.Error(), `the virtual bus "down-TestCommandsWhileBusDown" is not open`) {
		t.Errorf("rpc on a closed bus: %v", err)
	}
}

func TestReceiveQueueOverrunIsCounted(t *testing.T) {
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch)
	defer ecu.Close()
	c := newConn(t, fmt.Sprintf(testCfg, ch), WithReceiveQueue(4))
	s := sinktest.New()
	gate := make(chan struct{})
	s.SetGate(gate)
	run(t, c, s)
	s.Wait(t, waitTimeout, "open", func() bool { return s.Ups() == 1 })
	const n = 50
	for i := 0; i < n; i++ {
		if err := ecu.Send(Frame{ID: 259, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The sink holds the first push: the reader must keep reading and drop,
	// and tell the sink what it dropped.
	s.Wait(t, waitTimeout, "all frames read", func() bool { return c.Stats().Received == n && s.DroppedTotal() >= n-5 })
	close(gate)
	s.Wait(t, waitTimeout, "queued frames delivered", func() bool {
		st := c.Stats()
		return st.Pushed+st.Dropped == n && len(s.DataPushes())+s.DroppedTotal() == n
	})
	if st := c.Stats(); st.Dropped < n-5 || st.Pushed < 4 {
		t.Errorf("stats %+v: want at most 5 delivered (1 in the sink, 4 queued), the rest dropped", st)
	}
	for _, d := range s.DroppedReports() {
		if d.Where != "can receive queue" || d.N != 1 || d.Err == nil || !strings.Contains(d.Err.Error(), "receive queue full") {
			t.Fatalf("dropped report %+v", d)
		}
	}
	if st := c.Stats(); s.DroppedTotal() != int(st.Dropped) {
		t.Errorf("sink told of %d drops, stats count %d", s.DroppedTotal(), st.Dropped)
	}
}

func TestReconnectAfterOpenFailures(t *testing.T) {
	ch := "test-" + t.Name()
	var mu sync.Mutex
	fails := 2
	opener := func(ctx context.Context) (Bus, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return nil, errors.New("no such adapter")
		}
		return VirtualBus{NewVirtualBus(ch)}, nil
	}
	c := newConn(t, fmt.Sprintf(testCfg, ch), WithOpener(opener))
	s := sinktest.New()
	run(t, c, s)
	s.Wait(t, waitTimeout, "open after two failures", func() bool { return s.Ups() == 1 })
	if l := s.Links(); len(l) != 3 || l[0].Up || l[0].Err == nil || l[0].Err.Error() != "open bus: no such adapter" {
		t.Errorf("links %v", l)
	}
	if st := c.Stats(); st.OpenFailures != 2 || st.Opens != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReconnectOffAndReconnectCount(t *testing.T) {
	failing := WithOpener(func(context.Context) (Bus, error) { return nil, errors.New("no such adapter") })
	for _, tc := range []struct{ extra, want string }{
		{`"reconnect":false,`, `can connector "can-test": open bus: no such adapter (reconnect is off)`},
		{`"reconnectCount":2,"reconnectPeriod":0.001,`, `can connector "can-test": open bus: no such adapter (gave up after 3 attempts, reconnectCount)`},
	} {
		c := newConn(t, `{`+tc.extra+`"interface":"virtual","channel":"x","devices":[{"name":"d","timeseries":[{"key":"k","nodeId":1,"value":"0:1:int"}]}]}`, failing)
		err := c.Run(context.Background(), sinktest.New())
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

func TestSlcanConfig(t *testing.T) {
	cfg, warns, err := Load("can.json", []byte(`{"interface":"slcan","channel":"/dev/ttyACM0@921600","backend":{"bitrate":500000,"fd":true},
		"devices":[{"name":"d","timeseries":[{"key":"k","nodeId":1,"isFd":true,"value":"0:1:int"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slcan != (SlcanConfig{Path: "/dev/ttyACM0", TTYBaudrate: 921600, Bitrate: 500000}) {
		t.Errorf("slcan %+v", cfg.Slcan)
	}
	if len(warns) != 2 || !strings.Contains(warns[0].String()+warns[1].String(), "classic CAN frames only") {
		t.Errorf("warnings %v", warns)
	}
	_, _, err = Load("can.json", []byte(`{"interface":"slcan","channel":"/dev/x@fast","backend":{"bitrate":12345,"ttyBaudrate":7},"devices":[]}`))
	want := []string{
		`can.json: backend.bitrate: 12345 is not an slcan bitrate (want one of: 10000, 20000, 50000, 83300, 100000, 125000, 250000, 500000, 750000, 1000000)`,
		`can.json: channel: "/dev/x@fast": "fast" after @ is not a serial baud rate`,
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("got %v\nwant %s", err, w)
		}
	}
}

func TestRefusedPushIsDroppedNotFatal(t *testing.T) {
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch)
	defer ecu.Close()
	c := newConn(t, fmt.Sprintf(testCfg, ch))
	s := sinktest.New()
	s.Refuse("Bike")
	run(t, c, s)
	s.Wait(t, waitTimeout, "open", func() bool { return s.Ups() == 1 })
	// Car's push goes through, Bike's is refused; the next frame still works.
	for _, f := range []Frame{{ID: 258, Data: append(le32f(2), 7)}, {ID: 259, Data: []byte{0}}} {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	s.Wait(t, waitTimeout, "pushes", func() bool { return len(s.DataPushes()) == 2 && c.Stats().Pushed == 2 })
	if st := c.Stats(); st.Dropped != 1 || st.Pushed != 2 || st.Lost != 0 {
		t.Errorf("stats %+v", st)
	}
	// The runtime refused the data itself: no Sink.Dropped for it.
	if d := s.DroppedReports(); len(d) != 0 {
		t.Errorf("refused push reported as dropped: %v", d)
	}
}
