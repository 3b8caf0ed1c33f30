package opcua

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

const wait = 15 * time.Second

func plantConfig(url string, subscriptions bool, extra string) string {
	return fmt.Sprintf(`{
  "name": "plant",
  "server": {
    "url": %q,
    "timeoutInMillis": 2000,
    "scanPeriodInMillis": 3600000,
    "pollPeriodInMillis": 100,
    "enableSubscriptions": %v,
    "subCheckPeriodInMillis": 100,
    "reconnectRetriesCount": 0,
    "reconnectBackoffInitialDelay": 0.05,
    "reconnectBackoffFactor": 2
    %s
  },
  "mapping": [
    {
      "deviceNodeSource": "path",
      "deviceNodePattern": "Root\\.Objects\\.Plant\\.Device[0-9]+",
      "deviceInfo": {
        "deviceNameExpression": "Sensor ${SerialNumber}",
        "deviceNameExpressionSource": "path",
        "deviceProfileExpression": "thermo",
        "deviceProfileExpressionSource": "constant"
      },
      "attributes": [
        {"key": "status", "type": "path", "value": "${Status}"},
        {"key": "site", "type": "constant", "value": "hall 3"}
      ],
      "timeseries": [
        {"key": "temperature", "type": "path", "value": "${Temperature}"},
        {"key": "humidity", "type": "path", "value": "${Humidity}", "timestampLocation": "sourceTimestamp"},
        {"key": "lineSpeed", "type": "path", "value": "${Root\\.Objects\\.Plant\\.Line\\.Speed}"}
      ],
      "attributes_updates": [
        {"key": "setpoint", "type": "path", "value": "${Setpoint}"}
      ]
    },
    {
      "deviceNodeSource": "identifier",
      "deviceNodePattern": "ns=1;s=Device1",
      "deviceInfo": {"deviceNameExpression": "Dev1ById", "deviceProfileExpression": "byid"},
      "timeseries": [
        {"key": "serial", "type": "identifier", "value": "${ns=1;i=5001}"},
        {"key": "setpoint", "type": "path", "value": "${ns=1;s=Device1.Setpoint}"}
      ],
      "attributes_updates": [
        {"key": "setpoint", "type": "path", "value": "${Setpoint}"},
        {"key": "missing", "type": "path", "value": "${NoSuchNode}"}
      ],
      "rpc_methods": [{"method": "multiply", "arguments": [{"type": "integer", "value": 2}]}]
    }
  ]
}`, url, subscriptions, extra)
}

func TestLookupsAndDelivery(t *testing.T) {
	for _, subs := range []bool{true, false} {
		t.Run(map[bool]string{true: "subscriptions", false: "polling"}[subs], func(t *testing.T) {
			ts := startServer(t, 0, plantSpec{devices: 3}, nil)
			c := newTestConnector(t, plantConfig(ts.url(), subs, ""))
			sink := newRecSink()
			run(t, c, sink)

			has := func(dev, key, want string) func() bool {
				return func() bool { v, _ := sink.latest(dev, key); return v == want }
			}
			// Relative path, device name from a path value, regex device pattern.
			sink.waitFor(t, "Sensor SN-2 temperature", wait, has("Sensor SN-2", "temperature", "20.5"))
			sink.waitFor(t, "float32 humidity", wait, has("Sensor SN-3", "humidity", "40.5"))
			sink.waitFor(t, "status attribute", wait, has("Sensor SN-1", "status", "OK"))
			sink.waitFor(t, "constant", wait, has("Sensor SN-1", "site", "hall 3"))
			// Absolute path shared by every device.
			sink.waitFor(t, "absolute path", wait, has("Sensor SN-3", "lineSpeed", "1.5"))
			// Identifier lookups (numeric and string) on an identifier device.
			sink.waitFor(t, "identifier", wait, has("Dev1ById", "serial", "SN-1"))
			sink.waitFor(t, "identifier string id", wait, has("Dev1ById", "setpoint", "10"))

			// Changes flow.
			ts.set("Device2.Temperature", 21.75)
			sink.waitFor(t, "changed temperature", wait, has("Sensor SN-2", "temperature", "21.75"))
			ts.set("Line.Speed", 2.5)
			sink.waitFor(t, "changed speed on every device", wait, func() bool {
				return has("Sensor SN-1", "lineSpeed", "2.5")() && has("Sensor SN-3", "lineSpeed", "2.5")()
			})

			for _, p := range sink.snapshot() {
				if p.Device == "Sensor SN-1" && p.Profile != "thermo" || p.Device == "Dev1ById" && p.Profile != "byid" {
					t.Fatalf("push %+v has the wrong profile", p)
				}
				if p.Ts.IsZero() {
					t.Fatalf("push without timestamp: %+v", p)
				}
			}
			if subs {
				s, items := ts.counts()
				// 3 devices × 3 nodes + Line.Speed + serial + Device1.Setpoint = 12.
				if s != 1 || items != 12 {
					t.Fatalf("server holds %d subscriptions and %d items, want 1 and 12", s, items)
				}
			}
		})
	}
}

