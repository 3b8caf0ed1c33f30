package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// v3Client is an MQTT 3.1.1 device (paho.mqtt.golang) that records what it
// receives.
type v3Client struct {
	c    paho3.Client
	mu   sync.Mutex
	msgs []string // "topic payload"
	got  chan struct{}
}

func connectV3(t *testing.T, addr, clientID, user, pass string) (*v3Client, error) {
	t.Helper()
	d := &v3Client{got: make(chan struct{}, 100)}
	o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) { d.add(m.Topic() + " " + string(m.Payload())) })
	d.c = paho3.NewClient(o)
	tok := d.c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d, nil
}

func (d *v3Client) add(s string) {
	d.mu.Lock()
	d.msgs = append(d.msgs, s)
	d.mu.Unlock()
	d.got <- struct{}{}
}

func (d *v3Client) messages() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.msgs...)
}

func (d *v3Client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := d.c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho3.SubscribeToken).Result()[filter]
}

func (d *v3Client) waitMessage(t *testing.T, want string) {
	t.Helper()
	testpeer.Eventually(t, wait, "device message "+want, func() error {
		for _, m := range d.messages() {
			if m == want {
				return nil
			}
		}
		return fmt.Errorf("got %q", d.messages())
	})
}

// TestMQTT311AckAfterCommit: a QoS 1 telemetry message is acknowledged
// only once the runtime committed it. While the data is held uncommitted
// the device's PUBACK is missing even after a later round trip on the same
// connection (its SUBACK) came back.
func TestMQTT311AckAfterCommit(t *testing.T) {
	c, rec := startAPI(t, nil)
	dev, err := connectV3(t, c.Addr("mqtt"), "a-1", "TOKEN_A", "")
	if err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, wait, "connect", func() bool { return len(rec.Connects()) == 1 })
	if got := rec.Connects()[0]; got != "Sensor A/esp32" {
		t.Errorf("connect %q", got)
	}
	rec.Hold()
	tok := dev.c.Publish("v1/devices/me/telemetry", 1, false, `{"temperature":21.5,"on":true}`)
	rec.Wait(t, wait, "the push", func() bool { return rec.Pushed() == 1 })
	dev.subscribe(t, "v1/devices/me/attributes")
	select {
	case <-tok.Done():
		t.Fatal("PUBACK before the data was committed")
	default:
	}
	rec.Release()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the commit: %v", tok.Error())
	}
	waitValues(t, rec, "Sensor A", "temperature", "21.5")

	// Timestamped arrays become one push per sample; attributes are pushed
	// as attributes.
	tok = dev.c.Publish("v1/devices/me/telemetry", 1, false, `[{"ts":1700000000000,"values":{"temperature":1}},{"ts":1700000001000,"values":{"temperature":2}}]`)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	tok = dev.c.Publish("v1/devices/me/attributes", 1, false, `{"firmware":"1.2.3"}`)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitValues(t, rec, "Sensor A", "temperature", "21.5,1,2")
	waitValues(t, rec, "Sensor A", "firmware", "1.2.3")
	var stamps []int64
	for _, p := range rec.DataPushes() {
		if !p.Ts.IsZero() {
			stamps = append(stamps, p.Ts.UnixMilli())
		}
	}
	if fmt.Sprint(stamps) != "[1700000000000 1700000001000]" {
		t.Errorf("timestamps %v", stamps)
	}

	// A malformed payload is counted, acknowledged and dropped.
	tok = dev.c.Publish("v1/devices/me/telemetry", 1, false, `not json`)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	rec.Wait(t, wait, "malformed report", func() bool { return len(rec.MalformedReports()) == 1 })

	dev.c.Disconnect(0)
	rec.Wait(t, wait, "disconnect", func() bool { return len(rec.Disconnects()) == 1 })
}

