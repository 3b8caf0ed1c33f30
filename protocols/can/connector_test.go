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
	"github.com/industryos/gateway/protocols/spec"
)

// waitTimeout bounds every wait on an event; tests never sleep to sync.
const waitTimeout = 10 * time.Second

// recSink is a protocols.Sink that records what a Source hands it and
// wakes waiters on every change.
type recSink struct {
	mu        sync.Mutex
	pushes    []protocols.Push
	malformed []string // where
	malErrs   []error
	unmatched int
	links     []error // nil: up
	changed   chan struct{}
	// gate, when set, holds every Push that carries data until it is closed.
	gate chan struct{}
	// refuse, when set, is a device whose pushes fail as if it had no actor.
	refuse string
}

func newSink() *recSink { return &recSink{changed: make(chan struct{})} }

func (s *recSink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *recSink) Push(ctx context.Context, p protocols.Push) error {
	if s.gate != nil && len(p.Reading.Telemetry)+len(p.Reading.Attributes) > 0 {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p.Device == s.refuse {
		return errors.New("no actor for " + p.Device)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes = append(s.pushes, p)
	s.notifyLocked()
	return nil
}

func (s *recSink) Connect(string, string) {}
func (s *recSink) Disconnect(string)      {}
func (s *recSink) RequestAttributes(context.Context, string, bool, []string) (map[string]json.RawMessage, error) {
	return nil, errors.New("not in tests")
}

func (s *recSink) Malformed(where string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.malformed = append(s.malformed, where)
	s.malErrs = append(s.malErrs, err)
	s.notifyLocked()
}

func (s *recSink) Unmatched() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unmatched++
	s.notifyLocked()
}

func (s *recSink) Link(up bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up {
		err = nil
	} else if err == nil {
		err = errors.New("down")
	}
	s.links = append(s.links, err)
	s.notifyLocked()
}

// wait blocks until cond (called with the lock held) is true.
func (s *recSink) wait(t testing.TB, what string, cond func(*recSink) bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(s), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out waiting for %s; pushes %d, malformed %v, unmatched %d, links %v", what, len(s.pushes), s.malformed, s.unmatched, s.links)
		}
	}
}

func (s *recSink) ups() int {
	n := 0
	for _, l := range s.links {
		if l == nil {
			n++
		}
	}
	return n
}

// dataPushes are the pushes that carry values (not the start-up announcements).
func (s *recSink) dataPushes() []protocols.Push {
	var out []protocols.Push
	for _, p := range s.pushes {
		if len(p.Reading.Telemetry)+len(p.Reading.Attributes) > 0 {
			out = append(out, p)
		}
	}
	return out
}

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
func run(t testing.TB, c *Connector, s *recSink) {
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
func startVirtual(t *testing.T, js string, opts ...Option) (*Connector, *recSink, *VirtualEndpoint) {
	t.Helper()
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch)
	t.Cleanup(func() { ecu.Close() })
	c := newConn(t, fmt.Sprintf(js, ch), opts...)
	s := newSink()
	run(t, c, s)
	s.wait(t, "bus open", func(s *recSink) bool { return s.ups() == 1 })
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
	s.wait(t, "announcements", func(s *recSink) bool { return len(s.pushes) >= 3 })
	s.mu.Lock()
	ann := append([]protocols.Push(nil), s.pushes[:3]...)
	s.mu.Unlock()
	onChange := protocols.ReportStrategy{Type: protocols.OnChange, Period: 10 * time.Second}
	period := protocols.ReportStrategy{Type: protocols.OnReportPeriod, Period: time.Minute}
	if ann[0].Device != "Car" || ann[0].Profile != "car" || ann[0].Report != onChange ||
		ann[0].KeyReport["temperature"] != (protocols.ReportStrategy{Type: protocols.OnReceived, Period: 10 * time.Second}) ||
		ann[1].Device != "Bike" || ann[1].Report != period || ann[2].Device != "Truck" || ann[2].Profile != "default" {
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
	s.wait(t, "all frames handled", func(s *recSink) bool {
		return len(s.dataPushes()) == 7 && s.unmatched == 3 && len(s.malformed) == 1
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	type dp struct {
		dev, key string
		attr     bool
		v        protocols.Value
	}
	var got []dp
	for _, p := range s.dataPushes() {
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
	if s.malformed[0] != "can id 0x102 key speed" || !errors.Is(s.malErrs[0], ErrConvert) || !strings.Contains(s.malErrs[0].Error(), `device "Bike"`) {
		t.Errorf("malformed: %v %v", s.malformed, s.malErrs)
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
	s := newSink()
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
	s.wait(t, "open", func(s *recSink) bool { return s.ups() == 1 })
	mu.Lock()
	close(kill)
	mu.Unlock()
	s.wait(t, "reopen", func(s *recSink) bool { return s.ups() == 2 })
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
	s.mu.Lock()
	if len(s.links) != 3 || s.links[1] == nil || !strings.Contains(s.links[1].Error(), "adapter unplugged") {
		t.Errorf("links %v", s.links)
	}
	s.mu.Unlock()
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
	bike, truck := c.Commander("Bike", "bike"), c.Commander("Truck", "default")
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
	s := newSink()
	s.gate = make(chan struct{})
	run(t, c, s)
	s.wait(t, "open", func(s *recSink) bool { return s.ups() == 1 })
	const n = 50
	for i := 0; i < n; i++ {
		if err := ecu.Send(Frame{ID: 259, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The sink holds the first push: the reader must keep reading and drop.
	eventually(t, "all frames read", func() bool { return c.Stats().Received == n })
	close(s.gate)
	eventually(t, "queued frames delivered", func() bool {
		st := c.Stats()
		return st.Pushed+st.Dropped == n
	})
	if st := c.Stats(); st.Dropped < n-5 || st.Pushed < 4 {
		t.Errorf("stats %+v: want at most 5 delivered (1 in the sink, 4 queued), the rest dropped", st)
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
	s := newSink()
	run(t, c, s)
	s.wait(t, "open after two failures", func(s *recSink) bool { return s.ups() == 1 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.links) != 3 || s.links[0] == nil || s.links[0].Error() != "open bus: no such adapter" {
		t.Errorf("links %v", s.links)
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
		err := c.Run(context.Background(), newSink())
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

// eventually polls cond for counters that raise no event (Eventually in
// STYLE.md); the poll interval is not a synchronisation assumption.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRefusedPushIsDroppedNotFatal(t *testing.T) {
	ch := "test-" + t.Name()
	ecu := NewVirtualBus(ch)
	defer ecu.Close()
	c := newConn(t, fmt.Sprintf(testCfg, ch))
	s := newSink()
	s.refuse = "Bike"
	run(t, c, s)
	s.wait(t, "open", func(s *recSink) bool { return s.ups() == 1 })
	// Car's push goes through, Bike's is refused; the next frame still works.
	for _, f := range []Frame{{ID: 258, Data: append(le32f(2), 7)}, {ID: 259, Data: []byte{0}}} {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	s.wait(t, "pushes", func(s *recSink) bool { return len(s.dataPushes()) == 2 })
	if st := c.Stats(); st.Dropped != 1 || st.Pushed != 2 || st.Lost != 0 {
		t.Errorf("stats %+v", st)
	}
}
