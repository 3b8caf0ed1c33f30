// Command bench measures the whole path: Modbus simulators (or publishers on
// an external MQTT broker) → the iotgw binary (Badger journal) → a real
// mosquitto, for a fixed time. It prints values/s delivered, source-to-
// delivery latency, and the gateway's CPU time and peak RSS.
//
//	go run ./tests/bench -profile scale       # 1000 devices × 10 values every 1 s
//	go run ./tests/bench -profile throughput  # as many values/s as the gateway takes
//	go run ./tests/bench -profile idle        # no devices, the platform connected
//	go run ./tests/bench -profile scale -devices 100 -poll 100ms  # the side-by-side row at 10 polls/s per device
//	go run ./tests/bench -profile throughput -metrics  # with /metrics on, scraped every -scrape
//	go run ./tests/bench -profile throughput -account  # served-vs-delivered per device, poll by poll
//	go run ./tests/bench -profile mqtt -rate 60000     # 10-value JSON messages/s on an external broker
//	go run ./tests/bench -profile mqtt -backlog 100000 -paho-patched  # the same drain with the patched paho
//	go run ./tests/bench -profile idle -badger-patched  # badger's compactors wait for work (tests/bench/badgerpatch)
//	go run ./tests/bench -profile scale -automation   # with a task evaluating every value on the bus
//	go run ./tests/bench -profile localapi            # 1000 devices on the local device API, 10 values every 1 s
//	go run ./tests/bench -profile localapi-peak       # 10 local-API connections as fast as acknowledged
//	go run ./tests/bench -profile localapi-http       # 8 keep-alive HTTP clients as fast as answered 200
//	go run ./tests/bench -profile modbus-forward      # 1,000 events/s Modbus → forward → Modbus: latency and CPU
//	go run ./tests/bench -profile scale -devices 100 -cpuprofile cpu.pprof -memprofile mem.pprof
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// metricsOn enables the observability endpoint (and its actor middleware).
var (
	metricsOn   bool
	scrapeEvery time.Duration
	stallsOn    bool // -stalls: the stall probe (tail.go)
)

// scrapeLoop fetches /metrics every scrapeEvery, as a Prometheus server
// would (gzip included), until stop is closed; it reports the scrapes and
// the last body's size.
func scrapeLoop(url string, stop <-chan struct{}, done chan<- scrapeResult) {
	var r scrapeResult
	fetch := func() []byte {
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: scrape %s: %v\n", url, err)
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			fmt.Fprintf(os.Stderr, "bench: scrape %s: status %d: %.300s\n", url, resp.StatusCode, b)
			return nil
		}
		return b
	}
	var tick <-chan time.Time
	if scrapeEvery > 0 {
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-stop:
			// One last scrape for the totals, not counted as a Prometheus one.
			last := fetch()
			if metricsDump != "" && last != nil {
				if err := os.WriteFile(metricsDump, last, 0o644); err != nil {
					fmt.Fprintf(os.Stderr, "bench: -metrics-dump: %v\n", err)
				}
			}
			r.polls, r.skipped = sumSamples(last, "iotgw_device_polls_total"), sumSamples(last, "iotgw_device_polls_skipped_total")
			done <- r
			return
		case <-tick:
		}
		if b := fetch(); b != nil {
			r.n, r.size = r.n+1, len(b)
		}
	}
}

// scrapeResult is what scrapeLoop saw: its scrapes and, at the end, the
// gateway's poll totals.
type scrapeResult struct {
	n, size        int
	polls, skipped float64
}