// TestMQTTRefusesUnknownCredentials: CONNACK "not authorized" for 3.1.1
// and 5, counted; basic credentials must match in full.
func TestMQTTRefusesUnknownCredentials(t *testing.T) {
	c, rec := startAPI(t, nil)
	_, err := connectV3(t, c.Addr("mqtt"), "x", "WRONG", "")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not authori") {
		t.Errorf("3.1.1 wrong token: %v, want not authorized", err)
	}
	if _, err := connectV3(t, c.Addr("mqtt"), "plc-c", "cu", "wrong"); err == nil {
		t.Error("3.1.1 wrong password accepted")
	}
	if rc := connectV5(t, c.Addr("mqtt"), "y", "WRONG"); rc != 0x87 {
		t.Errorf("5 wrong token: CONNACK 0x%02x, want 0x87", rc)
	}
	if rc := connectV5(t, c.Addr("mqtt"), "z", "TOKEN_B"); rc != 0 {
		t.Errorf("5 good token: CONNACK 0x%02x", rc)
	}
	if _, err := connectV3(t, c.Addr("mqtt"), "plc-c", "cu", "cp"); err != nil {
		t.Errorf("basic credentials: %v", err)
	}
	rec.Wait(t, wait, "three refusals", func() bool { return len(rec.RefusedReports()) == 3 })
	for _, r := range rec.RefusedReports() {
		if strings.Contains(r.String(), "WRONG") || strings.Contains(r.String(), "wrong") {
			t.Errorf("a refusal reports the secret: %s", r)
		}
	}
}

func connectV5(t *testing.T, addr, clientID, user string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cli := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 10, UsernameFlag: true, Username: user})
	if ca == nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	if err == nil {
		_ = cli.Disconnect(&paho.Disconnect{})
	}
	return ca.ReasonCode
}

