package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestMosquittoClients: the Debian mosquitto clients as devices, over
// 3.1.1 and 5: mosquitto_pub's QoS 1 publish completes (its PUBACK came
// after the commit), a wrong token is refused as not authorised, and
// mosquitto_sub receives its shared-attribute update.
func TestMosquittoClients(t *testing.T) {
	pub := testpeer.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	sub := testpeer.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	c, rec := startAPI(t, nil)
	host, port := splitAddr(t, c.Addr("mqtt"))
	for i, v := range []string{"mqttv311", "mqttv5"} {
		out, err := exec.Command(pub, "-h", host, "-p", port, "-V", v, "-q", "1", "-u", "TOKEN_A",
			"-t", "v1/devices/me/telemetry", "-m", `{"level":`+string(rune('1'+i))+`}`).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", v, err, out)
		}
		out, err = exec.Command(pub, "-h", host, "-p", port, "-V", v, "-q", "1", "-u", "NOT_A_TOKEN",
			"-t", "v1/devices/me/telemetry", "-m", `{"level":9}`).CombinedOutput()
		if err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
			t.Errorf("%s wrong token: %v: %s", v, err, out)
		}
	}
	// QoS 2: the PUBREC comes after the commit; the exchange completes.
	if out, err := exec.Command(pub, "-h", host, "-p", port, "-V", "mqttv5", "-q", "2", "-u", "TOKEN_A",
		"-t", "v1/devices/me/telemetry", "-m", `{"level":3}`).CombinedOutput(); err != nil {
		t.Fatalf("qos 2: %v: %s", err, out)
	}
	waitValues(t, rec, "Sensor A", "level", "1,2,3")
	if n := len(rec.RefusedReports()); n != 2 {
		t.Errorf("%d refusals counted, want 2", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	lines := testpeer.Lines(t, exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-u", "TOKEN_B",
		"-C", "1", "-t", "v1/devices/me/attributes"))
	// Once the broker holds the subscription the update cannot be missed.
	waitSubscribed(t, c, "Sensor B", "v1/devices/me/attributes")
	if _, err := c.Commander("Sensor B", "").UpdateAttributes(ctx, map[string]json.RawMessage{"mode": json.RawMessage(`"eco"`)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if !strings.Contains(strings.Join(got, "\n"), `{"mode":"eco"}`) {
		t.Errorf("mosquitto_sub got %q", got)
	}
}

// waitSubscribed waits until device has a session subscribed to topic.
func waitSubscribed(t *testing.T, c *Connector, device, topic string) {
	t.Helper()
	st := c.hub.byName[device]
	testpeer.Eventually(t, wait, device+" subscribed to "+topic, func() error {
		m := c.hub.mqtt.Load()
		if m == nil || len(m.srv.Topics.Subscribers(st.prefix+topic).Subscriptions) == 0 {
			return errors.New("not yet")
		}
		return nil
	})
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q", addr)
	}
	return addr[:i], addr[i+1:]
}
