package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// patchMain edits a tb_gateway.json written by writeConfig.
func patchMain(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// withHTTP turns the observability endpoint on, on a free loopback port.
func withHTTP(extra map[string]any) func(map[string]any) {
	return func(m map[string]any) {
		h := map[string]any{"enabled": true, "address": "127.0.0.1:0"}
		for k, v := range extra {
			h[k] = v
		}
		m["http"] = h
	}
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, gw *actors.Gateway) scrape {
	t.Helper()
	code, body := httpGet(t, "http://"+gw.HTTPAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// sum adds every series of name whose labels include want (a histogram
// counts its samples).
func (s scrape) sum(name string, want map[string]string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total
}

func (s scrape) has(name string) bool { return s[name] != nil }

// TestMetricsEndToEnd scrapes /metrics while the Modbus simulator feeds the
// gateway and mosquitto takes the data, and checks that the figures agree
// with each other and with what the platform received.
func TestMetricsEndToEnd(t *testing.T) {
	const devices, registers = 3, 5
	m := testpeer.StartMosquitto(t)
	s := startSim(t, devices, registers)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry", "v1/gateway/connect")
	// Three good devices, one asking for registers the simulator lacks
	// (exception) and one on a closed port (I/O error).
	var f struct {
		Master struct {
			Slaves []map[string]any `json:"slaves"`
		} `json:"master"`
	}
	if err := json.Unmarshal(sim.GatewayConfig(s.Addr(), devices, registers, 100*time.Millisecond), &f); err != nil {
		t.Fatal(err)
	}
	bad := func(name string, port any, address int) map[string]any {
		d := map[string]any{}
		for k, v := range f.Master.Slaves[0] {
			d[k] = v
		}
		d["deviceName"], d["port"], d["unitId"] = name, port, 1
		d["timeseries"] = []map[string]any{{"tag": "x", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": address}}
		return d
	}
	f.Master.Slaves = append(f.Master.Slaves, bad("out-of-range", f.Master.Slaves[0]["port"], 60000), bad("unplugged", testpeer.FreePort(t), 0))
	conn, _ := json.Marshal(f)
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": conn})
	patchMain(t, path, withHTTP(nil))
	gw := startGateway(t, path, nil)
	if !strings.HasPrefix(gw.HTTPAddr(), "127.0.0.1:") {
		t.Fatalf("http endpoint on %q", gw.HTTPAddr())
	}

	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return len(got) >= 10*devices
	})
	var sc scrape
	testpeer.Eventually(t, 30*time.Second, "the poll errors to be counted", func() error {
		sc = scrapeMetrics(t, gw)
		switch {
		case sc.sum("iotgw_device_poll_errors_total", map[string]string{"device": "out-of-range", "kind": "exception"}) < 1:
			return fmt.Errorf("no exception counted yet")
		case sc.sum("iotgw_device_poll_errors_total", map[string]string{"device": "unplugged", "kind": "io"}) < 1:
			return fmt.Errorf("no i/o error counted yet")
		case sc.sum("iotgw_uplink_puback_latency_seconds", nil) < 1 || sc.sum("iotgw_journal_commit_duration_seconds", nil) < 1:
			return fmt.Errorf("no latencies yet")
		case sc.sum("iotgw_uplink_values_delivered_total", nil) <= 2*float64(len(testpeer.OnTopic(sub.Messages(), "v1/gateway/connect"))):
			// The subscriber can see telemetry before the gateway has
			// handled its PUBACKs: wait for the delivery to be counted.
			return fmt.Errorf("no telemetry PUBACK counted yet")
		}
		return nil
	})

	// The journal's figures come from one snapshot: they add up exactly.
	app, acked := sc.sum("iotgw_journal_appended_total", nil), sc.sum("iotgw_journal_acked_total", nil)
	dropped, depth := sc.sum("iotgw_journal_dropped_total", nil), sc.sum("iotgw_journal_depth_events", nil)
	if app <= 0 || app-acked-dropped != depth {
		t.Errorf("journal: appended %v - acked %v - dropped %v != depth %v", app, acked, dropped, depth)
	}
	// Every delivered value was polled: polls >= delivered / values per poll.
	// One scrape is no snapshot across metric families (a poll can be read,
	// delivered and counted between two of them), so the polls are read from
	// a scrape taken after the one the deliveries come from.
	later := scrapeMetrics(t, gw)
	good := map[string]string{"connector": "modbus"}
	polls, values := 0.0, 0.0
	for i := 1; i <= devices; i++ {
		dev := map[string]string{"device": fmt.Sprintf("sim-dev-%d", i)}
		polls += later.sum("iotgw_device_polls_total", dev)
		values += later.sum("iotgw_device_values_total", dev)
		if last := sc.sum("iotgw_device_last_success_timestamp_seconds", dev); time.Since(time.Unix(int64(last), 0)) > time.Minute {
			t.Errorf("%v: last success %v", dev, last)
		}
		if e := sc.sum("iotgw_device_poll_errors_total", dev); e != 0 {
			t.Errorf("%v: %v poll errors", dev, e)
		}
	}
	// Each connect also delivers the connectorType/connectorName attributes.
	details := 2 * float64(len(testpeer.OnTopic(sub.Messages(), "v1/gateway/connect")))
	delivered := sc.sum("iotgw_uplink_values_delivered_total", nil) - details
	if delivered <= 0 || polls < delivered/registers || values < delivered {
		t.Errorf("polls %v, values read %v, values delivered %v besides %v connector details (%d per poll)", polls, values, delivered, details, registers)
	}
	if got := later.sum("iotgw_device_polls_total", good); got < polls {
		t.Errorf("connector total %v < sum of devices %v", got, polls)
	}
	// What the platform got was delivered (PUBACKed) first.
	got, _ := telemetry(sub.Messages())
	received := 0
	for _, vals := range got {
		received += len(vals)
	}
	// (The broker may forward a message before the gateway has seen its PUBACK.)
	testpeer.Eventually(t, 10*time.Second, "the delivered values to be counted", func() error {
		if after := scrapeMetrics(t, gw).sum("iotgw_uplink_values_delivered_total", nil); float64(received) > after {
			return fmt.Errorf("platform received %d values, gateway counts %v delivered", received, after)
		}
		return nil
	})
	// Actor metrics carry connector and device labels; mailboxes are ours.
	devActor := map[string]string{"kind": "device", "connector": "modbus", "device": "sim-dev-1"}
	if sc.sum("iotgw_actor_messages_total", map[string]string{"device": "sim-dev-1", "type": "actors.pollTick"}) < 5 ||
		sc.sum("iotgw_actor_message_duration_seconds", devActor) < 1 ||
		!sc.has("iotgw_actor_mailbox_depth") || sc.sum("iotgw_actor_messages_total", map[string]string{"kind": "journal"}) < 1 {
		t.Errorf("actor metrics missing: messages %v", sc.sum("iotgw_actor_messages_total", devActor))
	}
	for _, name := range []string{"iotgw_uplink_connected", "iotgw_uplink_session_max_payload_bytes", "iotgw_journal_oldest_age_seconds",
		"iotgw_journal_disk_bytes", "iotgw_uplink_bytes_sent_total", "iotgw_uplink_inflight_messages", "go_goroutines",
		"process_resident_memory_bytes", "iotgw_build_info", "iotgw_actor_restarts_total", "iotgw_actor_unhealthy"} {
		if !sc.has(name) {
			t.Errorf("%s is not exported", name)
		}
	}
	if sc.sum("iotgw_uplink_connected", nil) != 1 {
		t.Error("uplink not reported connected")
	}
}

// TestPanickingDeviceMetrics: a device that panics every 5th poll shows up
// in its restart counter, its siblings do not, and the panic's log line
// carries the connector and device fields.
func TestPanickingDeviceMetrics(t *testing.T) {
	freshChaos("panicky", "steady-1")
	b := testpeer.StartMochi(t)
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{
		"chaos": []byte(`{"devices": ["panicky", "steady-1"]}`)})
	patchMain(t, path, withHTTP(nil))
	logs := &lineBuffer{}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	gw := startGatewayWith(t, actors.Options{Config: cfg, Logger: zerolog.New(logs).Level(zerolog.WarnLevel)})
	panicky := map[string]string{"kind": "device", "connector": "chaos", "device": "panicky"}
	testpeer.Eventually(t, 30*time.Second, "the panicking actor's restarts", func() error {
		sc := scrapeMetrics(t, gw)
		if r := sc.sum("iotgw_actor_restarts_total", panicky); r < 2 {
			return fmt.Errorf("%v restarts so far", r)
		}
		if r := sc.sum("iotgw_restarts_total", nil); r < 2 {
			return fmt.Errorf("gateway restart counter %v", r)
		}
		return nil
	})
	sc := scrapeMetrics(t, gw)
	if r := sc.sum("iotgw_actor_restarts_total", map[string]string{"device": "steady-1"}); r != 0 {
		t.Errorf("steady device restarted %v times", r)
	}
	found := false
	for _, l := range logs.lines() {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) != nil {
			continue
		}
		if line["message"] == "actor panic" || line["message"] == "actor failed" {
			found = true
			if line["connector"] != "chaos" || line["device"] != "panicky" {
				t.Errorf("log line without connector/device fields: %s", l)
			}
		}
	}
	if !found {
		t.Error("no panic logged")
	}
}

// lineBuffer collects log lines safely across goroutines.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// TestReadyzFollowsBroker: /readyz is 200 while the uplink is connected and
// the journal open, 503 naming the uplink while the broker is down, and 200
// again when it is back; /healthz stays 200 throughout.
func TestReadyzFollowsBroker(t *testing.T) {
	freshChaos("ready-1")
	m := testpeer.StartMosquitto(t)
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"chaos": []byte(`{"devices": ["ready-1"]}`)})
	patchMain(t, path, withHTTP(nil))
	gw := startGateway(t, path, nil)
	base := "http://" + gw.HTTPAddr()
	readyz := func() (int, map[string]any) {
		code, body := httpGet(t, base+"/readyz")
		var r map[string]any
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return code, r
	}
	waitCode := func(want int) map[string]any {
		var r map[string]any
		testpeer.Eventually(t, 30*time.Second, "the /readyz status", func() error {
			var code int
			code, r = readyz()
			if code != want {
				return fmt.Errorf("/readyz %d %v, want %d", code, r, want)
			}
			return nil
		})
		return r
	}
	waitCode(200)
	m.Stop()
	r := waitCode(503)
	if fmt.Sprint(r["not_ready"]) != "[uplink]" {
		t.Errorf("not ready: %v, want only the uplink", r)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d while the broker is down", code)
	}
	if sc := scrapeMetrics(t, gw); sc.sum("iotgw_uplink_connected", nil) != 0 {
		t.Error("uplink reported connected while the broker is down")
	}
	m.Restart()
	waitCode(200)
}