func TestSourceTimestamp(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "first data", wait, func() bool { _, ok := sink.latest("Sensor SN-1", "humidity"); return ok })
	src := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ts.vals.set("Device1.Humidity", float32(55), src)
	ts.srv.ChangeNotification(ts.nodes["Device1.Humidity"].ID())
	sink.waitFor(t, "humidity with source ts", wait, func() bool {
		for _, p := range sink.snapshot() {
			for _, dp := range p.Reading.Telemetry {
				if dp.Key == "humidity" && dp.Value.String() == "55" {
					if !p.Ts.Equal(src) {
						t.Fatalf("humidity pushed with ts %v, want the source timestamp %v", p.Ts, src)
					}
					return true
				}
			}
		}
		return false
	})
}

func TestWritesLand(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 2}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "connected", wait, func() bool { _, ok := sink.latest("Dev1ById", "setpoint"); return ok })

	cmd := c.Commander("Sensor SN-2", "thermo")
	if got := cmd.SharedAttributeKeys(); len(got) != 1 || got[0] != "setpoint" {
		t.Fatalf("SharedAttributeKeys = %v", got)
	}
	ctx := context.Background()
	ignored, err := cmd.UpdateAttributes(ctx, map[string]json.RawMessage{"setpoint": json.RawMessage("42"), "other": json.RawMessage("1")})
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("UpdateAttributes = %v, %v", ignored, err)
	}
	if got := ts.vals.get("Device2.Setpoint"); got != nil {
		// the server replaced its value function: read through the node
		_ = got
	}
	waitWrite(t, ts, "ns=1;s=Device2.Setpoint")
	if v := ts.nodes["Device2.Setpoint"].Value().Value.Value(); v != int64(42) {
		t.Fatalf("Device2.Setpoint = %v (%T), want 42", v, v)
	}

	// An attribute whose path matches nothing is a clear error.
	_, err = c.Commander("Dev1ById", "byid").UpdateAttributes(ctx, map[string]json.RawMessage{"missing": json.RawMessage(`"x"`)})
	if err == nil || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), "matches no node") {
		t.Fatalf("missing node error = %v", err)
	}

	// Reserved set and get, by node id and by relative path.
	res, err := c.Commander("Sensor SN-1", "thermo").RPC(ctx, protocols.RPCRequest{Method: "set", Params: json.RawMessage(`"ns=1;s=Device1.Status; RUN;"`)})
	if err != nil || string(res) != `{"result":{"value":"RUN"}}` {
		t.Fatalf("set = %s, %v", res, err)
	}
	waitWrite(t, ts, "ns=1;s=Device1.Status")
	res, err = c.Commander("Sensor SN-1", "thermo").RPC(ctx, protocols.RPCRequest{Method: "set", Params: json.RawMessage(`"Temperature= 35.5 ;"`)})
	if err != nil || string(res) != `{"result":{"value":35.5}}` {
		t.Fatalf("set by path = %s, %v", res, err)
	}
	waitWrite(t, ts, "ns=1;s=Device1.Temperature")
	res, err = c.Commander("Sensor SN-1", "thermo").RPC(ctx, protocols.RPCRequest{Method: "get", Params: json.RawMessage(`"Temperature"`)})
	if err != nil || string(res) != `{"result":{"value":35.5}}` {
		t.Fatalf("get by path = %s, %v", res, err)
	}
	res, err = c.Commander("Sensor SN-1", "thermo").RPC(ctx, protocols.RPCRequest{Method: "get", Params: json.RawMessage(`"ns=1;i=5001;"`)})
	if err != nil || string(res) != `{"result":{"value":"SN-1"}}` {
		t.Fatalf("get by id = %s, %v", res, err)
	}
	// Unknown method names what is known; methods need a server with Call
	// (gopcua's answers BadServiceUnsupported), see the interop tests.
	_, err = c.Commander("Dev1ById", "byid").RPC(ctx, protocols.RPCRequest{Method: "nope"})
	if err == nil || !strings.Contains(err.Error(), "multiply") {
		t.Fatalf("unknown method error = %v", err)
	}
	_, err = c.Commander("Dev1ById", "byid").RPC(ctx, protocols.RPCRequest{Method: "multiply"})
	if err == nil || !strings.Contains(err.Error(), "multiply") {
		t.Fatalf("method on a node without it = %v", err)
	}
}

