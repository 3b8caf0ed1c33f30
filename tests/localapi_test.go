package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// withLocalAPI adds a localApi section to the main file at path: MQTT and
// HTTP on the given loopback ports, device "Sensor A" (MQTT, token A) and
// "Sensor B" (HTTP, token B); with a CoAP port also "Sensor C" (token C).
func withLocalAPI(t *testing.T, path string, mqttPort, httpPort int, coapPort ...int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var main map[string]any
	if err := json.Unmarshal(raw, &main); err != nil {
		t.Fatal(err)
	}
	main["localApi"] = map[string]any{
		"mqtt": map[string]any{"enabled": true, "address": fmt.Sprintf("127.0.0.1:%d", mqttPort)},
		"http": map[string]any{"enabled": true, "address": fmt.Sprintf("127.0.0.1:%d", httpPort)},
		"devices": []any{
			map[string]any{"name": "Sensor A", "profile": "esp32", "accessToken": "TOKEN_A"},
			map[string]any{"name": "Sensor B", "profile": "http-sensor", "accessToken": "TOKEN_B"},
		},
	}
	if len(coapPort) > 0 {
		la := main["localApi"].(map[string]any)
		la["coap"] = map[string]any{"enabled": true, "address": fmt.Sprintf("127.0.0.1:%d", coapPort[0])}
		la["devices"] = append(la["devices"].([]any), map[string]any{"name": "Sensor C", "profile": "coap-sensor", "accessToken": "TOKEN_C"})
	}
	raw, _ = json.MarshalIndent(main, "", "  ")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func nextLine(t *testing.T, lines <-chan string, what string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("%s: the client ended", what)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing within 30 s", what)
		return ""
	}
}

func platformHas(msgs []testpeer.Msg, topic, want string) bool {
	for _, m := range testpeer.OnTopic(msgs, topic) {
		if string(m.Payload) == want {
			return true
		}
	}
	return false
}

