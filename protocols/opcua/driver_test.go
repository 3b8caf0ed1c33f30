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
	"github.com/industryos/gateway/protocols/kit/sinktest"
)

const wait = 30 * time.Second

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
			sink := sinktest.New()
			run(t, c, sink)

			has := func(dev, key, want string) func() bool {
				return func() bool { v, _ := latest(sink, dev, key); return v == want }
			}
			// Relative path, device name from a path value, regex device pattern.
			sink.Wait(t, wait, "Sensor SN-2 temperature", has("Sensor SN-2", "temperature", "20.5"))
			sink.Wait(t, wait, "float32 humidity", has("Sensor SN-3", "humidity", "40.5"))
			sink.Wait(t, wait, "status attribute", has("Sensor SN-1", "status", "OK"))
			sink.Wait(t, wait, "constant", has("Sensor SN-1", "site", "hall 3"))
			// Absolute path shared by every device.
			sink.Wait(t, wait, "absolute path", has("Sensor SN-3", "lineSpeed", "1.5"))
			// Identifier lookups (numeric and string) on an identifier device.
			sink.Wait(t, wait, "identifier", has("Dev1ById", "serial", "SN-1"))
			sink.Wait(t, wait, "identifier string id", has("Dev1ById", "setpoint", "10"))

			// Changes flow.
			ts.set("Device2.Temperature", 21.75)
			sink.Wait(t, wait, "changed temperature", has("Sensor SN-2", "temperature", "21.75"))
			ts.set("Line.Speed", 2.5)
			sink.Wait(t, wait, "changed speed on every device", func() bool {
				return has("Sensor SN-1", "lineSpeed", "2.5")() && has("Sensor SN-3", "lineSpeed", "2.5")()
			})

			for _, p := range sink.Pushes() {
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
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "first data", func() bool { _, ok := latest(sink, "Sensor SN-1", "humidity"); return ok })
	src := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ts.Values.Set("Device1.Humidity", float32(55), src)
	ts.Server.ChangeNotification(ts.Nodes["Device1.Humidity"].ID())
	sink.Wait(t, wait, "humidity with source ts", func() bool {
		for _, p := range sink.Pushes() {
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
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "connected", func() bool { _, ok := latest(sink, "Dev1ById", "setpoint"); return ok })

	cmd := c.Commander("Sensor SN-2", "thermo")
	if got := cmd.SharedAttributeKeys(); len(got) != 1 || got[0] != "setpoint" {
		t.Fatalf("SharedAttributeKeys = %v", got)
	}
	ctx := context.Background()
	ignored, err := cmd.UpdateAttributes(ctx, map[string]json.RawMessage{"setpoint": json.RawMessage("42"), "other": json.RawMessage("1")})
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("UpdateAttributes = %v, %v", ignored, err)
	}
	if got := ts.Values.Get("Device2.Setpoint"); got != nil {
		// the server replaced its value function: read through the node
		_ = got
	}
	waitWrite(t, ts, "ns=1;s=Device2.Setpoint")
	if v := ts.Nodes["Device2.Setpoint"].Value().Value.Value(); v != int64(42) {
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
func waitCounts(t *testing.T, sink *sinktest.Recorder, ts *testServer, subs, items int) {
	t.Helper()
	var s, i int
	sink.Wait(t, wait, fmt.Sprintf("%d subscriptions / %d items on the server", subs, items), func() bool {
		s, i = ts.counts()
		return s == subs && i == items
	})
}

func waitWrite(t *testing.T, ts *testServer, node string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case n := <-ts.Writes:
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
	sink := sinktest.New()
	run(t, c, sink)
	has := func(want string) func() bool {
		return func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == want }
	}
	sink.Wait(t, wait, "first data", has("20.5"))
	_, items := ts.counts()

	ts2 := ts.restart()
	sink.Wait(t, wait, "session re-established", func() bool { return c.stats.Sessions.Load() >= 2 && c.stats.Subscriptions.Load() >= 2 })
	ts2.set("Device1.Temperature", 30.25)
	sink.Wait(t, wait, "data after restart", has("30.25"))
	waitCounts(t, sink, ts2, 1, items)
	links := sink.Links()
	downs := 0
	for _, l := range links {
		if !l.Up {
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
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "first data", func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == "20.5" })
	_, items := ts.counts()
	// The server drops the subscription while the session lives: the
	// client keeps reporting Connected and nothing arrives (upstream #910).
	ts.Server.SubscriptionService.Mu.Lock()
	var ids []uint32
	for id := range ts.Server.SubscriptionService.Subs {
		ids = append(ids, id)
	}
	ts.Server.SubscriptionService.Mu.Unlock()
	for _, id := range ids {
		ts.Server.SubscriptionService.DeleteSubscription(id)
	}
	sink.Wait(t, 3*wait, "a probe", func() bool { return c.stats.Probes.Load() >= 1 })
	ts.set("Device1.Temperature", 23.5)
	sink.Wait(t, wait, "data after recreation", func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == "23.5" })
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
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "all devices", func() bool {
		_, a := latest(sink, "Sensor SN-3", "temperature")
		_, b := latest(sink, "Dev1ById", "setpoint")
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
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "first data", func() bool { _, ok := latest(sink, "Sensor SN-1", "temperature"); return ok })
	ts.Values.SetDataValue("Device1.Temperature", &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadSensorFailure})
	want := "Bad status code: BadSensorFailure for node: ns=1;s=Device1.Temperature"
	sink.Wait(t, wait, "bad status value", func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == want })
	if m := sink.MalformedReports(); len(m) == 0 || !strings.Contains(m[0].String(), "BadSensorFailure") {
		t.Fatalf("malformed = %v", m)
	}
}