// TestMQTTDownlinkAndIsolation: with two devices on the same topic names,
// each gets only its own attribute updates and RPCs; a subscription
// outside v1/devices/me/ is refused; the RPC reply, an attribute request
// and a client-side RPC come back.
func TestMQTTDownlinkAndIsolation(t *testing.T) {
	c, rec := startAPI(t, nil)
	a, err := connectV3(t, c.Addr("mqtt"), "a", "TOKEN_A", "")
	if err != nil {
		t.Fatal(err)
	}
	var b []testpeer.Msg
	var bmu sync.Mutex
	bsub := testpeer.SubscribeWith(t, c.Addr("mqtt"), testpeer.SubscriberOptions{Username: "TOKEN_B", ClientID: "b",
		OnMessage: func(m testpeer.Msg) { bmu.Lock(); b = append(b, m); bmu.Unlock() }},
		"v1/devices/me/attributes", "v1/devices/me/rpc/request/+")
	if code := a.subscribe(t, "#"); code != 0x80 {
		t.Errorf("subscription to # granted (0x%02x)", code)
	}
	if code := a.subscribe(t, "iotgw-local/1/#"); code != 0x80 {
		t.Errorf("subscription to another device's internal topics granted (0x%02x)", code)
	}
	a.subscribe(t, "v1/devices/me/attributes")
	a.subscribe(t, "v1/devices/me/rpc/request/+")
	a.subscribe(t, "v1/devices/me/attributes/response/+")
	a.subscribe(t, "v1/devices/me/rpc/response/+")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Commander("Sensor A", "").UpdateAttributes(ctx, map[string]json.RawMessage{"setpoint": json.RawMessage(`21`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commander("Sensor B", "").UpdateAttributes(ctx, map[string]json.RawMessage{"setpoint": json.RawMessage(`99`)}); err != nil {
		t.Fatal(err)
	}
	a.waitMessage(t, `v1/devices/me/attributes {"setpoint":21}`)
	bsub.WaitTopic(t, wait, "v1/devices/me/attributes", 1)

	// RPC to A: A answers; B sees nothing of it.
	res := rpc(c, "Sensor A", 7, "setValve", `{"open":true}`, wait)
	a.waitMessage(t, `v1/devices/me/rpc/request/7 {"method":"setValve","params":{"open":true}}`)
	if tok := a.c.Publish("v1/devices/me/rpc/response/7", 1, false, `{"ok":true}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if got := recv(t, res, "rpc result"); got != `{"ok":true}` {
		t.Errorf("rpc result %s", got)
	}
	// B's own RPC arrives after A's: had B seen A's traffic it would be here.
	resB := rpc(c, "Sensor B", 8, "ping", ``, wait)
	bsub.WaitTopic(t, wait, "v1/devices/me/rpc/request/8", 1)
	if err := bsub.Publish(ctx, "v1/devices/me/rpc/response/8", []byte(`"pong"`), 1); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, resB, "rpc result B"); got != `"pong"` {
		t.Errorf("rpc result B %s", got)
	}
	bmu.Lock()
	for _, m := range b {
		if strings.Contains(string(m.Payload), "21") || strings.HasSuffix(m.Topic, "/7") {
			t.Errorf("device B received A's message %s %s", m.Topic, m.Payload)
		}
	}
	bmu.Unlock()
	for _, m := range a.messages() {
		if strings.Contains(m, "99") || strings.Contains(m, "/8 ") {
			t.Errorf("device A received B's message %s", m)
		}
	}

	// Attribute request: served through the runtime's attribute request.
	rec.SetAttributes(map[string]json.RawMessage{"setpoint": json.RawMessage(`21`), "fw": json.RawMessage(`"1.0"`)})
	if tok := a.c.Publish("v1/devices/me/attributes/request/3", 1, false, `{"clientKeys":"fw","sharedKeys":"setpoint"}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	a.waitMessage(t, `v1/devices/me/attributes/response/3 {"client":{"fw":"1.0"},"shared":{"setpoint":21}}`)
	if got := rec.AttrRequests(); fmt.Sprint(got) != "[Sensor A client=true [fw] Sensor A client=false [setpoint]]" {
		t.Errorf("attribute requests %q", got)
	}

	// Client-side RPC.
	if tok := a.c.Publish("v1/devices/me/rpc/request/1", 1, false, `{"method":"getCurrentTime","params":{}}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	testpeer.Eventually(t, wait, "client-side rpc answer", func() error {
		for _, m := range a.messages() {
			if strings.HasPrefix(m, "v1/devices/me/rpc/response/1 ") {
				return nil
			}
		}
		return fmt.Errorf("got %q", a.messages())
	})
}

// TestMQTT5TelemetryAndQueuedRPC: an MQTT 5 device's telemetry is pushed,
// and an RPC and an attribute update sent while the device was not
// subscribed wait for its subscription.
func TestMQTT5TelemetryAndQueuedRPC(t *testing.T) {
	c, rec := startAPI(t, nil)
	res := rpc(c, "PLC C", 11, "reset", `{}`, 2*wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Commander("PLC C", "").UpdateAttributes(ctx, map[string]json.RawMessage{"speed": json.RawMessage(`5`)}); err != nil {
		t.Fatal(err)
	}
	dev := testpeer.SubscribeWith(t, c.Addr("mqtt"), testpeer.SubscriberOptions{ClientID: "plc-c", Username: "cu", Password: "cp"},
		"v1/devices/me/rpc/request/+", "v1/devices/me/attributes")
	dev.WaitTopic(t, wait, "v1/devices/me/rpc/request/11", 1)
	if got := dev.WaitTopic(t, wait, "v1/devices/me/attributes", 1); string(got[0].Payload) != `{"speed":5}` {
		t.Errorf("queued attribute update %s", got[0].Payload)
	}
	if err := dev.Publish(ctx, "v1/devices/me/rpc/response/11", []byte(`{"done":1}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, res, "queued rpc"); got != `{"done":1}` {
		t.Errorf("rpc result %s", got)
	}
	if err := dev.Publish(ctx, "v1/devices/me/telemetry", []byte(`{"pressure":3.5}`), 1); err != nil {
		t.Fatal(err)
	}
	waitValues(t, rec, "PLC C", "pressure", "3.5")
	for _, p := range rec.DataPushes() {
		if p.Profile != "plc" {
			t.Errorf("profile %q", p.Profile)
		}
	}
}
