package observe

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	m := New(Options{})
	m.Device("bus", "plc").Polled(0.01, 3, nil, 1)
	var ready atomic.Bool
	srv, err := Listen(ServerOptions{Address: "127.0.0.1:0", Metrics: m, Logger: zerolog.Nop(), Ready: func() map[string]string {
		if ready.Load() {
			return nil
		}
		return map[string]string{"uplink": "not connected to the platform", "journal": "closed"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	base := "http://" + srv.Addr()
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") {
		t.Fatalf("bound to %s", srv.Addr())
	}

	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `iotgw_device_polls_total{connector="bus",device="plc"} 1`) ||
		!strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics %d:\n%.2000s", code, body)
	}
	if code, body = get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz %d %s", code, body)
	}
	code, body = get(t, base+"/readyz")
	var r struct {
		Status   string            `json:"status"`
		NotReady []string          `json:"not_ready"`
		Reasons  map[string]string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 503 || strings.Join(r.NotReady, ",") != "journal,uplink" || r.Reasons["uplink"] == "" {
		t.Errorf("/readyz while not ready: %d %s", code, body)
	}
	ready.Store(true)
	if code, body = get(t, base+"/readyz"); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("/readyz when ready: %d %s", code, body)
	}
	if code, _ = get(t, base+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof is served (%d) although it was not enabled", code)
	}
}

func TestServerPprofWhenEnabled(t *testing.T) {
	srv, err := Listen(ServerOptions{Address: "127.0.0.1:0", Pprof: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if code, body := get(t, "http://"+srv.Addr()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %d", code)
	}
	if code, _ := get(t, "http://"+srv.Addr()+"/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Errorf("goroutine profile: %d", code)
	}
	// No metrics were given: /metrics is not there.
	if code, _ := get(t, "http://"+srv.Addr()+"/metrics"); code != 404 {
		t.Errorf("/metrics without metrics: %d", code)
	}
}

func TestServerBindFailureIsReported(t *testing.T) {
	a, err := Listen(ServerOptions{Address: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if b, err := Listen(ServerOptions{Address: a.Addr(), Logger: zerolog.Nop()}); err == nil {
		b.Close(context.Background())
		t.Fatal("a second listener on the same address must fail")
	}
}

func TestServerAutomation(t *testing.T) {
	var state atomic.Value
	state.Store(map[string]any{})
	srv, err := Listen(ServerOptions{Address: "127.0.0.1:0", Logger: zerolog.Nop(), Automation: func() any {
		if m := state.Load().(map[string]any); len(m) > 0 {
			return m
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if code, body := get(t, "http://"+srv.Addr()+"/automation"); code != 404 || !strings.Contains(body, "automation off") {
		t.Errorf("/automation while off: %d %s", code, body)
	}
	state.Store(map[string]any{"rules": []any{map[string]any{"name": "hot", "runs": 2}}})
	if code, body := get(t, "http://"+srv.Addr()+"/automation"); code != 200 || !strings.Contains(body, `"name":"hot"`) {
		t.Errorf("/automation: %d %s", code, body)
	}
}
