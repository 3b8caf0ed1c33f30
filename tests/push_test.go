package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// pushy is a test protocol that is a push Source: the test feeds it Pushes
// and failures, and it takes device commands through DeviceCommands. Its
// state outlives connector restarts, as a broker's would.
type pushyState struct {
	in   chan protocols.Push
	fail chan error
	runs atomic.Int32
	sink atomic.Pointer[protocols.Sink]
	mu   sync.Mutex
	attr map[string]string // device/key → value
}

type pushyConn struct{ st *pushyState }

func (c *pushyConn) Devices() []protocols.Device { return nil }
func (c *pushyConn) Close() error                { return nil }

func (c *pushyConn) Run(ctx context.Context, sink protocols.Sink) error {
	c.st.runs.Add(1)
	c.st.sink.Store(&sink)
	sink.Link(true, nil)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-c.st.fail:
			sink.Link(false, err)
			return err
		case p := <-c.st.in:
			if err := sink.Push(ctx, p); err != nil {
				return nil // only ctx ends a Push early
			}
		}
	}
}

func (c *pushyConn) Commander(device, profile string) protocols.Commander {
	return &pushyCmd{st: c.st, device: device, profile: profile}
}

type pushyCmd struct {
	st              *pushyState
	device, profile string
}

func (p *pushyCmd) RPC(_ context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if req.Method != "whoami" {
		return nil, fmt.Errorf("%w %q", protocols.ErrUnknownMethod, req.Method)
	}
	return protocols.RPCResult(fmt.Sprintf(`{"result":{"device":%q,"profile":%q}}`, p.device, p.profile)), nil
}

func (p *pushyCmd) UpdateAttributes(_ context.Context, values map[string]json.RawMessage) ([]string, error) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	for k, v := range values {
		p.st.attr[p.device+"/"+k] = string(v)
	}
	return nil, nil
}

func (p *pushyCmd) SharedAttributeKeys() []string { return nil }

func (s *pushyState) attribute(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attr[key]
}

var pushyStates sync.Map // config "id" → *pushyState

func pushy(id string) *pushyState {
	st, _ := pushyStates.LoadOrStore(id, &pushyState{in: make(chan protocols.Push), fail: make(chan error), attr: map[string]string{}})
	return st.(*pushyState)
}

func init() {
	protocols.Register("pushy", func(cfg protocols.ConnectorConfig) (protocols.Connector, error) {
		return &pushyConn{st: pushy(cfg.Config.Str("id", ""))}, nil
	})
}

// TestPushSource: data a push source hands over is committed before its
// Done runs, reaches the platform under the right device and profile, the
// devices take RPC and attribute writes, malformed input is counted, and a
// failing source restarts its connector and keeps going.
func TestPushSource(t *testing.T) {
	id := fmt.Sprintf("push-%d", time.Now().UnixNano())
	st := pushy(id)
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/gateway/connect", "v1/gateway/rpc")
	j := newRecordingJournal(newMemoryJournal())
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{
		"pushy": []byte(fmt.Sprintf(`{"id": %q}`, id))})
	g := startGateway(t, path, j)

	const devices, perDevice = 5, 100
	var committed, failed atomic.Int32
	allDone := make(chan struct{})
	base := time.UnixMilli(1_700_000_000_000)
	for i := range devices * perDevice {
		dev := fmt.Sprintf("pushed-%d", i%devices)
		ts := base.Add(time.Duration(i/devices) * time.Millisecond)
		st.in <- protocols.Push{
			Device: dev, Profile: "Sensor", Ts: ts,
			Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "n", Value: protocols.Int(int64(i))}}},
			Report:  protocols.ReportStrategy{Type: protocols.OnReceived},
			Done: func(err error) {
				if err != nil {
					failed.Add(1)
				}
				// Done means committed: the journal must already hold it.
				if !j.committed()[point{dev, ts.UnixMilli()}] {
					failed.Add(1)
				}
				if committed.Add(1) == devices*perDevice {
					close(allDone)
				}
			},
		}
	}
	select {
	case <-allDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d pushes reported done", committed.Load(), devices*perDevice)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d pushes were done before their commit or with an error", failed.Load())
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return len(got) == devices*perDevice
	})
	connects := testpeer.OnTopic(sub.Messages(), "v1/gateway/connect")
	for i := range devices {
		want := fmt.Sprintf(`{"device":"pushed-%d","type":"Sensor"}`, i)
		found := false
		for _, c := range connects {
			found = found || string(c.Payload) == want
		}
		if !found {
			t.Errorf("no connect %s among %d connects", want, len(connects))
		}
	}

	send := func(topic, body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), topic, []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	send("v1/gateway/rpc", `{"device":"pushed-2","data":{"id":7,"method":"whoami"}}`)
	r := waitReply(t, sub, "v1/gateway/rpc", hasID("7"))
	if string(r["data"]) != `{"result":{"device":"pushed-2","profile":"Sensor"}}` {
		t.Errorf("rpc reply: %s", r["data"])
	}
	send("v1/gateway/attributes", `{"device":"pushed-3","data":{"mode":"eco"}}`)
	testpeer.Eventually(t, 10*time.Second, "attribute mode=eco on the device", func() error {
		if v := st.attribute("pushed-3/mode"); v != `"eco"` {
			return fmt.Errorf("mode %q", v)
		}
		return nil
	})

	(*st.sink.Load()).Malformed("topic a/b", errors.New("bad json"))
	if n := g.Counters().Malformed.Load(); n != 1 {
		t.Errorf("malformed counter %d", n)
	}

	// A source error restarts the connector; data keeps flowing after it.
	st.fail <- errors.New("broker vanished")
	testpeer.Eventually(t, 15*time.Second, "the source to be restarted", func() error {
		if st.runs.Load() < 2 {
			return errors.New("source not restarted")
		}
		return nil
	})
	done := make(chan error, 1)
	st.in <- protocols.Push{Device: "pushed-0", Ts: base.Add(time.Hour),
		Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "after", Value: protocols.Bool(true)}}},
		Done:    func(err error) { done <- err }}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return got[point{"pushed-0", base.Add(time.Hour).UnixMilli()}] != nil
	})
}

