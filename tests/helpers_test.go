package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"

	_ "github.com/industryos/gateway/protocols/all"
)

// point identifies one telemetry entry: a device's poll at a timestamp.
type point struct {
	Device string
	Ts     int64
}

// telemetry decodes v1/gateway/telemetry messages into points and values.
func telemetry(msgs []testpeer.Msg) (map[point]map[string]json.RawMessage, error) {
	out := map[point]map[string]json.RawMessage{}
	for _, m := range msgs {
		if m.Topic != "v1/gateway/telemetry" {
			continue
		}
		var body map[string][]struct {
			Ts     int64                      `json:"ts"`
			Values map[string]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(m.Payload, &body); err != nil {
			return nil, fmt.Errorf("bad telemetry payload %q: %w", m.Payload, err)
		}
		for dev, entries := range body {
			for _, e := range entries {
				p := point{dev, e.Ts}
				if out[p] == nil {
					out[p] = map[string]json.RawMessage{}
				}
				for k, v := range e.Values {
					out[p][k] = v
				}
			}
		}
	}
	return out, nil
}

// startSim starts an animated Modbus simulator that stops on cleanup.
func startSim(t testing.TB, devices, registers int) *sim.Sim {
	t.Helper()
	s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0", Devices: devices, Registers: registers, Animate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// writeConfig writes a tb_gateway.json and connector files into dir and returns its path.
// tbExtra, when given, adds keys to the thingsboard section.
func writeConfig(t testing.TB, dir, brokerAddr string, storage string, connectors map[string][]byte, tbExtra ...map[string]any) string {
	t.Helper()
	host, port, err := net.SplitHostPort(brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]string
	for name, body := range connectors {
		file := name + ".json"
		if err := os.WriteFile(filepath.Join(dir, file), body, 0o600); err != nil {
			t.Fatal(err)
		}
		typ := name
		if i := len(typ); i > 0 {
			for j, c := range typ {
				if c == '-' {
					typ = typ[:j]
					break
				}
			}
		}
		list = append(list, map[string]string{"type": typ, "name": name, "configuration": file})
	}
	p, _ := strconv.Atoi(port)
	tb := map[string]any{"host": host, "port": p, "security": map[string]any{"accessToken": "test-token"}}
	for _, extra := range tbExtra {
		for k, v := range extra {
			tb[k] = v
		}
	}
	main := map[string]any{
		"thingsboard": tb,
		"storage":     json.RawMessage(storage),
		"connectors":  list,
	}
	raw, _ := json.MarshalIndent(main, "", "  ")
	path := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("IOTGW_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// startGateway loads the config at path and starts the tree; it stops on cleanup.
func startGateway(t testing.TB, path string, j persistence.Journal) *actors.Gateway {
	t.Helper()
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return startGatewayWith(t, actors.Options{Config: cfg, Logger: testLogger(t), Journal: j})
}

// startGatewayWith starts a gateway with opts and stops it on cleanup.
func startGatewayWith(t testing.TB, opts actors.Options) *actors.Gateway {
	t.Helper()
	gw, err := actors.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			ctx, cancel := contextTimeout(5 * time.Second)
			defer cancel()
			_ = gw.Stop(ctx)
		})
	})
	return gw
}

// recordingJournal wraps a journal and remembers every committed telemetry point,
// so fault tests can check that everything accepted was delivered.
type recordingJournal struct {
	persistence.Journal
	mu     sync.Mutex
	points map[point]bool
}

func newRecordingJournal(j persistence.Journal) *recordingJournal {
	return &recordingJournal{Journal: j, points: map[point]bool{}}
}

func (r *recordingJournal) Append(data [][]byte) (uint64, uint64, error) {
	first, last, err := r.Journal.Append(data)
	if err == nil {
		r.mu.Lock()
		for _, d := range data {
			if ev, derr := protocols.DecodeEvent(d); derr == nil && ev.Kind == protocols.EventTelemetry {
				r.points[point{ev.Device, ev.Ts}] = true
			}
		}
		r.mu.Unlock()
	}
	return first, last, err
}

func (r *recordingJournal) committed() map[point]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[point]bool, len(r.points))
	for p := range r.points {
		out[p] = true
	}
	return out
}

// missing lists committed points the platform has not received.
func missing(committed map[point]bool, got map[point]map[string]json.RawMessage) []point {
	var out []point
	for p := range committed {
		if _, ok := got[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}

func newMemoryJournal() persistence.Journal { return persistence.OpenMemory(persistence.Options{}) }

// deviceValues merges every telemetry value the platform got for device,
// as JSON text by key.
func deviceValues(msgs []testpeer.Msg, device string) map[string]string {
	got, err := telemetry(msgs)
	if err != nil {
		return nil
	}
	values := map[string]string{}
	for p, vs := range got {
		if p.Device == device {
			for k, v := range vs {
				values[k] = string(v)
			}
		}
	}
	return values
}

// attributeSeen reports whether the platform got key = want (JSON text) as
// an attribute of device.
func attributeSeen(msgs []testpeer.Msg, device, key, want string) bool {
	for _, m := range testpeer.OnTopic(msgs, "v1/gateway/attributes") {
		var body map[string]map[string]json.RawMessage
		if json.Unmarshal(m.Payload, &body) == nil && string(body[device][key]) == want {
			return true
		}
	}
	return false
}
