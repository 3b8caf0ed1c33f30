package actors

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/platform"
)

// TestStatisticsAlone: the statistics telemetry is valid JSON with the
// deltas since the last send, per connector too, and the loop publishes it
// through the given publisher.
func TestStatisticsAlone(t *testing.T) {
	cc := map[string]*ConnectorCounters{"m": {}}
	cfg := &config.Gateway{Connectors: []config.Connector{{Name: "m", Type: "modbus"}}}
	sent := make(chan []byte, 1)
	st := &statistics{
		counters: &Counters{}, journal: persistence.OpenMemory(persistence.Options{}),
		client: new(atomic.Pointer[platform.Client]), conf: func() *config.Gateway { return cfg },
		connectorCounters: func(n string) *ConnectorCounters { return cc[n] },
		publish: func(_ context.Context, topic string, payload []byte, _ byte) error {
			if topic == platform.TopicMeTelemetry {
				select {
				case sent <- payload:
				default:
				}
			}
			return nil
		},
		version: "1.2.3", log: zerolog.Nop(),
		automation: func() any { return map[string]int{"tasksEnabled": 2} },
	}
	var prev, cur statSnapshot
	prev.take(st)
	st.counters.MessagesSent.Add(7)
	cc["m"].Polls.Add(3)
	cur.take(st)
	var v struct {
		Values struct {
			MachineStats    map[string]float64            `json:"machineStats"`
			ConnectorsStats map[string]map[string]float64 `json:"connectorsStats"`
			AutomationStats map[string]float64            `json:"automationStats"`
		} `json:"values"`
	}
	raw := st.payload(&prev, &cur, observe.CPUUsage{})
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	if v.Values.AutomationStats["tasksEnabled"] != 2 {
		t.Fatalf("automationStats missing: %s", raw)
	}
	if v.Values.MachineStats["msgsSentToPlatform"] != 7 || v.Values.ConnectorsStats["m"]["connectorMsgsReceived"] != 3 {
		t.Fatalf("deltas wrong: %s", raw)
	}
	var attrs map[string]any
	if err := json.Unmarshal(st.startupAttributes(), &attrs); err != nil || attrs["Version"] != "1.2.3" {
		t.Fatalf("startup attributes %v, %v", attrs, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.loop(ctx, 10*time.Millisecond)
	select {
	case p := <-sent:
		if !json.Valid(p) {
			t.Fatalf("published %s", p)
		}
	case <-time.After(waitLimit):
		t.Fatal("the loop published nothing")
	}
}
