// Package sim is an in-process Modbus TCP device simulator for tests,
// benchmarks and the demo.
//
// Register layout: unit u (1..Devices) has Registers holding registers and
// the same number of input registers, coils and discrete inputs. Register
// r reads Value(u, r, tick) unless it was pinned by Set or by a client
// write, which then fixes its value. tick is 0 unless Animate is set, in
// which case it counts Tick periods since Start. Because Value(u, 0, t) is
// u<<8 + t, register 0 tells a reader which tick the rest of a read came
// from (see TickOf); a single read request is always served from one tick.
// Input registers mirror the holding registers, discrete inputs mirror the
// coils, and coils start false.
package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simonvetter/modbus"
)

// MaxDevices is the highest Modbus unit id a device can have.
const MaxDevices = 247

// Options configure a simulator.
type Options struct {
	// Addr is host:port to listen on; port 0 picks a free port.
	Addr string
	// Devices is the number of units, answering as unit ids 1..Devices.
	Devices int
	// Registers is the number of registers (and coils) per unit; default 100.
	Registers int
	// Animate makes unpinned registers follow Value(unit, reg, tick).
	Animate bool
	// Tick is the animation period; default 100 ms.
	Tick time.Duration
	// Sequence makes the last register of every unit (holding and input,
	// unless pinned) read the number of register reads that unit served
	// before this one, modulo 65536, so a reader downstream can tell which
	// reads it never saw (see Served).
	Sequence bool
}

// Value is the content of register reg of unit at tick: the unit in the
// high byte and the register number in the low byte, plus the tick
// (all modulo 65536).
func Value(unit uint8, reg uint16, tick uint64) uint16 {
	return (uint16(unit)<<8 | reg&0xff) + uint16(tick)
}

// TickOf recovers the tick (modulo 65536) of a read from the value of
// register 0 of unit in that read.
func TickOf(unit uint8, reg0 uint16) uint64 {
	return uint64(reg0 - uint16(unit)<<8)
}

type unit struct {
	served uint64 // register reads answered with data; guarded by Sim.mu
	regs   []uint16
	pinned []bool
	coils  []bool
	fail   bool
	delay  time.Duration
}

// Sim is a running simulator.
type Sim struct {
	addr     string
	opts     Options
	start    time.Time
	srv      *modbus.ModbusServer
	requests atomic.Uint64
	delayed  atomic.Int64

	mu     sync.Mutex
	units  []*unit       // index unit id - 1
	silent chan struct{} // non-nil while silent; closed to release handlers
	done   chan struct{}
	closed bool
}

// Start listens and serves until Close.
func Start(o Options) (*Sim, error) {
	if o.Devices < 1 || o.Devices > MaxDevices {
		return nil, fmt.Errorf("sim: Devices %d out of range 1..%d", o.Devices, MaxDevices)
	}
	if o.Registers <= 0 {
		o.Registers = 100
	}
	if o.Registers > 65536 {
		return nil, fmt.Errorf("sim: Registers %d out of range 1..65536", o.Registers)
	}
	if o.Tick <= 0 {
		o.Tick = 100 * time.Millisecond
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s := &Sim{opts: o, start: time.Now(), done: make(chan struct{})}
	for i := 0; i < o.Devices; i++ {
		u := &unit{regs: make([]uint16, o.Registers), pinned: make([]bool, o.Registers), coils: make([]bool, o.Registers)}
		for r := range u.regs {
			u.regs[r] = Value(uint8(i+1), uint16(r), 0)
		}
		s.units = append(s.units, u)
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	// The server cannot report the port it bound, so find a free one first;
	// another process may take it in between, hence the retries.
	for attempt := 0; ; attempt++ {
		addr := o.Addr
		if port == "0" {
			if addr, err = freeAddr(host); err != nil {
				return nil, err
			}
		}
		s.srv, err = modbus.NewServer(&modbus.ServerConfiguration{
			URL: "tcp://" + addr,
			// Long enough that idle test clients are never dropped.
			Timeout:    time.Hour,
			MaxClients: 256,
			Logger:     log.New(io.Discard, "", 0),
		}, (*handler)(s))
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		if err = s.srv.Start(); err == nil {
			s.addr = addr
			return s, nil
		}
		if port != "0" || attempt == 4 {
			return nil, fmt.Errorf("sim: listen %s: %w", addr, err)
		}
	}
}

func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// Addr is the host:port the simulator listens on.
func (s *Sim) Addr() string { return s.addr }

// Requests counts the requests the simulator received.
func (s *Sim) Requests() uint64 { return s.requests.Load() }

// Tick is the current animation tick (0 when not animated).
func (s *Sim) Tick() uint64 {
	if !s.opts.Animate {
		return 0
	}
	return uint64(time.Since(s.start) / s.opts.Tick)
}

// Close stops the server, drops its clients and releases silenced requests.
func (s *Sim) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	_ = s.srv.Stop()
}

func (s *Sim) unit(id uint8) *unit {
	if id == 0 || int(id) > len(s.units) {
		return nil
	}
	return s.units[id-1]
}

// Set pins registers of unit starting at addr to regs. Out-of-range
// registers are ignored.
func (s *Sim) Set(id uint8, addr uint16, regs ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unit(id); u != nil {
		for i, v := range regs {
			if a := int(addr) + i; a < len(u.regs) {
				u.regs[a], u.pinned[a] = v, true
			}
		}
	}
}

// SetCoils sets coils (and thus discrete inputs) of unit starting at addr.
func (s *Sim) SetCoils(id uint8, addr uint16, coils ...bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unit(id); u != nil {
		for i, v := range coils {
			if a := int(addr) + i; a < len(u.coils) {
				u.coils[a] = v
			}
		}
	}
}

// Get returns n registers of unit from addr as a client would read them now.
func (s *Sim) Get(id uint8, addr uint16, n int) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.unit(id)
	if u == nil || int(addr)+n > len(u.regs) || n < 0 {
		return nil
	}
	return s.readLocked(id, u, int(addr), n)
}

