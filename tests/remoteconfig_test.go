package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// counterDevice reports "n", counting its polls from 1: a device rebuilt by
// a connector restart starts again at 1.
type counterDevice struct {
	name string
	n    atomic.Int64
}

func (d *counterDevice) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: d.name, Type: "counter", PollPeriod: 50 * time.Millisecond}
}
func (d *counterDevice) Poll(context.Context) (protocols.Reading, error) {
	return protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "n", Value: protocols.Int(d.n.Add(1))}}}, nil
}
func (d *counterDevice) Close() error { return nil }

// counterConnector counts its closes by connector name: a connector whose
// actor never stopped was never closed.
type counterConnector struct {
	name string
	devs []protocols.Device
}

var counterCloses sync.Map // connector name → *atomic.Int64

func counterClosed(name string) int64 {
	v, _ := counterCloses.LoadOrStore(name, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (c *counterConnector) Devices() []protocols.Device { return c.devs }
func (c *counterConnector) Close() error {
	v, _ := counterCloses.LoadOrStore(c.name, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	return nil
}

func init() {
	protocols.Register("counter", func(cfg protocols.ConnectorConfig) (protocols.Connector, error) {
		c := &counterConnector{name: cfg.Name}
		for _, n := range cfg.Config.Strings("devices") {
			c.devs = append(c.devs, &counterDevice{name: n})
		}
		return c, nil
	})
}

// counts are a device's "n" values in the order the platform got them.
func counts(t *testing.T, msgs []testpeer.Msg, device string) []int64 {
	t.Helper()
	var out []int64
	for _, m := range msgs {
		if m.Topic != "v1/gateway/telemetry" {
			continue
		}
		var body map[string][]struct {
			Values struct {
				N *int64 `json:"n"`
			} `json:"values"`
		}
		if err := json.Unmarshal(m.Payload, &body); err != nil {
			t.Fatalf("bad telemetry %q: %v", m.Payload, err)
		}
		for _, e := range body[device] {
			if e.Values.N != nil {
				out = append(out, *e.Values.N)
			}
		}
	}
	return out
}

// TestRemoteConnectorChangeRestartsOnlyIt: a connector's configuration
// changed remotely restarts that connector alone. The other connector's
// actor keeps running (never closed, its device's count never starts over,
// its data keeps flowing), the tree is not restarted, the file is written
// with a backup, and updates sent back to back apply in arrival order.
func TestRemoteConnectorChangeRestartsOnlyIt(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/devices/me/attributes")
	dir := t.TempDir()
	path := writeConfig(t, dir, m.Addr(), `{"type": "memory"}`, map[string][]byte{
		"counter-a": []byte(`{"devices": ["rca-1"]}`),
		"counter-b": []byte(`{"devices": ["rcb-1"]}`),
	}, map[string]any{"remoteConfiguration": true})
	closedA, closedB := counterClosed("counter-a"), counterClosed("counter-b")
	gw := startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return len(counts(t, msgs, "rca-1")) > 0 && len(counts(t, msgs, "rcb-1")) > 0
	})
	trees := gw.Counters().TreeRestarts.Load()
	send := func(devices ...string) {
		t.Helper()
		list, _ := json.Marshal(devices)
		body := fmt.Sprintf(`{"counter-a": {"name": "counter-a", "type": "counter", "configurationJson": {"devices": %s}}}`, list)
		if err := sub.Publish(context.Background(), "v1/devices/me/attributes", []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	applied := func(n int) {
		t.Helper()
		sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
			got := 0
			for _, m := range msgs {
				if m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), `"remoteConfigurationStatus":{"key":"counter-a","applied":true`) {
					got++
				}
				if m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), `"applied":false`) {
					t.Fatalf("rejected: %s", m.Payload)
				}
			}
			return got >= n
		})
	}

	send("rca-1", "rca-2")
	applied(1)
	// Data of the changed connector's new device and of the other connector
	// keeps flowing after the change.
	before := len(counts(t, sub.Messages(), "rcb-1"))
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return len(counts(t, msgs, "rca-2")) > 0 && len(counts(t, msgs, "rcb-1")) > before+5
	})
	if got := counterClosed("counter-a") - closedA; got != 1 {
		t.Errorf("counter-a closed %d times, want 1 (one restart)", got)
	}
	if got := counterClosed("counter-b") - closedB; got != 0 {
		t.Errorf("counter-b closed %d times: the unchanged connector was restarted", got)
	}
	if got := gw.Counters().TreeRestarts.Load(); got != trees {
		t.Errorf("the tree restarted (%d → %d) for a connector change", trees, got)
	}
	if got := gw.ConnectorCounters("counter-b").Restarts.Load(); got != 0 {
		t.Errorf("counter-b restarts: %d", got)
	}
	// A restarted rcb-1 would count from 1 again (messages may arrive out
	// of order, so the test is for a second 1, not for a decrease).
	ones := 0
	for _, n := range counts(t, sub.Messages(), "rcb-1") {
		if n == 1 {
			ones++
		}
	}
	if ones != 1 {
		t.Errorf("rcb-1 reported n=1 %d times: its connector was restarted", ones)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "counter-a.json"))
	if !strings.Contains(string(raw), "rca-2") {
		t.Errorf("counter-a.json not written: %s", raw)
	}
	for pattern, want := range map[string]int{"counter-a.backup.*.json": 1, "tb_gateway.backup.*.json": 1, "counter-b.backup.*.json": 0} {
		if got, _ := filepath.Glob(filepath.Join(dir, "backup", pattern)); len(got) != want {
			t.Errorf("backups %s: %v, want %d", pattern, got, want)
		}
	}

	// Two updates back to back: the later one is what stays.
	send("rca-1", "rca-3")
	send("rca-1", "rca-4")
	applied(3)
	raw, _ = os.ReadFile(filepath.Join(dir, "counter-a.json"))
	if !strings.Contains(string(raw), "rca-4") || strings.Contains(string(raw), "rca-3") {
		t.Errorf("updates applied out of order: counter-a.json is %s", raw)
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return len(counts(t, msgs, "rca-4")) > 0 })
	if got := counterClosed("counter-b") - closedB; got != 0 {
		t.Errorf("counter-b closed %d times after three changes of counter-a", got)
	}

	// Removing counter-a stops it alone.
	if err := sub.Publish(context.Background(), "v1/devices/me/attributes", []byte(`{"active_connectors": ["counter-b"]}`), 1); err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), `"remoteConfigurationStatus":{"key":"active_connectors","applied":true`) {
				return true
			}
		}
		return false
	})
	if got := counterClosed("counter-a") - closedA; got != 4 {
		t.Errorf("counter-a closed %d times, want 4 (three restarts and the removal)", got)
	}
	before = len(counts(t, sub.Messages(), "rcb-1"))
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return len(counts(t, msgs, "rcb-1")) > before+5 })
	if got := counterClosed("counter-b") - closedB; got != 0 {
		t.Errorf("counter-b closed %d times after counter-a was removed", got)
	}
	if got := gw.Counters().TreeRestarts.Load(); got != trees {
		t.Errorf("the tree restarted (%d → %d)", trees, got)
	}
}