// TestRemoteLogging: after RemoteLoggingLevel arrives on
// v1/devices/me/attributes, lines at that level and above arrive on
// v1/devices/me/telemetry as *_LOGS, lines below it do not; a connector's
// lines arrive under its name when it has enableRemoteLogging; NONE stops it.
func TestRemoteLogging(t *testing.T) {
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/devices/me/telemetry")
	requests := testpeer.Subscribe(t, b.Addr(), "v1/devices/me/attributes/request/+")
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{
		"modbus": []byte(fmt.Sprintf(`{"master": {"slaves": [{"type": "tcp", "host": "127.0.0.1", "port": %d, "unitId": 1,
		  "deviceName": "nowhere", "timeout": 1, "pollPeriod": 200, "retryDelay": 100,
		  "timeseries": [{"tag": "r0", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 0}]}]}}`, testpeer.FreePort(t)))})
	patchMain(t, path, func(m map[string]any) {
		list := m["connectors"].([]any)
		list[0].(map[string]any)["enableRemoteLogging"] = true
	})
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	remote := observe.NewRemoteLog(observe.RemoteLogOptions{})
	log := observe.NewLogger(zerolog.NewTestWriter(t), zerolog.ErrorLevel, remote)
	startGatewayWith(t, actors.Options{Config: cfg, Logger: log, RemoteLog: remote})
	setLevel := func(level string) {
		t.Helper()
		sub.Reset()
		// Sent until applied: the first ones may precede the gateway's subscription.
		// Each check looks at what the previous publish did.
		testpeer.Waiter{Timeout: 20 * time.Second, Poll: 100 * time.Millisecond}.Until(t, "the remote logging level to be applied", func() error {
			if err := b.Publish("v1/devices/me/attributes", []byte(`{"RemoteLoggingLevel":"`+level+`"}`), 1); err != nil {
				t.Fatal(err)
			}
			got, on := remote.Level()
			want, wantOn, _ := observe.ParseRemoteLevel(level)
			if got != want || on != wantOn {
				return fmt.Errorf("remote level %v %v", got, on)
			}
			return nil
		})
	}
	// logs returns every log line that reached the platform so far, by key.
	logs := func() map[string][]string {
		out := map[string][]string{}
		for _, m := range sub.Messages() {
			var recs []struct {
				Values map[string]json.RawMessage `json:"values"`
			}
			if json.Unmarshal(m.Payload, &recs) != nil {
				continue // error counters or statistics: an object, not an array
			}
			for _, r := range recs {
				for k, v := range r.Values {
					var s string
					if json.Unmarshal(v, &s) == nil {
						out[k] = append(out[k], s)
					}
				}
			}
		}
		return out
	}
	arrived := func(key, text string) bool {
		for _, l := range logs()[key] {
			if strings.Contains(l, text) {
				return true
			}
		}
		return false
	}

	// On connect the gateway asks for RemoteLoggingLevel; the answer sets it.
	var reqTopic string
	requests.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if strings.Contains(string(m.Payload), `"sharedKeys":"RemoteLoggingLevel"`) {
				reqTopic = m.Topic
				return true
			}
		}
		return false
	})
	resp := strings.Replace(reqTopic, "/request/", "/response/", 1)
	if err := b.Publish(resp, []byte(`{"shared":{"RemoteLoggingLevel":"ERROR"}}`), 1); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 20*time.Second, "the level from the attribute response", func() error {
		if l, on := remote.Level(); !on || l != zerolog.ErrorLevel {
			return fmt.Errorf("level from the attribute response not applied: %v %v", l, on)
		}
		return nil
	})

	setLevel("WARNING")
	log.Info().Msg("marker info-1")
	log.Warn().Msg("marker warn-1")
	log.Error().Msg("marker error-1")
	// As a connector's logger writes them: under the connector's name when
	// it has enableRemoteLogging, not at all otherwise.
	log.Warn().Str("connector", "modbus").Str("device", "nowhere").Msg("marker connector-1")
	log.Warn().Str("connector", "other").Msg("marker quiet-connector-1")
	log.Info().Msg("marker info-last")
	log.Error().Msg("marker error-last")
	sub.WaitFor(t, 20*time.Second, func([]testpeer.Msg) bool {
		return arrived("SERVICE_LOGS", "marker warn-1") && arrived("SERVICE_LOGS", "marker error-1") &&
			arrived("modbus_LOGS", "marker connector-1") && arrived("SERVICE_LOGS", "marker error-last")
	})
	// Lines are sent in order: what was skipped would have arrived by now.
	if arrived("LOGS", "marker info-1") || arrived("LOGS", "marker info-last") {
		t.Error("an INFO line arrived with RemoteLoggingLevel WARNING")
	}
	if arrived("LOGS", "marker quiet-connector-1") {
		t.Error("a line of a connector without enableRemoteLogging arrived")
	}
	for _, l := range logs()["SERVICE_LOGS"] {
		if strings.Contains(l, "|INFO|") || strings.Contains(l, "|DEBUG|") {
			t.Errorf("below the level: %s", l)
		}
	}
	if !arrived("modbus_LOGS", "|WARNING| - [modbus/nowhere] - marker connector-1") {
		t.Errorf("connector line: %q", logs()["modbus_LOGS"])
	}

	setLevel("DEBUG") // below the local level (error): still sent
	log.Debug().Msg("marker debug-2")
	sub.WaitFor(t, 20*time.Second, func([]testpeer.Msg) bool { return arrived("SERVICE_LOGS", "|DEBUG| - [gateway] - marker debug-2") })

	setLevel("NONE")
	log.Error().Msg("marker error-3")
	log.Warn().Msg("marker warn-3")
	// The error counters still move: wait for them, then check no line came.
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			var c struct {
				Values map[string]float64 `json:"values"`
			}
			if json.Unmarshal(m.Payload, &c) == nil && c.Values["ALL_ERRORS_COUNT"] >= 1 {
				return true
			}
		}
		return false
	})
	if arrived("LOGS", "marker error-3") || arrived("LOGS", "marker warn-3") {
		t.Error("lines arrived after RemoteLoggingLevel NONE")
	}
}

