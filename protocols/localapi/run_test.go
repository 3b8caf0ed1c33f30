package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

const wait = 10 * time.Second

// testDevices: two token devices and one with MQTT basic credentials.
const testDevices = `[
  {"name": "Sensor A", "profile": "esp32", "accessToken": "TOKEN_A"},
  {"name": "Sensor B", "accessToken": "TOKEN_B"},
  {"name": "PLC C", "profile": "plc", "clientId": "plc-c", "username": "cu", "password": "cp"}
]`

// startAPI runs the local API with both transports on free loopback ports
// into a Recorder; extra keys go into the section.
func startAPI(t *testing.T, extra map[string]any) (*Connector, *sinktest.Recorder) {
	t.Helper()
	var devices []any
	if err := json.Unmarshal([]byte(testDevices), &devices); err != nil {
		t.Fatal(err)
	}
	m := map[string]any{
		"mqtt":    map[string]any{"enabled": true, "address": "127.0.0.1:0"},
		"http":    map[string]any{"enabled": true, "address": "127.0.0.1:0"},
		"devices": devices,
	}
	for k, v := range extra {
		m[k] = v
	}
	ps := &spec.Problems{}
	c, err := NewConnector(protocols.ConnectorConfig{Name: Section, Type: Type, Config: spec.New(ps, "tb_gateway.json", Section, m)})
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.New()
	sinktest.Run(t, c, rec)
	select {
	case <-c.Ready():
	case <-time.After(wait):
		t.Fatalf("listeners not ready: %s", rec)
	}
	return c, rec
}

// rpc runs a server-side RPC through the device's Commander, as the device
// actor does, and returns its result on a channel.
func rpc(c *Connector, device string, id int64, method, params string, timeout time.Duration) <-chan string {
	out := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := c.Commander(device, "").RPC(ctx, protocols.RPCRequest{ID: id, Device: device, Method: method, Params: json.RawMessage(params)})
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- string(res)
	}()
	return out
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("%s: nothing within %v", what, wait)
		var zero T
		return zero
	}
}

func values(rec *sinktest.Recorder, device, key string) string {
	var out []string
	for _, v := range rec.Values(device, key) {
		out = append(out, v.String())
	}
	return strings.Join(out, ",")
}

func TestConfigSummary(t *testing.T) {
	c, _ := startAPI(t, nil)
	if s := c.Summary(); !strings.Contains(s, "mqtt 127.0.0.1:0") || !strings.Contains(s, "3 devices") {
		t.Errorf("summary %q", s)
	}
	if c.Addr("mqtt") == "" || strings.HasSuffix(c.Addr("mqtt"), ":0") || c.Addr("http") == "" {
		t.Errorf("bound addresses %q %q", c.Addr("mqtt"), c.Addr("http"))
	}
}

// waitValues waits until device's key holds want (comma-joined).
func waitValues(t *testing.T, rec *sinktest.Recorder, device, key, want string) {
	t.Helper()
	testpeer.Eventually(t, wait, fmt.Sprintf("%s %s = %s", device, key, want), func() error {
		if got := values(rec, device, key); got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}