func TestRescanFindsNewDevices(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	cfg := strings.Replace(plantConfig(ts.url(), true, ""), `"scanPeriodInMillis": 3600000`, `"scanPeriodInMillis": 200`, 1)
	c := newTestConnector(t, cfg)
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "first device", func() bool { _, ok := latest(sink, "Sensor SN-1", "temperature"); return ok })
	// Restarting with two devices adds a device node; the re-scan on the
	// new session, and the periodic one, must both pick it up.
	ts.spec.devices = 2
	ts2 := ts.restart()
	sink.Wait(t, wait, "new device", func() bool { _, ok := latest(sink, "Sensor SN-2", "temperature"); return ok })
	sink.Wait(t, wait, "periodic re-scans", func() bool { return c.stats.Scans.Load() >= 4 })
	waitCounts(t, sink, ts2, 1, 2*3+1+2)
}

// TestBlockedSinkDoesNotStallPublishing blocks Sink.Push while values keep
// changing: the publish loop must keep running (no subscription dies), the
// backlog folds to the newest values and counts what it replaced (and tells
// the sink through Sink.Dropped), and the
// newest value arrives once the sink drains.
func TestBlockedSinkDoesNotStallPublishing(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	cfg := plantConfig(ts.url(), true, `, "subscriptionProcessBatchSize": 1, "subDataMaxBatchSize": 1`)
	c := newTestConnector(t, cfg)
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "first data", func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == "20.5" })
	block := make(chan struct{})
	sink.SetGate(block)
	i := 0
	sink.Wait(t, wait, "values superseded in the backlog", func() bool {
		i++
		ts.set("Device1.Temperature", float64(100+i))
		ts.set("Device1.Humidity", float32(i))
		return c.stats.Superseded.Load() > 5
	})
	last := fmt.Sprint(100 + i)
	close(block)
	sink.Wait(t, wait, "newest value after the sink drained", func() bool { v, _ := latest(sink, "Sensor SN-1", "temperature"); return v == last })
	if n := c.stats.Recreated.Load(); n != 0 {
		t.Fatalf("%d subscriptions were recreated while the sink was blocked", n)
	}
	// Every replaced value is reported to the sink as dropped, never as
	// malformed input.
	sink.Wait(t, wait, "every superseded value reported", func() bool { return sink.DroppedTotal() == int(c.stats.Superseded.Load()) })
	for _, d := range sink.DroppedReports() {
		if d.Where != "opcua backlog" || d.N <= 0 || !errors.Is(d.Err, ErrBacklog) || !strings.Contains(d.Err.Error(), "replaced by newer ones") {
			t.Fatalf("dropped report %+v", d)
		}
	}
	for _, m := range sink.MalformedReports() {
		if errors.Is(m.Err, ErrBacklog) {
			t.Fatalf("superseded values reported as malformed: %v", m)
		}
	}
}

func TestConnectorRPCNeedsTheMethod(t *testing.T) {
	ts := startServer(t, 0, plantSpec{devices: 1}, nil)
	c := newTestConnector(t, plantConfig(ts.url(), true, ""))
	ctx := context.Background()
	if _, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "opcua_multiply"}); err == nil || !errors.Is(err, ErrNotConnected) {
		t.Fatalf("before Run: %v", err)
	}
	sink := sinktest.New()
	run(t, c, sink)
	sink.Wait(t, wait, "connected", func() bool { _, ok := latest(sink, "Dev1ById", "setpoint"); return ok })
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