// Coils returns n coils of unit from addr.
func (s *Sim) Coils(id uint8, addr uint16, n int) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.unit(id)
	if u == nil || int(addr)+n > len(u.coils) || n < 0 {
		return nil
	}
	return append([]bool(nil), u.coils[addr:int(addr)+n]...)
}

// SetSilent makes the simulator stop answering: requests block until it is
// un-silenced or closed, so clients time out.
func (s *Sim) SetSilent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.silent == nil:
		s.silent = make(chan struct{})
	case !on && s.silent != nil:
		close(s.silent)
		s.silent = nil
	}
}

// SetDelay makes unit answer every request only after d, like a slow slave
// behind a gateway; other units and other connections are not delayed.
func (s *Sim) SetDelay(id uint8, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unit(id); u != nil {
		u.delay = d
	}
}

// Delayed is the number of requests currently held by SetDelay.
func (s *Sim) Delayed() int64 { return s.delayed.Load() }

// SetFailing makes unit answer every request with a server device failure exception.
func (s *Sim) SetFailing(id uint8, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unit(id); u != nil {
		u.fail = on
	}
}

func (s *Sim) readLocked(id uint8, u *unit, addr, n int) []uint16 {
	out := make([]uint16, n)
	tick := s.Tick()
	last := len(u.regs) - 1
	for i := range out {
		a := addr + i
		switch {
		case s.opts.Sequence && a == last && !u.pinned[a]:
			out[i] = uint16(u.served)
		case s.opts.Animate && !u.pinned[a]:
			out[i] = Value(id, uint16(a), tick)
		default:
			out[i] = u.regs[a]
		}
	}
	return out
}

// Served is the number of register reads (holding or input) unit answered
// with data; a read that failed or timed out on the client's side still
// counts, since the simulator cannot know.
func (s *Sim) Served(id uint8) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unit(id); u != nil {
		return u.served
	}
	return 0
}

// enter counts the request, waits while silent and finds the unit.
func (s *Sim) enter(id uint8) (*unit, error) {
	s.requests.Add(1)
	s.mu.Lock()
	wait := s.silent
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-s.done:
			return nil, modbus.ErrServerDeviceBusy
		}
	}
	s.mu.Lock()
	var delay time.Duration
	if u := s.unit(id); u != nil {
		delay = u.delay
	}
	s.mu.Unlock()
	if delay > 0 {
		s.delayed.Add(1)
		select {
		case <-time.After(delay):
		case <-s.done:
		}
		s.delayed.Add(-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.unit(id)
	if u == nil {
		// What a TCP gateway answers for a unit behind it that does not exist.
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	if u.fail {
		return nil, modbus.ErrServerDeviceFailure
	}
	return u, nil
}

func inRange(addr, n uint16, size int) bool { return int(addr)+int(n) <= size }

// HandleCoils implements modbus.RequestHandler.
func (h *handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	s := (*Sim)(h)
	u, err := s.enter(req.UnitId)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !inRange(req.Addr, req.Quantity, len(u.coils)) {
		return nil, modbus.ErrIllegalDataAddress
	}
	if req.IsWrite {
		copy(u.coils[req.Addr:], req.Args)
		return nil, nil
	}
	return append([]bool(nil), u.coils[req.Addr:req.Addr+req.Quantity]...), nil
}

// HandleDiscreteInputs implements modbus.RequestHandler.
func (h *handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	s := (*Sim)(h)
	u, err := s.enter(req.UnitId)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !inRange(req.Addr, req.Quantity, len(u.coils)) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]bool(nil), u.coils[req.Addr:req.Addr+req.Quantity]...), nil
}