// TestLocalAPIEndToEnd: mosquitto as the platform, the gateway in process,
// mosquitto_pub/mosquitto_sub as an MQTT device, curl as an HTTP device
// that also posts with libcoap's coap-client. Their values arrive under the devices' names (connected with
// their profiles); a shared-attribute update and an RPC from the platform
// reach each device and the replies return; an attribute read is asked of
// the platform and answered; a wrong token is refused; a
// device cannot subscribe outside its own topics.
func TestLocalAPIEndToEnd(t *testing.T) {
	pub := testpeer.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	sub := testpeer.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	curl := testpeer.NeedProgram(t, "curl", "curl")
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	mqttPort, httpPort, coapPort := testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreeUDPPort(t)
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, nil)
	withLocalAPI(t, path, mqttPort, httpPort, coapPort)
	startGateway(t, path, nil)
	port := strconv.Itoa(mqttPort)
	base := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", httpPort)

	// The MQTT device listens for its attributes and RPCs (mosquitto_sub -v
	// prints "topic payload"); it connects once the listener is up.
	var lines <-chan string
	testpeer.Eventually(t, 20*time.Second, "the local MQTT listener", func() error {
		return exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-u", "TOKEN_A",
			"-t", "v1/devices/me/telemetry", "-m", `{"temperature":21.5}`).Run()
	})
	lines = testpeer.Lines(t, exec.Command(sub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-u", "TOKEN_A", "-V", "mqttv311", "-v",
		"-t", "v1/devices/me/attributes", "-t", "v1/devices/me/rpc/request/+"))
	out, err := exec.Command(curl, "-sS", "-w", "%{http_code}", "-X", "POST", "-d", `{"humidity":40}`, base+"TOKEN_B/telemetry").Output()
	if err != nil || string(out) != "200" {
		t.Fatalf("curl telemetry: %v %s", err, out)
	}

	// The HTTP device also speaks CoAP (same token): a confirmable POST.
	coap := coapClientBin(t)
	if out, err := exec.Command(coap, "-B", "10", "-m", "post", "-e", `{"pressure":1.5}`,
		fmt.Sprintf("coap://127.0.0.1:%d/api/v1/TOKEN_B/telemetry", coapPort)).CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("coap telemetry: %v %s", err, out)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		var a, b, c bool
		for p, vs := range got {
			a = a || p.Device == "Sensor A" && string(vs["temperature"]) == "21.5"
			b = b || p.Device == "Sensor B" && string(vs["humidity"]) == "40"
			c = c || p.Device == "Sensor B" && string(vs["pressure"]) == "1.5"
		}
		return a && b && c
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return platformHas(msgs, "v1/gateway/connect", `{"device":"Sensor A","type":"esp32"}`) &&
			platformHas(msgs, "v1/gateway/connect", `{"device":"Sensor B","type":"http-sensor"}`)
	})

	// Wrong token: refused as not authorised, and by HTTP with 401.
	if out, err := exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-u", "WRONG",
		"-t", "v1/devices/me/telemetry", "-m", `{"x":1}`).CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
		t.Errorf("wrong token: %v %s", err, out)
	}
	if out, _ := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", `{"x":1}`, base+"WRONG/telemetry").Output(); string(out) != "401" {
		t.Errorf("http wrong token: %s", out)
	}
	// Another device's topics: subscribing outside v1/devices/me/ is refused.
	if out, _ := exec.Command(sub, "-h", "127.0.0.1", "-p", port, "-u", "TOKEN_B", "-V", "mqttv5", "-t", "#", "-C", "1", "-W", "5").CombinedOutput(); !strings.Contains(string(out), "denied") {
		t.Errorf("subscription to # by device B not denied: %s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait for the device's subscription through a retained-free probe: the
	// platform's update is re-sent until the device prints it.
	testpeer.Eventually(t, 20*time.Second, "the attribute update to reach the MQTT device", func() error {
		if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"Sensor A","data":{"setpoint":23}}`), 1); err != nil {
			return err
		}
		select {
		case l := <-lines:
			if l != `v1/devices/me/attributes {"setpoint":23}` {
				return fmt.Errorf("device got %q", l)
			}
			return nil
		case <-time.After(time.Second):
			return errors.New("not yet")
		}
	})
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"Sensor A","data":{"id":5,"method":"setValve","params":{"open":true}}}`), 1); err != nil {
		t.Fatal(err)
	}
	var got string
	for got = nextLine(t, lines, "rpc"); strings.HasPrefix(got, "v1/devices/me/attributes "); got = nextLine(t, lines, "rpc") {
	}
	if got != `v1/devices/me/rpc/request/5 {"method":"setValve","params":{"open":true}}` {
		t.Fatalf("device got %q", got)
	}
	// The reply goes on the same connection's topic space; any session of
	// the device may answer.
	if out, err := exec.Command(pub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-u", "TOKEN_A",
		"-t", "v1/devices/me/rpc/response/5", "-m", `{"open":true}`).CombinedOutput(); err != nil {
		t.Fatalf("rpc reply: %v %s", err, out)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return platformHas(msgs, "v1/gateway/rpc", `{"device":"Sensor A","id":5,"data":{"open":true}}`)
	})

	// HTTP device: long poll, then the platform's RPC, then the reply.
	poll := make(chan string, 1)
	go func() {
		out, _ := exec.Command(curl, "-sS", base+"TOKEN_B/rpc?timeout=30000").Output()
		poll <- string(out)
	}()
	// Before or after the poll started: an RPC waits for the next poll.
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"Sensor B","data":{"id":9,"method":"blink","params":{"n":3}}}`), 1); err != nil {
		t.Fatal(err)
	}
	var req string
	select {
	case req = <-poll:
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll got nothing")
	}
	if req != `{"id":9,"method":"blink","params":{"n":3}}` {
		t.Fatalf("long poll got %q", req)
	}
	if out, err := exec.Command(curl, "-sS", "-w", "%{http_code}", "-X", "POST", "-d", `{"blinked":3}`, base+"TOKEN_B/rpc/9").Output(); err != nil || string(out) != "200" {
		t.Fatalf("rpc reply: %v %s", err, out)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		return platformHas(msgs, "v1/gateway/rpc", `{"device":"Sensor B","id":9,"data":{"blinked":3}}`)
	})

	// Attribute read: the gateway asks the platform and answers the device.
	read := make(chan string, 1)
	go func() {
		out, _ := exec.Command(curl, "-sS", base+"TOKEN_B/attributes?sharedKeys=mode").Output()
		read <- string(out)
	}()
	var id int64
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/attributes/request") {
			var r struct {
				ID     int64    `json:"id"`
				Device string   `json:"device"`
				Client bool     `json:"client"`
				Keys   []string `json:"keys"`
			}
			if json.Unmarshal(m.Payload, &r) == nil && r.Device == "Sensor B" && !r.Client && fmt.Sprint(r.Keys) == "[mode]" {
				id = r.ID
				return true
			}
		}
		return false
	})
	if err := plat.Publish(ctx, "v1/gateway/attributes/response", []byte(fmt.Sprintf(`{"id":%d,"device":"Sensor B","value":"eco"}`, id)), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-read:
		if got != `{"shared":{"mode":"eco"}}` {
			t.Errorf("attribute read got %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("attribute read: no answer")
	}
}

// TestLocalAPIOutage is the outage test through the built binary
// with the Badger journal: devices over MQTT (mosquitto_pub, QoS 1), HTTP
// (net/http) and CoAP (libcoap's coap-client, confirmable) send numbered
// values the whole time; the platform (mosquitto) is stopped for 30 s, and
// during that outage the gateway is SIGKILLed and started again. Every
// value a device got an ack for (PUBACK, 200, an ACK with 2.xx) is in the
// journal after the kill (if the platform had not taken it yet) and
// arrives at the platform once it returns.
func TestLocalAPIOutage(t *testing.T) {
	pub := testpeer.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	coap := coapClientBin(t)
	m := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry")
	dir := t.TempDir()
	mqttPort, httpPort, coapPort := testpeer.FreePort(t), testpeer.FreePort(t), testpeer.FreeUDPPort(t)
	cfg := writeConfig(t, dir, m.Addr(), `{"type": "file", "data_folder_path": "journal", "max_file_count": 100, "max_records_per_file": 10000}`, nil)
	withLocalAPI(t, cfg, mqttPort, httpPort, coapPort)
	gw := startBinary(t, cfg)

	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	acks := &ackLog{at: map[point]time.Time{}}
	port := strconv.Itoa(mqttPort)
	httpURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/TOKEN_B/telemetry", httpPort)
	coapURL := fmt.Sprintf("coap://127.0.0.1:%d/api/v1/TOKEN_C/telemetry", coapPort)
	hc := &http.Client{Timeout: 5 * time.Second}
	devices := map[string]func(ctx context.Context, body string) bool{
		// mosquitto_pub -q 1 exits 0 only after the PUBACK.
		"Sensor A": func(ctx context.Context, body string) bool {
			return exec.CommandContext(ctx, pub, "-h", "127.0.0.1", "-p", port, "-q", "1", "-u", "TOKEN_A",
				"-t", "v1/devices/me/telemetry", "-m", body).Run() == nil
		},
		"Sensor B": func(ctx context.Context, body string) bool {
			resp, err := hc.Post(httpURL, "application/json", strings.NewReader(body))
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		},
		// coap-client exits 0 on a timeout too: -v 6 prints the messages,
		// and only a received 2.xx response (the piggybacked ACK) counts.
		"Sensor C": func(ctx context.Context, body string) bool {
			out, _ := exec.CommandContext(ctx, coap, "-v", "6", "-B", "3", "-m", "post", "-e", body, coapURL).CombinedOutput()
			return coapSuccess.Match(out)
		},
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, send := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 20 values a second each: enough to cover every phase,
			// little enough for a shared machine.
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				ts := ts0 + int64(n)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ok := send(sctx, fmt.Sprintf(`{"ts":%d,"values":{"n":%d}}`, ts, n))
				cancel()
				if ok {
					acks.add(point{name, ts})
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	names := []string{"Sensor A", "Sensor B", "Sensor C"}
	each := func(since time.Time, n int) func() error {
		return func() error {
			for _, name := range names {
				if got := acks.since(name, since); got < n {
					return fmt.Errorf("%s: %d acks", name, got)
				}
			}
			return nil
		}
	}

	// Platform up: values of every device arrive.
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		seen := map[string]bool{}
		for p := range got {
			seen[p.Device] = true
		}
		return len(seen) == 3
	})
	// The outage: the devices keep being acknowledged (journal only).
	m.Stop()
	down := time.Now()
	testpeer.Eventually(t, 20*time.Second, "acks with the platform down", each(down, 5))
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	killed := acks.snapshot()
	inJournal := journalPoints(t, filepath.Join(dir, "journal"))
	for p, at := range killed {
		if at.After(down) && !inJournal[p] {
			t.Errorf("%v acknowledged during the outage but not in the journal after SIGKILL", p)
		}
	}
	restarted := time.Now()
	startBinary(t, cfg)
	testpeer.Eventually(t, 20*time.Second, "acks from the restarted gateway", each(restarted, 5))
	// The one deliberate duration: the platform stays away 30 s.
	time.Sleep(time.Until(down.Add(30 * time.Second)))
	m.Restart()
	back := time.Now()
	testpeer.Eventually(t, 20*time.Second, "acks after the platform's return", each(back, 3))
	stop()
	wg.Wait()
	acked := acks.snapshot()
	want := map[point]bool{}
	for p := range acked {
		want[p] = true
	}
	plat.WaitFor(t, 60*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		return err == nil && len(missing(want, got)) == 0
	})
	t.Logf("%d acknowledged values (%d during the outage), all delivered after the kill and the platform's return",
		len(acked), acks.between(down, back))
}

// coapSuccess is a 2.xx response in coap-client -v 6 output.
var coapSuccess = regexp.MustCompile(`(?m)^v:1 t:(ACK|CON|NON) c:2\.`)

// coapClientBin finds libcoap's coap-client (Debian's libcoap3-bin installs
// it as coap-client-notls and the TLS variants).
func coapClientBin(t *testing.T) string {
	for _, name := range []string{"coap-client-notls", "coap-client"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return testpeer.NeedProgram(t, "coap-client-notls", "libcoap3-bin")
}

// ackLog records when each value was acknowledged to its device.
type ackLog struct {
	mu sync.Mutex
	at map[point]time.Time
}

func (a *ackLog) add(p point) {
	a.mu.Lock()
	a.at[p] = time.Now()
	a.mu.Unlock()
}

func (a *ackLog) since(device string, t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for p, at := range a.at {
		if p.Device == device && !at.Before(t) {
			n++
		}
	}
	return n
}

func (a *ackLog) between(from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, at := range a.at {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}

func (a *ackLog) snapshot() map[point]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[point]time.Time, len(a.at))
	for p, at := range a.at {
		out[p] = at
	}
	return out
}

// toValues shapes a point set like telemetry's result, for missing.
func toValues(ps map[point]bool) map[point]map[string]json.RawMessage {
	out := map[point]map[string]json.RawMessage{}
	for p := range ps {
		out[p] = nil
	}
	return out
}
