package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// typedModbusConfig polls two units of one simulator with different byte and
// word orders, so the platform sees decoded values, not raw registers.
func typedModbusConfig(addr string) []byte {
	host, port := splitHostPort(addr)
	slave := func(unit int, name, wordOrder string) string {
		return fmt.Sprintf(`{
      "name": %q, "type": "tcp", "host": %q, "port": %s, "method": "socket", "unitId": %d,
      "deviceName": %q, "deviceType": "meter", "timeout": 1, "pollPeriod": 100,
      "byteOrder": "BIG", "wordOrder": %q,
      "attributes": [{"tag": "serial", "type": "string", "functionCode": 3, "objectsCount": 2, "address": 10}],
      "timeseries": [
        {"tag": "temp", "type": "16int", "functionCode": 3, "objectsCount": 1, "address": 0},
        {"tag": "flow", "type": "32float", "functionCode": 3, "objectsCount": 2, "address": 1},
        {"tag": "count", "type": "32uint", "functionCode": 3, "objectsCount": 2, "address": 3},
        {"tag": "scaled", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 5, "divider": 10}
      ]
    }`, name, host, port, unit, name, wordOrder)
	}
	return []byte(fmt.Sprintf(`{"master": {"slaves": [%s, %s]}}`, slave(1, "Meter A", "BIG"), slave(2, "Meter B", "LITTLE")))
}

func loadTypedRegisters(s *sim.Sim) {
	// Meter A, word order BIG: -123, 12.34, 305419896, 123.4, "AB12"
	s.Set(1, 0, 0xFF85, 0x4145, 0x70A4, 0x1234, 0x5678, 1234)
	s.Set(1, 10, 0x4142, 0x3132)
	// Meter B, word order LITTLE: the same values with registers reversed.
	s.Set(2, 0, 0xFF85, 0x70A4, 0x4145, 0x5678, 0x1234, 1234)
	s.Set(2, 10, 0x4142, 0x3132)
}

var wantTyped = map[string]string{"temp": "-123", "flow": "12.34", "count": "305419896", "scaled": "123.4"}

func checkTyped(msgs []testpeer.Msg) error {
	got, err := telemetry(msgs)
	if err != nil {
		return err
	}
	for _, dev := range []string{"Meter A", "Meter B"} {
		found := false
		for p, vals := range got {
			if p.Device != dev {
				continue
			}
			ok := true
			for k, want := range wantTyped {
				if string(vals[k]) != want {
					ok = false
				}
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no telemetry for %q with %v yet", dev, wantTyped)
		}
	}
	return nil
}

func runTypedEndToEnd(t *testing.T, brokerAddr string) {
	s := startSim(t, 2, 20)
	loadTypedRegisters(s)
	sub := testpeer.Subscribe(t, brokerAddr, "v1/gateway/#")
	dir := t.TempDir()
	path := writeConfig(t, dir, brokerAddr, `{"type": "memory"}`, map[string][]byte{"modbus": typedModbusConfig(s.Addr())})
	startGateway(t, path, nil)

	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return checkTyped(msgs) == nil })
	msgs := sub.Messages()
	// Devices are announced with their profile before data, and attributes arrive.
	conn := map[string]string{}
	attrs := map[string]string{}
	for _, m := range msgs {
		switch m.Topic {
		case "v1/gateway/connect":
			var c struct{ Device, Type string }
			if err := json.Unmarshal(m.Payload, &c); err != nil {
				t.Fatalf("connect payload %q: %v", m.Payload, err)
			}
			conn[c.Device] = c.Type
		case "v1/gateway/attributes":
			var a map[string]map[string]any
			if err := json.Unmarshal(m.Payload, &a); err != nil {
				t.Fatalf("attributes payload %q: %v", m.Payload, err)
			}
			for dev, kv := range a {
				if s, ok := kv["serial"].(string); ok {
					attrs[dev] = s
				}
			}
		}
	}
	for _, dev := range []string{"Meter A", "Meter B"} {
		if conn[dev] != "meter" {
			t.Errorf("connect for %q: type %q, want %q (all: %v)", dev, conn[dev], "meter", conn)
		}
	}
	sub.WaitFor(t, 10*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/gateway/attributes" {
				var a map[string]map[string]any
				_ = json.Unmarshal(m.Payload, &a)
				for dev, kv := range a {
					if s, _ := kv["serial"].(string); s != "" {
						attrs[dev] = s
					}
				}
			}
		}
		return attrs["Meter A"] == "AB12" && attrs["Meter B"] == "AB12"
	})
}

// TestModbusToMosquitto: registers polled from the simulator arrive decoded on
// v1/gateway/telemetry of a real mosquitto, under the right device names.
func TestModbusToMosquitto(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	runTypedEndToEnd(t, m.Addr())
}

// TestModbusToEmbeddedBroker runs the same path against the embedded broker.
func TestModbusToEmbeddedBroker(t *testing.T) {
	b := testpeer.StartMochi(t)
	runTypedEndToEnd(t, b.Addr())
}

// TestBrokerOutage (fault a): the broker is down for 20 s; every value the
// gateway committed meanwhile arrives after it comes back.
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s outage")
	}
	m := testpeer.StartMosquitto(t)
	s := startSim(t, 3, 4)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry")
	dir := t.TempDir()
	path := writeConfig(t, dir, m.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 3, 4, 200*time.Millisecond)})
	bj, err := persistence.OpenBadger(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rj := newRecordingJournal(bj)
	gw := startGateway(t, path, rj)

	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return len(msgs) >= 3 })
	m.Stop()
	outageStart := len(rj.committed())
	testpeer.Eventually(t, 40*time.Second, "points committed during the outage", func() error {
		// The gateway keeps accepting data while the broker is away.
		if n := len(rj.committed()); n < outageStart+3*20*4 {
			return fmt.Errorf("%d points committed during the outage so far", n-outageStart)
		}
		return nil
	})
	if gw.Journal().Stats().Depth == 0 {
		t.Fatal("journal is empty during the outage; nothing is buffered")
	}
	m.Restart()
	committed := rj.committed()
	sub.WaitFor(t, 60*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		return err == nil && len(missing(committed, got)) == 0
	})
	got, _ := telemetry(sub.Messages())
	if miss := missing(committed, got); len(miss) > 0 {
		t.Fatalf("%d of %d committed points never arrived, e.g. %v", len(miss), len(committed), miss[0])
	}
	t.Logf("%d points committed, all delivered; %d buffered during the outage", len(committed), len(committed)-outageStart)
}

func splitHostPort(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
