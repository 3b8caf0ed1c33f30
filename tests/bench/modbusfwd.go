package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// The modbus-forward profile: forwards copy register 0 of each of 10
// source units to register 0 of a target unit on another Modbus server.
// Every read of a source unit returns a new value, so each poll (10 ms) is
// one event: 1,000 events/s. The source server notes when it answered each
// value, the target when the gateway wrote it: event-to-write latency, from
// the device's answer to the write on the other device, through the
// gateway's decode, device actor, bus, forward and downlink. The gateway
// runs three times over the same load — without automation, with one task
// evaluating every value on the bus (its condition never true), and with
// the forwards — so its CPU shows what the bus and the forwards cost.

const (
	fwdUnits = 10
	fwdPoll  = 10 * time.Millisecond
)

// fwdRepeat runs the three configurations this many times, interleaved,
// so drift in a shared machine's load spreads over all three (-repeat).
var fwdRepeat = 1

// stampServer is a Modbus server that stamps values: a source hands out a
// new value on every read and notes when; a target notes when each value
// was written.
type stampServer struct {
	source bool
	mu     sync.Mutex
	next   [fwdUnits + 1]uint16
	at     map[[2]uint16]time.Time // unit, value -> answered or written
	srv    *modbus.ModbusServer
	addr   string
}

func startStampServer(source bool) (*stampServer, error) {
	s := &stampServer{source: source, at: map[[2]uint16]time.Time{}}
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.srv, err = modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + s.addr, Timeout: time.Hour,
			MaxClients: 16, Logger: log.New(io.Discard, "", 0)}, s)
		if err != nil {
			return nil, err
		}
		if err = s.srv.Start(); err == nil {
			return s, nil
		}
		if attempt == 4 {
			return nil, err
		}
	}
}

func (s *stampServer) reset() {
	s.mu.Lock()
	s.at = map[[2]uint16]time.Time{}
	s.mu.Unlock()
}

func (s *stampServer) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.UnitId < 1 || req.UnitId > fwdUnits || req.Addr != 0 || req.Quantity != 1 {
		return nil, modbus.ErrIllegalDataAddress
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.IsWrite {
		if !s.source {
			s.at[[2]uint16{uint16(req.UnitId), req.Args[0]}] = now
		}
		return nil, nil
	}
	v := s.next[req.UnitId]
	if s.source {
		s.next[req.UnitId]++
		s.at[[2]uint16{uint16(req.UnitId), v}] = now
	}
	return []uint16{v}, nil
}