// waitCounts waits until the server holds exactly subs subscriptions and
// items monitored items (gopcua's server deletes asynchronously).
func waitCounts(t *testing.T, sink *recSink, ts *testServer, subs, items int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s, i := ts.counts()
		if s == subs && i == items {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d subscriptions / %d items, want %d / %d", s, i, subs, items)
		}
		select {
		case <-sink.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitWrite(t *testing.T, ts *testServer, node string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case n := <-ts.writes:
			if n == node {
				return
			}
		case <-timeout:
			t.Fatalf("no write to %s reached the server", node)
		}
	}
}

func TestServerRestartResumesWithoutDuplicates(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 2}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	sink := newRecSink()
	run(t, c, sink)
	has := func(want string) func() bool {
		return func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == want }
	}
	sink.waitFor(t, "first data", wait, has("20.5"))
	_, items := ts.counts()

	ts2 := ts.restart()
	sink.waitFor(t, "session re-established", wait, func() bool { return c.stats.Sessions.Load() >= 2 && c.stats.Subscriptions.Load() >= 2 })
	ts2.set("Device1.Temperature", 30.25)
	sink.waitFor(t, "data after restart", wait, has("30.25"))
	waitCounts(t, sink, ts2, 1, items)
	sink.mu.Lock()
	links := append([]bool(nil), sink.links...)
	sink.mu.Unlock()
	downs := 0
	for _, up := range links {
		if !up {
			downs++
		}
	}
	if downs == 0 {
		t.Fatalf("link never reported down: %v", links)
	}
}

func TestDeadSubscriptionIsRecreated(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "first data", wait, func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == "20.5" })
	_, items := ts.counts()
	// The server drops the subscription while the session lives: the
	// client keeps reporting Connected and nothing arrives (upstream #910).
	ts.srv.SubscriptionService.Mu.Lock()
	var ids []uint32
	for id := range ts.srv.SubscriptionService.Subs {
		ids = append(ids, id)
	}
	ts.srv.SubscriptionService.Mu.Unlock()
	for _, id := range ids {
		ts.srv.SubscriptionService.DeleteSubscription(id)
	}
	sink.waitFor(t, "a probe", 3*wait, func() bool { return c.stats.Probes.Load() >= 1 })
	ts.set("Device1.Temperature", 23.5)
	sink.waitFor(t, "data after recreation", wait, func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == "23.5" })
	waitCounts(t, sink, ts, 1, items)
	// The probe is answered with a ServiceFault, which gopcua's client takes
	// for a broken channel: recovery goes through a new session, and the
	// server must hold exactly one subscription afterwards.
	if c.stats.Sessions.Load() < 2 {
		t.Fatalf("sessions = %d, want a new one", c.stats.Sessions.Load())
	}
}

func TestItemsSpreadOverSubscriptions(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 3}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, `, "maxItemsPerSubscription": 5`))
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "all devices", wait, func() bool {
		_, a := sink.latest("Sensor SN-3", "temperature")
		_, b := sink.latest("Dev1ById", "setpoint")
		return a && b
	})
	s, items := ts.counts()
	if s != 3 || items != 12 {
		t.Fatalf("server holds %d subscriptions / %d items, want 3 / 12", s, items)
	}
}

