package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// platformView is what the demo's stand-in platform has received.
type platformView struct {
	mu       sync.Mutex
	last     map[string]map[string]json.RawMessage
	lastTs   map[string]int64
	values   uint64
	messages uint64
}

func (v *platformView) onTelemetry(payload []byte) {
	var msg map[string][]struct {
		Ts     int64                      `json:"ts"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if json.Unmarshal(payload, &msg) != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.messages++
	for dev, entries := range msg {
		if v.last[dev] == nil {
			v.last[dev] = map[string]json.RawMessage{}
		}
		for _, e := range entries {
			for k, val := range e.Values {
				v.last[dev][k] = val
				v.values++
			}
			if e.Ts > v.lastTs[dev] {
				v.lastTs[dev] = e.Ts
			}
		}
	}
}

// startDemoBroker runs an embedded MQTT broker standing in for the platform.
func startDemoBroker(addr string, view *platformView) (*mqtt.Server, string, error) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("demo broker: %w", err)
	}
	real := ln.Addr().String()
	ln.Close()
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: real})); err != nil {
		return nil, "", fmt.Errorf("demo broker on %s: %w", real, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, "", err
	}
	err = srv.Subscribe("v1/gateway/telemetry", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		view.onTelemetry(pk.Payload)
	})
	if err != nil {
		return nil, "", err
	}
	// Answer getSessionLimits like a current platform, so the gateway does not
	// wait out the timeout it keeps for old platforms.
	err = srv.Subscribe("v1/devices/me/rpc/request/+", 2, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if !strings.Contains(string(pk.Payload), "getSessionLimits") {
			return
		}
		id := pk.TopicName[strings.LastIndexByte(pk.TopicName, '/')+1:]
		go func() {
			_ = srv.Publish("v1/devices/me/rpc/response/"+id,
				[]byte(`{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{},"gatewayRateLimits":{}}`), false, 1)
		}()
	})
	return srv, real, err
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	devices := fs.Int("devices", 5, "simulated Modbus devices")
	registers := fs.Int("registers", 8, "registers per device")
	poll := fs.Duration("poll", time.Second, "poll period")
	brokerAddr := fs.String("broker", "127.0.0.1:0", "address of the embedded platform broker")
	duration := fs.Duration("duration", 0, "stop after this long and exit 1 if nothing reached the platform (0: run until Ctrl-C)")
	level := fs.String("log-level", envOr("IOTGW_LOG_LEVEL", "warn"), "log level")
	log, code, ok := parseFlags(fs, args, level, stderr)
	if !ok {
		return code
	}
	s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0", Devices: *devices, Registers: *registers, Animate: true})
	if err != nil {
		fmt.Fprintln(stderr, "demo: modbus simulator:", err)
		return 1
	}
	defer s.Close()
	view := &platformView{last: map[string]map[string]json.RawMessage{}, lastTs: map[string]int64{}}
	broker, addr, err := startDemoBroker(*brokerAddr, view)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer broker.Close()

	dir, err := os.MkdirTemp("", "iotgw-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	host, port, _ := net.SplitHostPort(addr)
	main := fmt.Sprintf(`{
  "thingsboard": {"host": %q, "port": %s, "security": {"accessToken": "demo-gateway-token"}},
  "storage": {"type": "file", "data_folder_path": "data", "max_file_count": 10, "max_records_per_file": 100000},
  "connectors": [{"type": "modbus", "name": "Demo Modbus", "configuration": "modbus.json"}]
}`, host, port)
	if err := os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o600); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(dir, "modbus.json"), sim.GatewayConfig(s.Addr(), *devices, *registers, *poll), 0o600); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	cfg, err := config.Load(filepath.Join(dir, "tb_gateway.json"), func(string) string { return "" })
	if err != nil {
		printProblems(stderr, cfg)
		return 1
	}
	sig := stopSignals()
	gw, err := actors.Start(actors.Options{Config: cfg, Logger: log, Version: currentVersion().Version})
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "demo: Modbus simulator on %s (%d devices), platform broker on %s, journal in %s\n", s.Addr(), *devices, addr, dir)
	fmt.Fprintln(stdout, "demo: press Ctrl-C to stop")

	var stop <-chan time.Time
	if *duration > 0 {
		stop = time.After(*duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	term := isTerminal(stdout)
	var lastDelivered uint64
	start := time.Now()
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-stop:
			break loop
		case <-tick.C:
			d := gw.Counters().ValuesDelivered.Load()
			renderDemo(stdout, term, gw, view, d-lastDelivered, time.Since(start))
			lastDelivered = d
		}
	}
	fmt.Fprintln(stdout, "demo: stopping")
	ctx, cancel := contextWithTimeout(4 * time.Second)
	defer cancel()
	delivered := gw.Counters().ValuesDelivered.Load()
	if err := gw.Stop(ctx); err != nil {
		fmt.Fprintln(stderr, "demo: stop:", err)
		return 1
	}
	// A timed run is a smoke test (CI runs one under emulation for each architecture):
	// it passes only if values made it to the platform.
	if *duration > 0 && delivered == 0 {
		fmt.Fprintf(stderr, "demo: no value reached the platform in %s\n", *duration)
		return 1
	}
	fmt.Fprintf(stdout, "demo: %d values delivered\n", delivered)
	return 0
}

func renderDemo(w io.Writer, term bool, gw *actors.Gateway, view *platformView, perSec uint64, up time.Duration) {
	c := gw.Counters()
	st := gw.Journal().Stats()
	var b strings.Builder
	if term {
		b.WriteString("\033[H\033[2J")
	}
	fmt.Fprintf(&b, "iotgw demo — up %s\n", up.Truncate(time.Second))
	fmt.Fprintf(&b, "devices connected %d | values/s delivered %d | polls %d (errors %d) | journal depth %d | delivered %d values in %d messages\n",
		c.DevicesConnected.Load(), perSec, c.Polls.Load(), c.PollErrors.Load(), st.Depth, c.ValuesDelivered.Load(), c.MessagesSent.Load())
	view.mu.Lock()
	devs := make([]string, 0, len(view.last))
	for d := range view.last {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	if term || up%(5*time.Second) < time.Second {
		for _, d := range devs {
			keys := make([]string, 0, len(view.last[d]))
			for k := range view.last[d] {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "  platform ← %-12s", d)
			for i, k := range keys {
				if i == 6 {
					b.WriteString(" …")
					break
				}
				fmt.Fprintf(&b, " %s=%s", k, view.last[d][k])
			}
			b.WriteString("\n")
		}
	}
	view.mu.Unlock()
	fmt.Fprint(w, b.String())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isattyTerminal(f)
}