// TestHTTPDefaults: enabled without an address, the endpoint binds loopback
// only; pprof is off unless enabled; without the section there is no
// listener and no metrics at all.
func TestHTTPDefaults(t *testing.T) {
	freshChaos("http-1")
	b := testpeer.StartMochi(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, b.Addr(), `{"type": "memory"}`, map[string][]byte{"chaos": []byte(`{"devices": ["http-1"]}`)})

	off := startGateway(t, path, nil)
	if off.HTTPAddr() != "" || off.Metrics() != nil {
		t.Errorf("http is on without configuration: %q", off.HTTPAddr())
	}
	ctx, cancel := contextTimeout(5 * time.Second)
	_ = off.Stop(ctx)
	cancel()

	patchMain(t, path, func(m map[string]any) { m["http"] = map[string]any{"enabled": true} })
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(cfg.HTTP.Address)
	if host != "127.0.0.1" || cfg.HTTP.Pprof {
		t.Fatalf("defaults: %+v", cfg.HTTP)
	}
	// Keep the default host, take a free port instead of 9100.
	cfg.HTTP.Address = net.JoinHostPort(host, "0")
	gw, err := actors.Start(actors.Options{Config: cfg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	bound, _, _ := net.SplitHostPort(gw.HTTPAddr())
	if bound != "127.0.0.1" {
		t.Errorf("bound to %s", gw.HTTPAddr())
	}
	if code, _ := httpGet(t, "http://"+gw.HTTPAddr()+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof served (%d) without being enabled", code)
	}
	ctx, cancel = contextTimeout(5 * time.Second)
	_ = gw.Stop(ctx)
	cancel()
	if _, err := net.DialTimeout("tcp", gw.HTTPAddr(), time.Second); err == nil {
		t.Error("the endpoint still listens after Stop")
	}

	patchMain(t, path, withHTTP(map[string]any{"pprof": true}))
	on := startGateway(t, path, nil)
	if code, body := httpGet(t, "http://"+on.HTTPAddr()+"/debug/pprof/"); code != 200 || !bytes.Contains(body, []byte("goroutine")) {
		t.Errorf("pprof enabled: %d", code)
	}
}