func TestBadStatusIsSentAndCounted(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), false, ""))
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "first data", wait, func() bool { _, ok := sink.latest("Sensor SN-1", "temperature"); return ok })
	ts.vals.mu.Lock()
	ts.vals.m["Device1.Temperature"] = &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadSensorFailure}
	ts.vals.mu.Unlock()
	want := "Bad status code: BadSensorFailure for node: ns=1;s=Device1.Temperature"
	sink.waitFor(t, "bad status value", wait, func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == want })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.malformed) == 0 || !strings.Contains(sink.malformed[0], "BadSensorFailure") {
		t.Fatalf("malformed = %v", sink.malformed)
	}
}

func TestRescanFindsNewDevices(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	cfg := strings.Replace(plantConfig(ts.url(), true, ""), `"scanPeriodInMillis": 3600000`, `"scanPeriodInMillis": 200`, 1)
	c := newTestConnector(t, cfg)
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "first device", wait, func() bool { _, ok := sink.latest("Sensor SN-1", "temperature"); return ok })
	// Restarting with two devices adds a device node; the re-scan on the
	// new session, and the periodic one, must both pick it up.
	ts.spec.devices = 2
	ts2 := ts.restart()
	sink.waitFor(t, "new device", wait, func() bool { _, ok := sink.latest("Sensor SN-2", "temperature"); return ok })
	sink.waitFor(t, "periodic re-scans", wait, func() bool { return c.stats.Scans.Load() >= 4 })
	waitCounts(t, sink, ts2, 1, 2*3+1+2)
}

// TestBlockedSinkDoesNotStallPublishing blocks Sink.Push while values keep
// changing: the publish loop must keep running (no subscription dies), the
// backlog folds to the newest values and counts what it replaced, and the
// newest value arrives once the sink drains.
func TestBlockedSinkDoesNotStallPublishing(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	cfg := plantConfig(ts.url(), true, `, "subscriptionProcessBatchSize": 1, "subDataMaxBatchSize": 1`)
	c := newTestConnector(t, cfg)
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "first data", wait, func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == "20.5" })
	block := make(chan struct{})
	sink.mu.Lock()
	sink.block = block
	sink.mu.Unlock()
	i := 0
	sink.waitFor(t, "values superseded in the backlog", wait, func() bool {
		i++
		ts.set("Device1.Temperature", float64(100+i))
		ts.set("Device1.Humidity", float32(i))
		return c.stats.Superseded.Load() > 5
	})
	last := fmt.Sprint(100 + i)
	close(block)
	sink.waitFor(t, "newest value after the sink drained", wait, func() bool { v, _ := sink.latest("Sensor SN-1", "temperature"); return v == last })
	if n := c.stats.Recreated.Load(); n != 0 {
		t.Fatalf("%d subscriptions were recreated while the sink was blocked", n)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	found := false
	for _, m := range sink.malformed {
		found = found || strings.Contains(m, "replaced by newer ones")
	}
	if !found {
		t.Fatalf("superseded values were not reported: %v", sink.malformed)
	}
}

func TestConnectorRPCNeedsTheMethod(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	ctx := context.Background()
	if _, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "opcua_multiply"}); err == nil || !errors.Is(err, ErrNotConnected) {
		t.Fatalf("before Run: %v", err)
	}
	sink := newRecSink()
	run(t, c, sink)
	sink.waitFor(t, "connected", wait, func() bool { _, ok := sink.latest("Dev1ById", "setpoint"); return ok })
	_, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "opcua_multiply", Params: json.RawMessage(`{"arguments":[{"value":5},{"value":6}]}`)})
	if !errors.Is(err, protocols.ErrUnknownMethod) || !strings.Contains(err.Error(), `"multiply"`) {
		t.Fatalf("no device has the method: %v", err)
	}
	if _, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "modbus_read"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Fatalf("foreign prefix: %v", err)
	}
	// Commands on a device the server does not have say so.
	if _, err := c.Commander("ghost", "x").RPC(ctx, protocols.RPCRequest{Method: "get", Params: json.RawMessage(`"ns=1;i=1"`)}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("ghost device: %v", err)
	}
}