// TestPushDeviceAdoptedForCommand: after a tree restart, a device of a push
// source that has not reported again still takes an RPC: its connector
// creates its actor on demand from the registry's record.
func TestPushDeviceAdoptedForCommand(t *testing.T) {
	id := fmt.Sprintf("adopt-%d", time.Now().UnixNano())
	st := pushy(id)
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/gateway/rpc")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{
		"pushy": []byte(fmt.Sprintf(`{"id": %q}`, id))})
	g := startGateway(t, path, nil)
	done := make(chan error, 1)
	st.in <- protocols.Push{Device: "quiet", Profile: "Valve",
		Reading: protocols.Reading{Attributes: []protocols.Datapoint{{Key: "fw", Value: protocols.String("1.2")}}},
		Done:    func(err error) { done <- err }}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextTimeout(20 * time.Second)
	defer cancel()
	if err := g.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The RPC must find the gateway's subscription: under load the gateway
	// may not have connected at all before the restart, and the broker keeps
	// nothing for a session that never subscribed.
	testpeer.Eventually(t, 20*time.Second, "the gateway's platform session after the restart", func() error {
		if !g.PlatformStats().Connected {
			return errors.New("not connected")
		}
		return nil
	})
	if err := sub.Publish(context.Background(), "v1/gateway/rpc", []byte(`{"device":"quiet","data":{"id":9,"method":"whoami"}}`), 1); err != nil {
		t.Fatal(err)
	}
	r := waitReply(t, sub, "v1/gateway/rpc", hasID("9"))
	if !strings.Contains(string(r["data"]), `"device":"quiet","profile":"Valve"`) {
		t.Errorf("rpc to an adopted device: %s", r["data"])
	}
}

// TestPushDeviceInactivityAndReportPeriod: a pushed device that goes quiet
// is disconnected after inactivityTimeoutSeconds (push devices have no poll
// to notice it), and ON_REPORT_PERIOD re-sends its last value on the tick.
func TestPushDeviceInactivityAndReportPeriod(t *testing.T) {
	id := fmt.Sprintf("idle-%d", time.Now().UnixNano())
	st := pushy(id)
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/gateway/disconnect")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{
		"pushy": []byte(fmt.Sprintf(`{"id": %q}`, id))},
		map[string]any{"checkingDeviceActivity": map[string]any{
			"checkDeviceInactivity": true, "inactivityTimeoutSeconds": 1, "inactivityCheckPeriodSeconds": 1}})
	startGateway(t, path, nil)
	done := make(chan error, 1)
	st.in <- protocols.Push{Device: "periodic", Profile: "Meter",
		Reading: protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "kwh", Value: protocols.Int(42)}}},
		Report:  protocols.ReportStrategy{Type: protocols.OnReportPeriod, Period: 200 * time.Millisecond},
		Done:    func(err error) { done <- err }}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One push, yet several telemetry entries: the period re-sends it.
	sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		n := 0
		for p, v := range got {
			if p.Device == "periodic" && string(v["kwh"]) == "42" {
				n++
			}
		}
		return n >= 2
	})
	sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/disconnect") {
			if string(m.Payload) == `{"device":"periodic"}` {
				return true
			}
		}
		return false
	})
}