func (s *stampServer) HandleCoils(*modbus.CoilsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (s *stampServer) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (s *stampServer) HandleInputRegisters(*modbus.InputRegistersRequest) ([]uint16, error) {
	return nil, modbus.ErrIllegalFunction
}

func runModbusForward(d time.Duration) error {
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
	src, err := startStampServer(true)
	if err != nil {
		return err
	}
	defer src.srv.Stop()
	dst, err := startStampServer(false)
	if err != nil {
		return err
	}
	defer dst.srv.Stop()

	var f struct {
		Master struct {
			Slaves []map[string]any `json:"slaves"`
		} `json:"master"`
	}
	if err := json.Unmarshal(sim.GatewayConfig(src.addr, fwdUnits, 1, fwdPoll), &f); err != nil {
		return err
	}
	slaves := f.Master.Slaves
	var tg struct {
		Master struct {
			Slaves []map[string]any `json:"slaves"`
		} `json:"master"`
	}
	if err := json.Unmarshal(sim.GatewayConfig(dst.addr, fwdUnits, 0, time.Hour), &tg); err != nil {
		return err
	}
	var forwards strings.Builder
	forwards.WriteString("queue: {memory: true}\nforwards:\n")
	for i, s := range tg.Master.Slaves {
		s["deviceName"] = fmt.Sprintf("dst-%d", i+1)
		s["attributeUpdates"] = []map[string]any{{"tag": "v", "type": "16uint", "functionCode": 6, "objectsCount": 1, "address": 0}}
		slaves = append(slaves, s)
		fmt.Fprintf(&forwards, "  - {name: f%d, source: sim-dev-%d.r0, target: dst-%d.v}\n", i+1, i+1, i+1)
	}
	mb, _ := json.Marshal(map[string]any{"master": map[string]any{"slaves": slaves}})
	if err := os.WriteFile(filepath.Join(dir, "modbus.json"), mb, 0o600); err != nil {
		return err
	}
	main := fmt.Sprintf(`{"thingsboard": {"host": "127.0.0.1", "port": %d, "security": {"accessToken": "bench"}},
  "storage": {"type": "memory", "max_records_count": 10000000},
  "connectors": [{"type": "modbus", "name": "bench", "configuration": "modbus.json"}]}`, port)
	if err := os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o600); err != nil {
		return err
	}
	bin := filepath.Join(dir, "iotgw")
	if err := buildGateway(bin); err != nil {
		return err
	}
	fmt.Printf("== modbus-forward: %d source units polled every %s (a new value each read) → %d forwards → %d target units; %s per run\n",
		fwdUnits, fwdPoll, fwdUnits, fwdUnits, d)
	runs := []struct{ name, auto string }{
		{"no automation", ""},
		{"bus + task on every value", "queue: {memory: true}\ntasks:\n  - {name: every-value, trigger: {event: \"device/#\"}, condition: value > 1000000, actions: [{handler: platform_message, params: {values: {never: 1}}}]}\n"},
		{"forwards", forwards.String()},
	}
	var base float64
	for n := 0; n < fwdRepeat*len(runs); n++ {
		i, r := n%len(runs), runs[n%len(runs)]
		auto := filepath.Join(dir, "automation.yaml")
		_ = os.Remove(auto)
		if r.auto != "" {
			if err := os.WriteFile(auto, []byte(r.auto), 0o600); err != nil {
				return err
			}
		}
		gw := exec.Command(bin, "run", "-c", filepath.Join(dir, "tb_gateway.json"), "--log-level", "error")
		gw.Stderr = os.Stderr
		if err := gw.Start(); err != nil {
			return err
		}
		time.Sleep(5 * time.Second) // warm up: connections up, first polls done
		src.reset()
		dst.reset()
		cpu0 := observe.ProcessCPU(gw.Process.Pid)
		start := time.Now()
		time.Sleep(d)
		cpu := observe.ProcessCPU(gw.Process.Pid) - cpu0
		elapsed := time.Since(start)
		_ = gw.Process.Signal(syscall.SIGTERM)
		_ = gw.Wait()
		src.mu.Lock()
		reads := src.at
		src.mu.Unlock()
		dst.mu.Lock()
		writes := dst.at
		dst.mu.Unlock()
		pct := 100 * cpu.Seconds() / elapsed.Seconds()
		extra := ""
		if i == 0 {
			base = pct
		} else if base > 0 {
			extra = fmt.Sprintf(" (%+.1f %% of the run without automation)", 100*(pct-base)/base)
		}
		fmt.Printf("-- %s (round %d)\nevents       %.0f values/s read from the source units\n", r.name, n/len(runs)+1, float64(len(reads))/elapsed.Seconds())
		fmt.Printf("gateway CPU  %.2f s in %.0f s = %.1f %% of one core%s\n", cpu.Seconds(), elapsed.Seconds(), pct, extra)
		if len(writes) == 0 {
			continue
		}
		var lat []time.Duration
		for k, w := range writes {
			if rd, ok := reads[k]; ok {
				lat = append(lat, w.Sub(rd))
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		q := func(p float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return lat[int(p*float64(len(lat)-1))]
		}
		fmt.Printf("writes       %.0f/s (%d of %d values; a forward collapses values arriving during its write)\n",
			float64(len(writes))/elapsed.Seconds(), len(lat), len(reads))
		fmt.Printf("latency      p50 %s  p99 %s  max %s (source answered → target written)\n",
			q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), q(1).Round(10*time.Microsecond))
	}
	return nil
}
