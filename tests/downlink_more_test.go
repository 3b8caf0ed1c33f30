package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestSharedAttributeSyncOnConnect: when a device connects, the gateway asks
// the platform for the shared attributes the device declares and applies the
// answer.
func TestSharedAttributeSyncOnConnect(t *testing.T) {
	freshEcho("sync-a")
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/attributes/request")
	// The stand-in platform answers every request with a value for its key.
	answered := make(chan struct{}, 1)
	go func() {
		msgs, err := sub.Wait(context.Background(), func(msgs []testpeer.Msg) bool { return len(msgs) > 0 })
		if err != nil {
			return
		}
		var req struct {
			ID     int64    `json:"id"`
			Device string   `json:"device"`
			Client bool     `json:"client"`
			Keys   []string `json:"keys"`
		}
		if json.Unmarshal(msgs[0].Payload, &req) != nil || req.Client || len(req.Keys) != 1 || req.Keys[0] != "setpoint" {
			t.Errorf("attribute request %s", msgs[0].Payload)
			return
		}
		_ = sub.Publish(context.Background(), "v1/gateway/attributes/response",
			[]byte(fmt.Sprintf(`{"id":%d,"device":%q,"value":19.5}`, req.ID, req.Device)), 1)
		answered <- struct{}{}
	}()
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["sync-a"]}`)})
	startGateway(t, path, nil)
	select {
	case <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("no attribute request on connect")
	}
	testpeer.Eventually(t, 10*time.Second, "setpoint 19.5 on sync-a", func() error {
		d, _ := echoDevices.Load("sync-a")
		if v := d.(*echoDevice).attribute("setpoint"); v != "19.5" {
			return fmt.Errorf("setpoint %q", v)
		}
		return nil
	})
}

// TestDeviceFilteringAndGatewayInfo: denied devices send nothing; gateway_version
// and gateway_stats answer in the upstream shapes.
func TestDeviceFilteringAndGatewayInfo(t *testing.T) {
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/telemetry", "v1/devices/me/rpc/response/+")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.json"), []byte(`{"deny": {"echo": ["blocked-.*"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, dir, b.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["blocked-1", "open-1"]}`)},
		map[string]any{"deviceFiltering": map[string]any{"enable": true, "filterFile": "list.json"}})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "open-1") >= 10
	})
	if got, _ := telemetry(sub.Messages()); contiguousAny(got, "blocked-1") != 0 {
		t.Fatal("a denied device sent telemetry")
	}
	for id, req := range map[string]string{"1": "gateway_version", "2": "gateway_stats"} {
		if err := sub.Publish(context.Background(), "v1/devices/me/rpc/request/"+id, []byte(`{"method":"`+req+`"}`), 1); err != nil {
			t.Fatal(err)
		}
	}
	var version, stats string
	sub.WaitFor(t, 15*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			switch m.Topic {
			case "v1/devices/me/rpc/response/1":
				version = string(m.Payload)
			case "v1/devices/me/rpc/response/2":
				stats = string(m.Payload)
			}
		}
		return version != "" && stats != ""
	})
	if !strings.HasPrefix(version, `{"code":200,"resp":{"current_version":`) {
		t.Errorf("gateway_version: %s", version)
	}
	var s map[string]int
	if err := json.Unmarshal([]byte(stats), &s); err != nil || s["eventsProduced"] == 0 {
		t.Errorf("gateway_stats: %s", stats)
	}
}

// TestRemoteGeneralConfigFallback: a platform connection that validates but
// does not work is tried, then the previous configuration is restored.
func TestRemoteGeneralConfigFallback(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/devices/me/attributes")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["fb-a"]}`)},
		map[string]any{"remoteConfiguration": true})
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	startGatewayWith(t, actors.Options{Config: cfg, Logger: testLogger(t), RemoteConfigTrial: 2 * time.Second})
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "fb-a") > 0
	})
	before, _ := os.ReadFile(path)
	dead := testpeer.FreePort(t) // nothing listens there
	body := fmt.Sprintf(`{"general_configuration": {"host": "127.0.0.1", "port": %d, "security": {"accessToken": "test-token"}}}`, dead)
	if err := sub.Publish(context.Background(), "v1/devices/me/attributes", []byte(body), 1); err != nil {
		t.Fatal(err)
	}
	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/devices/me/attributes" && strings.Contains(string(m.Payload), "previous configuration was restored") {
				return true
			}
		}
		return false
	})
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("tb_gateway.json not restored:\n%s", after)
	}
	sub.Reset()
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "fb-a") > 0
	})
}

func init() {
	actors.RegisterGatewayMethod("test_panic", func(context.Context, *actors.Gateway, json.RawMessage) ([]byte, error) {
		panic("boom")
	})
}

// TestPanickingGatewayMethod: a method that panics is answered with a 500
// error and the gateway keeps serving.
func TestPanickingGatewayMethod(t *testing.T) {
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/devices/me/rpc/response/+", "v1/gateway/telemetry")
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{"echo": []byte(`{"devices": ["p-a"]}`)})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return len(msgs) > 0 }) // session is up
	for id, method := range map[string]string{"1": "gateway_test_panic", "2": "gateway_ping"} {
		if err := sub.Publish(context.Background(), "v1/devices/me/rpc/request/"+id, []byte(`{"method":"`+method+`"}`), 1); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if strings.HasPrefix(m.Topic, "v1/devices/me/rpc/response/") {
				got[m.Topic] = string(m.Payload)
			}
		}
		return len(got) == 2
	})
	if r := got["v1/devices/me/rpc/response/1"]; r != `{"error":"internal error: boom","code":500}` {
		t.Errorf("panicking method: %s", r)
	}
	if r := got["v1/devices/me/rpc/response/2"]; r != `{"code":200,"resp":"pong"}` {
		t.Errorf("ping after a panic: %s", r)
	}
}