// sumSamples adds up the samples of one metric in a text exposition.
func sumSamples(body []byte, name string) float64 {
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

type profile struct {
	sims, devicesPerSim, registers int
	poll                           time.Duration
	mqtt                           bool // devices publish to an external broker instead
	localAPI                       bool // devices publish to the gateway's local device API instead
	localHTTP                      bool // ... over HTTP POSTs (keep-alive) instead of MQTT
}

var profiles = map[string]profile{
	"scale":      {sims: 5, devicesPerSim: 200, registers: 10, poll: time.Second},
	"throughput": {sims: 8, devicesPerSim: 25, registers: 100, poll: 20 * time.Millisecond},
	// idle: no devices, the platform connected: what the gateway costs doing nothing.
	"idle":     {registers: 10, poll: time.Second},
	"mqtt":     {devicesPerSim: 100, registers: 10, mqtt: true},
	"localapi": {devicesPerSim: 1000, registers: 10, poll: time.Second, localAPI: true},
	// localapi-peak: 10 device connections publishing as fast as the
	// gateway acknowledges (256 in flight each).
	"localapi-peak": {devicesPerSim: 10, registers: 10, localAPI: true},
	// localapi-http: 8 keep-alive HTTP clients POSTing telemetry, each
	// waiting for its 200 (sent after the journal commit).
	"localapi-http": {devicesPerSim: 8, registers: 10, localAPI: true, localHTTP: true},
}

// automationOn runs a task on every value (-automation).
var automationOn bool

// keepStartupPages sets the gateway's resources.keepStartupPages.
var keepStartupPages bool

// maxProcs sets the gateway's resources.maxProcs.
var maxProcs int

// cpuProfile and memProfile are files the gateway writes its CPU profile
// (from start to stop) and heap profile (at stop, with the allocations
// since start) to; "" for none.
var cpuProfile, memProfile string

// gatewayEnv is extra NAME=value settings for the gateway process alone
// (GOGC, GOMEMLIMIT, GODEBUG=gctrace=1), space separated.
var gatewayEnv string

// metricsDump is a file the last /metrics scrape is written to; "" for none.
var metricsDump string

// benchProfile is a file for the bench process's own CPU profile over the
// measurement window (simulators, publishers, subscriber); "" for none.
var benchProfile string

// mqttRate is the mqtt profile's offered load in messages/s; with
// mqttBacklog > 0 the profile instead measures how fast the gateway drains
// that many messages queued for it on the device broker.
var mqttRate, mqttBacklog int

// withDevices spreads n devices over simulators of at most 200 unit ids each,
// the size the scale profile uses, so only the device count changes.
func (p profile) withDevices(n int) profile {
	per := p.devicesPerSim
	p.sims = (n + per - 1) / per
	p.devicesPerSim = (n + p.sims - 1) / p.sims
	return p
}

// profileNames is what -profile takes.
const profileNames = "scale, throughput, idle, mqtt, localapi, localapi-peak, localapi-http, modbus-forward or all"

func main() {
	if os.Getenv(stallEnv) != "" {
		runStallProbe()
		return
	}
	name := flag.String("profile", "all", profileNames)
	duration := flag.Duration("duration", 60*time.Second, "measurement time per profile")
	storage := flag.String("storage", "file", "gateway storage type: file (Badger) or memory")
	flag.BoolVar(&metricsOn, "metrics", false, "enable the gateway's http endpoint (metrics and their middleware)")
	flag.DurationVar(&scrapeEvery, "scrape", 15*time.Second, "with -metrics: scrape /metrics this often, as Prometheus would (0: never)")
	flag.BoolVar(&automationOn, "automation", false, "also run automation.yaml: one task on device/# that evaluates a condition for every value (the bus and task cost)")
	flag.IntVar(&mqttRate, "rate", 60000, "mqtt profile: offered 10-value JSON messages per second")
	flag.IntVar(&mqttBacklog, "backlog", 0, "mqtt profile: instead of -rate, queue this many messages for the gateway's offline session, then time the drain (no publisher competes for the CPU)")
	flag.IntVar(&fwdRepeat, "repeat", 1, "modbus-forward profile: rounds of its three runs, interleaved")
	flag.IntVar(&maxProcs, "max-procs", 0, "run the gateway with resources.maxProcs (0: its load-governed default)")
	flag.BoolVar(&keepStartupPages, "keep-startup-pages", false, "run the gateway with resources.keepStartupPages (RSS as before the start-up pages were released)")
	flag.BoolVar(&stallsOn, "stalls", false, "poll profiles: run a process that sleeps 10 ms at a time and print how late it woke, worst per second, next to the seconds the slowest polls started in")
	flag.BoolVar(&accountOn, "account", false, "poll profiles: number every served read in the simulators and check at the end, per device, that each one was delivered or counted as a timeout/I-O poll error (turns the http endpoint on)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write the gateway's CPU profile (whole run, warm-up included) to this file")
	for _, p := range modulePatches {
		flag.BoolVar(&p.on, p.flag, false, fmt.Sprintf("build the gateway with %s patched by %s (benchmark only)", p.module, strings.Join(p.files(), " and ")))
	}
	flag.StringVar(&benchProfile, "benchcpuprofile", "", "write the bench process's own CPU profile (simulators, publishers, subscriber; measurement window only) to this file")
	flag.StringVar(&gatewayEnv, "gateway-env", "", "extra environment for the gateway process only, space separated NAME=value (e.g. \"GOGC=25 GODEBUG=gctrace=1\")")
	flag.StringVar(&metricsDump, "metrics-dump", "", "with -metrics: write the last /metrics scrape (taken at the end of the measurement) to this file")
	flag.StringVar(&memProfile, "memprofile", "", "write the gateway's heap profile (alloc_objects/alloc_space since start) to this file at stop")
	devices := flag.Int("devices", 0, "scale profile: poll this many devices instead of 1000 (the README's 10 / 100 / 1000 device sizing); localapi-http: this many clients instead of 8")
	ports := flag.Int("ports", 0, "scale and throughput profiles: spread the devices over this many simulator ports (one gateway connection each) instead of the profile's 5 or 8")
	poll := flag.Duration("poll", 0, "scale and throughput profiles: poll every device this often instead of the profile's 1 s or 20 ms")
	registers := flag.Int("registers", 0, "scale and throughput profiles: values (registers) per device instead of the profile's 10 or 100")
	flag.Parse()
	names := []string{*name}
	if *name == "all" {
		names = []string{"scale", "throughput"}
	}
	for _, n := range names {
		if n == "modbus-forward" {
			if err := runModbusForward(*duration); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			continue
		}
		p, ok := profiles[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown profile %q (want %s)\n", n, profileNames)
			os.Exit(2)
		}
		if *devices > 0 && n == "scale" {
			p = p.withDevices(*devices)
		}
		if *ports > 0 && !p.mqtt && !p.localAPI {
			// Same devices over more (or fewer) simulator ports: the
			// gateway keeps one Modbus connection per port.
			n := p.sims * p.devicesPerSim
			p.sims = *ports
			p.devicesPerSim = (n + *ports - 1) / *ports
		}
		if *registers > 0 && !p.mqtt && !p.localAPI {
			p.registers = *registers
		}
		if *poll > 0 && !p.mqtt && !p.localAPI {
			p.poll = *poll
		}
		if *devices > 0 && n == "localapi-http" {
			p.devicesPerSim = *devices
		}
		if err := runProfile(n, p, *duration, *storage); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMosquitto(dir string) (*exec.Cmd, int, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, 0, fmt.Errorf("mosquitto not installed (apt-get install mosquitto)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 1000000\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return cmd, port, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, 0, fmt.Errorf("mosquitto did not start on port %d", port)
}

type stats struct {
	mu        sync.Mutex
	values    uint64
	messages  uint64
	latencies []latSample
	counting  bool
	// countOnly (the mqtt drain) counts the bench's "v<digit>" keys instead
	// of parsing the JSON: parsing a million values with encoding/json
	// would take CPU from the gateway on a two-core machine.
	countOnly   bool
	first, last time.Time
	acct        *account // -account: every delivered poll, counting or not
	scratch     []scanned
}

// scanned is one telemetry entry found by scanTelemetry.
type scanned struct {
	dev []byte
	ts  int64
	n   int
	seq []byte
}

func (s *stats) onMessage(payload []byte, now time.Time) {
	if s.countOnly {
		n := uint64(0)
		for i := 0; i+2 < len(payload); i++ {
			if payload[i] == '"' && payload[i+1] == 'v' && payload[i+2] >= '0' && payload[i+2] <= '9' {
				n++
			}
		}
		s.mu.Lock()
		if s.counting && n > 0 {
			if s.values == 0 {
				s.first = now
			}
			s.values += n
			s.messages++
			s.last = now
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seqKey := ""
	if s.acct != nil {
		seqKey = s.acct.seqKey
	}
	// Entries are applied only once the whole payload scanned, so a
	// payload the scanner refuses is counted once, by encoding/json.
	s.scratch = s.scratch[:0]
	if scanTelemetry(payload, seqKey, func(dev []byte, ts int64, n int, seq []byte) {
		s.scratch = append(s.scratch, scanned{dev, ts, n, seq})
	}) {
		for _, e := range s.scratch {
			if s.acct != nil {
				s.acct.entry(e.dev, e.seq, now)
			}
			if s.counting {
				s.values += uint64(e.n)
				at := time.UnixMilli(e.ts)
				s.latencies = append(s.latencies, latSample{at, now.Sub(at)})
			}
		}
		if s.counting && len(s.scratch) > 0 {
			s.messages++
		}
		return
	}
	var body map[string][]struct {
		Ts     int64                      `json:"ts"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if json.Unmarshal(payload, &body) != nil {
		return
	}
	if s.acct != nil {
		for dev, entries := range body {
			for _, e := range entries {
				s.acct.entry([]byte(dev), e.Values[s.acct.seqKey], now)
			}
		}
	}
	if !s.counting {
		return
	}
	s.messages++
	for _, entries := range body {
		for _, e := range entries {
			s.values += uint64(len(e.Values))
			at := time.UnixMilli(e.Ts)
			s.latencies = append(s.latencies, latSample{at, now.Sub(at)})
		}
	}
}

func runProfile(name string, p profile, d time.Duration, storage string) error {
	dir, err := os.MkdirTemp("", "iotgw-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mq, port, err := startMosquitto(dir)
	if err != nil {
		return err
	}
	defer func() { _ = mq.Process.Kill(); _ = mq.Wait() }()

	connector := `{"type": "modbus", "name": "bench", "configuration": "modbus.json"}`
	offered := float64(p.sims*p.devicesPerSim*p.registers) / p.poll.Seconds()
	var load *mqttLoad
	if p.mqtt {
		dq, dport, err := startMosquitto(dir)
		if err != nil {
			return err
		}
		defer func() { _ = dq.Process.Kill(); _ = dq.Wait() }()
		if err := os.WriteFile(filepath.Join(dir, "mqtt.json"), mqttConnectorConfig(dport, p.registers, mqttBacklog > 0), 0o600); err != nil {
			return err
		}
		connector = `{"type": "mqtt", "name": "bench", "configuration": "mqtt.json"}`
		offered = float64(mqttRate * p.registers)
		load = &mqttLoad{port: dport, devices: p.devicesPerSim, values: p.registers, rate: mqttRate, brokerPid: dq.Process.Pid}
	}
	var local *localAPILoad
	localSection := ""
	if p.localAPI {
		lp, err := freePort()
		if err != nil {
			return err
		}
		local = &localAPILoad{port: lp, devices: p.devicesPerSim, values: p.registers, period: p.poll, http: p.localHTTP}
		localSection = `, "localApi": ` + local.section()
		connector = ""
		if p.poll > 0 {
			offered = float64(p.devicesPerSim*p.registers) / p.poll.Seconds()
		}
	}
	var slaves []json.RawMessage
	var sims []*sim.Sim
	accounting := accountOn && !p.mqtt && !p.localAPI
	for i := 0; i < p.sims; i++ {
		s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0", Devices: p.devicesPerSim, Registers: p.registers, Animate: true, Tick: time.Second, Sequence: accounting})
		if err != nil {
			return err
		}
		defer s.Close()
		sims = append(sims, s)
		raw := strings.ReplaceAll(string(sim.GatewayConfig(s.Addr(), p.devicesPerSim, p.registers, p.poll)), "sim-dev-", fmt.Sprintf("sim%d-dev-", i))
		var f struct {
			Master struct {
				Slaves []json.RawMessage `json:"slaves"`
			} `json:"master"`
		}
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			return err
		}
		slaves = append(slaves, f.Master.Slaves...)
	}
	if !p.mqtt && !p.localAPI {
		mb, _ := json.Marshal(map[string]any{"master": map[string]any{"slaves": slaves}})
		if err := os.WriteFile(filepath.Join(dir, "modbus.json"), mb, 0o600); err != nil {
			return err
		}
	}
	st := `{"type": "memory", "max_records_count": 10000000}`
	if storage == "file" {
		st = `{"type": "file", "data_folder_path": "journal", "max_file_count": 1000, "max_records_per_file": 100000}`
	}
	httpSection, metricsURL := "", ""
	if metricsOn || accounting {
		hp, err := freePort()
		if err != nil {
			return err
		}
		// pprof on: a runtime trace of the loaded gateway (/debug/pprof/trace)
		// is how the scheduler and link waits at the peak were read.
		httpSection = fmt.Sprintf(`, "http": {"enabled": true, "pprof": true, "address": "127.0.0.1:%d"}`, hp)
		metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", hp)
	}
	main := fmt.Sprintf(`{"thingsboard": {"host": "127.0.0.1", "port": %d, "security": {"accessToken": "bench"}},
  "storage": %s, "connectors": [%s]%s%s, "resources": {"keepStartupPages": %v, "maxProcs": %d}}`, port, st, connector, httpSection, localSection, keepStartupPages, maxProcs)
	if err := os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o600); err != nil {
		return err
	}
	if automationOn {
		// Never true, so the figure is the bus and the condition alone.
		auto := "queue: {memory: true}\ntasks:\n  - {name: every-value, trigger: {event: \"device/#\"}, condition: value > 1000000, actions: [{handler: platform_message, params: {values: {never: 1}}}]}\n"
		if err := os.WriteFile(filepath.Join(dir, "automation.yaml"), []byte(auto), 0o600); err != nil {
			return err
		}
	}

	bin := filepath.Join(dir, "iotgw")
	var extra []string
	modfile, err := patchedModfile(dir)
	if err != nil {
		return err
	}
	if modfile != "" {
		extra = append(extra, "-modfile", modfile)
	}
	if err := buildGateway(bin, extra...); err != nil {
		return err
	}

	st2 := &stats{}
	subQoS := byte(0)
	if accounting {
		st2.acct = newAccount(p.registers)
		// QoS 1 so the broker never drops a message for a subscriber
		// that falls behind: a loss must be the gateway's.
		subQoS = 1
	}
	u, _ := url.Parse(fmt.Sprintf("mqtt://127.0.0.1:%d", port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			_, _ = cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: "v1/gateway/telemetry", QoS: subQoS}, {Topic: "v1/devices/me/rpc/request/+", QoS: 1}}})
		},
		ClientConfig: paho.ClientConfig{ClientID: "bench-sub", OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if id, ok := strings.CutPrefix(pr.Packet.Topic, "v1/devices/me/rpc/request/"); ok {
					// Answer getSessionLimits as ThingsBoard 3.8+ does, so the
					// gateway neither waits out its timeout for old platforms
					// nor falls back to their 8 KB payloads.
					go func() {
						_, _ = pr.Client.Publish(ctx, &paho.Publish{Topic: "v1/devices/me/rpc/response/" + id, QoS: 1,
							Payload: []byte(`{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{},"gatewayRateLimits":{}}`)})
					}()
					return true, nil
				}
				st2.onMessage(pr.Packet.Payload, time.Now())
				return true, nil
			},
		}},
	})
	if err != nil {
		return err
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		return err
	}

	gw := exec.Command(bin, "run", "-c", filepath.Join(dir, "tb_gateway.json"), "--log-level", "error")
	gw.Stderr = os.Stderr
	gw.Env = append(os.Environ(), strings.Fields(gatewayEnv)...)
	for env, path := range map[string]string{"IOTGW_CPUPROFILE": cpuProfile, "IOTGW_MEMPROFILE": memProfile} {
		if path != "" {
			abs, err := filepath.Abs(path)
			if err != nil {
				return err
			}
			gw.Env = append(gw.Env, env+"="+abs)
		}
	}
	if load != nil && mqttBacklog > 0 {
		st2.countOnly = true
		return drain(ctx, gw, mq.Process.Pid, load, st2, name, storage)
	}
	if err := gw.Start(); err != nil {
		return err
	}
	if local != nil {
		every := "every " + local.period.String()
		if local.period == 0 {
			every = "as fast as acknowledged (offered = acknowledged by the gateway)"
		}
		how := "MQTT 3.1.1, one connection each, QoS 1"
		if local.http {
			how = "HTTP POST, one keep-alive connection each, 200 after the commit"
		}
		fmt.Printf("== %s: %d devices on the local device API (%s) × %d values %s, storage %s, %s, metrics %v\n", name, local.devices, how, local.values, every, storage, d, metricsOn)
		if err := local.start(ctx); err != nil {
			return err
		}
	} else if load != nil {
		fmt.Printf("== %s: %d devices publishing %d messages/s of %d values (QoS 1), storage %s, %s, metrics %v\n", name, p.devicesPerSim, mqttRate, p.registers, storage, d, metricsOn)
		if err := load.start(ctx); err != nil {
			return err
		}
	} else {
		fmt.Printf("== %s: %d devices × %d values every %s, storage %s, %s, metrics %v, automation %v\n", name, p.sims*p.devicesPerSim, p.registers, p.poll, storage, d, metricsOn, automationOn)
	}
	var probe *stallProbe
	if stallsOn {
		var err error
		if probe, err = startStallProbe(); err != nil {
			return err
		}
		defer probe.end()
	}
	// Warm up: let every device connect, the first polls drain and the
	// gateway release its start-up pages (10 s after it started), so the
	// window sees the steady state.
	time.Sleep(12 * time.Second)
	var sent0, localSent0 uint64
	if load != nil {
		sent0 = load.sent.Load()
	}
	if local != nil {
		localSent0 = local.sent.Load()
	}
	disk := newDiskSampler(dir, gw.Process.Pid) // syncs first: before the CPU baselines
	cpu0 := observe.ProcessCPU(gw.Process.Pid)
	vol0, invol0 := contextSwitches(gw.Process.Pid)
	self0, mq0 := observe.ProcessCPU(0), observe.ProcessCPU(mq.Process.Pid)
	machine := observe.NewCPUSampler()
	if benchProfile != "" {
		f, err := os.Create(benchProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	st2.mu.Lock()
	st2.counting = true
	st2.mu.Unlock()
	start := time.Now()
	stopScrape, scraped := make(chan struct{}), make(chan scrapeResult, 1)
	if metricsOn {
		go scrapeLoop(metricsURL, stopScrape, scraped)
	}
	rssDone := make(chan rssStats, 1)
	go sampleRSS(gw.Process.Pid, stopScrape, rssDone)
	time.Sleep(d)
	close(stopScrape)
	rs := <-rssDone
	st2.mu.Lock()
	st2.counting = false
	values, msgs, lat := st2.values, st2.messages, append([]latSample(nil), st2.latencies...)
	st2.mu.Unlock()
	elapsed := time.Since(start)
	cpu := observe.ProcessCPU(gw.Process.Pid) - cpu0
	vol, invol := contextSwitches(gw.Process.Pid)
	vol, invol = vol-vol0, invol-invol0
	selfCPU, mqCPU := observe.ProcessCPU(0)-self0, observe.ProcessCPU(mq.Process.Pid)-mq0
	machineBusy := machine.Sample().Total
	var diskLine string
	if disk != nil {
		diskLine = disk.line()
	}
	if benchProfile != "" {
		pprof.StopCPUProfile()
	}
	if load != nil {
		offered = float64(load.sent.Load()-sent0) * float64(p.registers) / elapsed.Seconds()
		fmt.Printf("published    %.0f messages/s acknowledged by the device broker\n", offered/float64(p.registers))
		fmt.Printf("delivered    %.0f messages/s\n", float64(values)/float64(p.registers)/elapsed.Seconds())
	}
	if local != nil && local.period == 0 {
		offered = float64(local.sent.Load()-localSent0) * float64(p.registers) / elapsed.Seconds()
	}
	if local != nil {
		fmt.Printf("acked        %d messages acknowledged by the gateway's local API in all (%d not)\n", local.sent.Load(), local.failed.Load())
		if local.period == 0 {
			fmt.Printf("requests     %.0f messages/s acknowledged\n", float64(local.sent.Load()-localSent0)/elapsed.Seconds())
		}
	}
	rss := observe.PeakRSS(gw.Process.Pid)
	var acctErr error
	if accounting {
		acctErr = settle(sims, p.devicesPerSim, st2, metricsURL)
	}
	// The last scrape must finish before the gateway is stopped, or it races
	// the shutdown and reports nothing.
	var sc scrapeResult
	if metricsOn {
		sc = <-scraped
	}
	_ = gw.Process.Signal(syscall.SIGTERM)
	_ = gw.Wait()

	sort.Slice(lat, func(i, j int) bool { return lat[i].lat < lat[j].lat })
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))].lat
	}
	fmt.Printf("offered      %.0f values/s\n", offered)
	fmt.Printf("delivered    %.0f values/s (%d values in %d messages, PUBACKed and received)\n", float64(values)/elapsed.Seconds(), values, msgs)
	fmt.Printf("latency      p50 %s  p99 %s (poll start or publish → received from the broker)\n", pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond))
	var stalls map[int]time.Duration
	if probe != nil {
		var worst time.Duration
		var over int
		stalls, worst, over = probe.stop(start, elapsed)
		fmt.Printf("stalls       a thread of its own sleeping %s at a time woke up to %s late; %d of %d seconds had a delay over 5 ms\n",
			stallPeriod, worst.Round(100*time.Microsecond), over, len(stalls))
	}
	printTail(lat, start, stalls)
	fmt.Printf("gateway CPU  %.2f s in %.0f s = %.1f %% of one core\n", cpu.Seconds(), elapsed.Seconds(), 100*cpu.Seconds()/elapsed.Seconds())
	if switches := vol + invol; switches > 0 {
		fmt.Printf("gateway wake-ups %.0f/s: context switches of its threads (%d voluntary, %d involuntary), %.1f µs of its CPU per switch\n",
			float64(switches)/elapsed.Seconds(), vol, invol, float64(cpu.Microseconds())/float64(switches))
	}
	fmt.Printf("gateway RSS  average %.1f MB (of it code and data mapped from the binary %.1f MB), end %.1f MB, peak %.1f MB (start-up included)\n",
		rs.avg/(1<<20), rs.avgFile/(1<<20), float64(rs.last)/(1<<20), float64(rss)/(1<<20))
	fmt.Printf("peers CPU    bench process (simulators, publishers, subscriber) %.1f %%, platform mosquitto %.1f %% of one core\n",
		100*selfCPU.Seconds()/elapsed.Seconds(), 100*mqCPU.Seconds()/elapsed.Seconds())
	// Everything the machine did, the kernel's share of loopback traffic included: near
	// 100 % the peers and the gateway compete for the cores and the figures above are
	// the machine's, not the gateway's, limit.
	fmt.Printf("machine CPU  %.0f %% of its %d cores busy\n", machineBusy, runtime.NumCPU())
	if diskLine != "" {
		fmt.Println(diskLine)
	}
	if metricsOn {
		fmt.Printf("metrics      %d scrapes of /metrics (every %s), %.1f KB each; since start %.0f polls, %.0f poll ticks skipped (a poll overran them)\n",
			sc.n, scrapeEvery, float64(sc.size)/1024, sc.polls, sc.skipped)
	}
	return acctErr
}