// HandleHoldingRegisters implements modbus.RequestHandler.
func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	s := (*Sim)(h)
	u, err := s.enter(req.UnitId)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !inRange(req.Addr, req.Quantity, len(u.regs)) {
		return nil, modbus.ErrIllegalDataAddress
	}
	if req.IsWrite {
		for i, v := range req.Args {
			a := int(req.Addr) + i
			u.regs[a], u.pinned[a] = v, true
		}
		return nil, nil
	}
	out := s.readLocked(req.UnitId, u, int(req.Addr), int(req.Quantity))
	u.served++
	return out, nil
}

// HandleInputRegisters implements modbus.RequestHandler.
func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	s := (*Sim)(h)
	u, err := s.enter(req.UnitId)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !inRange(req.Addr, req.Quantity, len(u.regs)) {
		return nil, modbus.ErrIllegalDataAddress
	}
	out := s.readLocked(req.UnitId, u, int(req.Addr), int(req.Quantity))
	u.served++
	return out, nil
}

// handler keeps the request handlers out of Sim's API.
type handler Sim

var _ modbus.RequestHandler = (*handler)(nil)

// GatewayConfig returns an upstream-format modbus.json polling a simulator
// at addr: one slave per unit (1..devices) named "sim-dev-<unit>", each with
// registers timeseries keys "r0".."r<registers-1>" reading holding register
// i as 16uint with BIG byte and word order, so a key's value is exactly the
// register's value (Value(unit, i, tick)). Timeout is 1 s.
func GatewayConfig(addr string, devices, registers int, pollPeriod time.Duration) []byte {
	host, portStr, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		host, port = addr, 502
	}
	type key struct {
		Tag          string `json:"tag"`
		Type         string `json:"type"`
		FunctionCode int    `json:"functionCode"`
		ObjectsCount int    `json:"objectsCount"`
		Address      int    `json:"address"`
	}
	type slave struct {
		Host                   string `json:"host"`
		Port                   int    `json:"port"`
		Type                   string `json:"type"`
		Method                 string `json:"method"`
		UnitID                 int    `json:"unitId"`
		DeviceName             string `json:"deviceName"`
		DeviceType             string `json:"deviceType"`
		Timeout                int    `json:"timeout"`
		ByteOrder              string `json:"byteOrder"`
		WordOrder              string `json:"wordOrder"`
		PollPeriod             int64  `json:"pollPeriod"`
		ConnectAttemptTimeMs   int    `json:"connectAttemptTimeMs"`
		ConnectAttemptCount    int    `json:"connectAttemptCount"`
		WaitAfterFailedAttempt int    `json:"waitAfterFailedAttemptsMs"`
		Attributes             []key  `json:"attributes"`
		Timeseries             []key  `json:"timeseries"`
		AttributeUpdates       []key  `json:"attributeUpdates"`
		RPC                    []key  `json:"rpc"`
	}
	type master struct {
		Slaves []slave `json:"slaves"`
	}
	type file struct {
		Name   string `json:"name"`
		Master master `json:"master"`
	}
	pp := max(pollPeriod.Milliseconds(), 1)
	f := file{Name: "Modbus simulator"}
	for u := 1; u <= devices; u++ {
		s := slave{
			Host: host, Port: port, Type: "tcp", Method: "socket", UnitID: u,
			DeviceName: fmt.Sprintf("sim-dev-%d", u), DeviceType: "sim",
			Timeout: 1, ByteOrder: "BIG", WordOrder: "BIG", PollPeriod: pp,
			ConnectAttemptTimeMs: 1000, ConnectAttemptCount: 5, WaitAfterFailedAttempt: 30000,
			Attributes: []key{}, Timeseries: make([]key, 0, registers),
			AttributeUpdates: []key{}, RPC: []key{},
		}
		for r := 0; r < registers; r++ {
			s.Timeseries = append(s.Timeseries, key{Tag: fmt.Sprintf("r%d", r), Type: "16uint", FunctionCode: 3, ObjectsCount: 1, Address: r})
		}
		f.Master.Slaves = append(f.Master.Slaves, s)
	}
	b, _ := json.MarshalIndent(f, "", "  ") // plain structs always marshal
	return b
}
