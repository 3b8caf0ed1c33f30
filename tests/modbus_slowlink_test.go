package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// TestSlowLinkSpreadsPolls: ten slaves behind one Modbus TCP endpoint that
// answers each request after 30 ms (a serial gateway, which the config
// does not show) start on one poll instant, where the last would wait
// 300 ms for its turn. Their polls running past the instant move them
// until the platform sees their timestamps (each poll's start) on several
// instants, none shared by more than the three the link serves in a
// tenth of their one-second period.
func TestSlowLinkSpreadsPolls(t *testing.T) {
	if testing.Short() {
		t.Skip("several poll periods")
	}
	m := testpeer.StartMosquitto(t)
	const devices = 10
	s := startSim(t, devices, 2)
	for unit := range devices {
		s.SetDelay(uint8(unit+1), 30*time.Millisecond)
	}
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": onReceived(t, sim.GatewayConfig(s.Addr(), devices, 2, time.Second))})
	startGateway(t, path, nil)

	// Each device's latest poll, once all of them are from the last
	// period: its timestamps within 100 ms of each other are one instant.
	spread := func(msgs []testpeer.Msg) error {
		got, err := telemetry(msgs)
		if err != nil {
			return err
		}
		latest := map[string]int64{}
		var newest int64
		for p := range got {
			latest[p.Device] = max(latest[p.Device], p.Ts)
			newest = max(newest, p.Ts)
		}
		perInstant := map[int64]int{}
		for dev, ts := range latest {
			if ts <= newest-1000 {
				return fmt.Errorf("%s last polled at %d, a period before %d", dev, ts, newest)
			}
			perInstant[ts/100]++
		}
		if len(latest) < devices {
			return fmt.Errorf("%d of %d devices polled so far", len(latest), devices)
		}
		for instant, n := range perInstant {
			if n > 3 {
				return fmt.Errorf("%d devices polled at %d ms: %v", n, instant*100, perInstant)
			}
		}
		return nil
	}
	var last error
	defer func() {
		if t.Failed() {
			t.Logf("last: %v", last)
		}
	}()
	sub.WaitFor(t, 40*time.Second, func(msgs []testpeer.Msg) bool {
		last = spread(msgs)
		return last == nil
	})
}

// onReceived makes a connector file report every value it reads, so each
// poll reaches the platform.
func onReceived(t *testing.T, file []byte) []byte {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(file, &f); err != nil {
		t.Fatal(err)
	}
	f["reportStrategy"] = map[string]any{"type": "ON_RECEIVED"}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
