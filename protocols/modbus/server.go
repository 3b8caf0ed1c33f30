package modbus

import (
	"fmt"
	"io"
	"log"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/simonvetter/modbus"
)

// Store is the server's register space: the four Modbus tables, 65536
// entries each, every entry 0 unless configured or written. Masters may
// write coils and holding registers; discrete inputs and input registers
// are read-only on the wire. Safe for concurrent use (the library calls the
// handlers from one goroutine per client).
type Store struct {
	mu       sync.Mutex
	coils    [65536]bool
	discrete [65536]bool
	holding  [65536]uint16
	input    [65536]uint16
}

// NewStore returns a store holding the configured initial values.
func NewStore(values []ServerValue) *Store {
	s := &Store{}
	for _, v := range values {
		s.Set(v.Table, v.Key.Address, v.Regs, v.Bits)
	}
	return s
}

// Set writes registers or bits into table (1 coils, 2 discrete inputs,
// 3 holding, 4 input registers) from addr; entries past 65535 are dropped.
func (s *Store) Set(table int, addr uint16, regs []uint16, bits []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch table {
	case 1:
		copy(s.coils[addr:], bits)
	case 2:
		copy(s.discrete[addr:], bits)
	case 3:
		copy(s.holding[addr:], regs)
	case 4:
		copy(s.input[addr:], regs)
	}
}

// Registers returns n registers of table 3 or 4 from addr.
func (s *Store) Registers(table int, addr uint16, n int) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.holding[:]
	if table == 4 {
		src = s.input[:]
	}
	return append([]uint16(nil), src[addr:min(int(addr)+n, 65536)]...)
}

// Bits returns n bits of table 1 or 2 from addr.
func (s *Store) Bits(table int, addr uint16, n int) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.coils[:]
	if table == 2 {
		src = s.discrete[:]
	}
	return append([]bool(nil), src[addr:min(int(addr)+n, 65536)]...)
}

func inRange(addr, n uint16) error {
	if int(addr)+int(n) > 65536 {
		return modbus.ErrIllegalDataAddress
	}
	return nil
}

func (s *Store) HandleCoils(r *modbus.CoilsRequest) ([]bool, error) {
	if err := inRange(r.Addr, r.Quantity); err != nil {
		return nil, err
	}
	if r.IsWrite {
		s.Set(1, r.Addr, nil, r.Args)
		return nil, nil
	}
	return s.Bits(1, r.Addr, int(r.Quantity)), nil
}

func (s *Store) HandleDiscreteInputs(r *modbus.DiscreteInputsRequest) ([]bool, error) {
	if err := inRange(r.Addr, r.Quantity); err != nil {
		return nil, err
	}
	return s.Bits(2, r.Addr, int(r.Quantity)), nil
}

func (s *Store) HandleHoldingRegisters(r *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := inRange(r.Addr, r.Quantity); err != nil {
		return nil, err
	}
	if r.IsWrite {
		s.Set(3, r.Addr, r.Args, nil)
		return nil, nil
	}
	return s.Registers(3, r.Addr, int(r.Quantity)), nil
}

func (s *Store) HandleInputRegisters(r *modbus.InputRegistersRequest) ([]uint16, error) {
	if err := inRange(r.Addr, r.Quantity); err != nil {
		return nil, err
	}
	return s.Registers(4, r.Addr, int(r.Quantity)), nil
}

// storeWire reads and writes a Store through its handlers, the ones the
// servers call, as a master on the wire would; it carries the reporting
// device of a serial server, whose line belongs to other masters.
type storeWire struct{ s *Store }

func (w storeWire) Open() error              { return nil }
func (w storeWire) Close() error             { return nil }
func (w storeWire) SetUnitId(id uint8) error { return nil }

func (w storeWire) ReadCoils(addr, n uint16) ([]bool, error) {
	return w.s.HandleCoils(&modbus.CoilsRequest{Addr: addr, Quantity: n})
}

func (w storeWire) ReadDiscreteInputs(addr, n uint16) ([]bool, error) {
	return w.s.HandleDiscreteInputs(&modbus.DiscreteInputsRequest{Addr: addr, Quantity: n})
}

func (w storeWire) ReadRegisters(addr, n uint16, t modbus.RegType) ([]uint16, error) {
	if t == modbus.INPUT_REGISTER {
		return w.s.HandleInputRegisters(&modbus.InputRegistersRequest{Addr: addr, Quantity: n})
	}
	return w.s.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{Addr: addr, Quantity: n})
}

func (w storeWire) WriteCoil(addr uint16, v bool) error { return w.WriteCoils(addr, []bool{v}) }

func (w storeWire) WriteCoils(addr uint16, v []bool) error {
	_, err := w.s.HandleCoils(&modbus.CoilsRequest{Addr: addr, Quantity: uint16(len(v)), IsWrite: true, Args: v})
	return err
}

func (w storeWire) WriteRegister(addr, v uint16) error { return w.WriteRegisters(addr, []uint16{v}) }

func (w storeWire) WriteRegisters(addr uint16, v []uint16) error {
	_, err := w.s.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{Addr: addr, Quantity: uint16(len(v)), IsWrite: true, Args: v})
	return err
}

var _ wire = storeWire{}

// server runs the `slave` section's Modbus server: TCP through the library,
// or RTU on a serial line through rtuServer, both answering from store. It
// starts on the reporting device's first poll (New does no I/O) and retries
// on the next poll when the port cannot be bound or opened, or the serial
// line failed.
type server struct {
	cfg   *ServerConfig
	store *Store
	log   zerolog.Logger
	// local is the reporting device's link on a serial server (nil on
	// TCP, whose reporting device polls over loopback like any slave).
	local *link
	// Stats counts the serial line's frames.
	Stats RTUStats

	mu      sync.Mutex
	srv     *modbus.ModbusServer
	rtu     *rtuServer
	stopped bool
}

func newServer(cfg *ServerConfig, log zerolog.Logger) *server {
	s := &server{cfg: cfg, store: NewStore(cfg.Values), log: log}
	if cfg.Slave.Type == "serial" {
		s.local = &link{endpoint: "store", sem: make(chan struct{}, 1), client: storeWire{s.store}, open: true}
	}
	return s
}

// start binds the server unless it is running.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrClosed
	}
	if s.cfg.Slave.Type == "serial" {
		return s.startSerial()
	}
	if s.srv != nil {
		return nil
	}
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL: "tcp://" + s.cfg.Listen,
		// The library closes clients idle this long; masters that poll
		// slower than that reconnect.
		Timeout:    10 * time.Minute,
		MaxClients: 32,
		Logger:     log.New(io.Discard, "", 0),
	}, s.store)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		return fmt.Errorf("modbus server %s (%s): %w", s.cfg.Listen, s.cfg.Path, err)
	}
	s.srv = srv
	return nil
}

// startSerial opens the line and starts the RTU server, again after the
// line failed (a USB adapter unplugged); s.mu is held.
func (s *server) startSerial() error {
	sc := s.cfg.Slave
	if s.rtu != nil {
		select {
		case <-s.rtu.done:
			s.log.Warn().Err(s.rtu.err).Str("port", sc.Device).Msg("modbus serial server stopped; reopening the line")
			s.rtu = nil
		default:
			return nil
		}
	}
	port, err := openSerial(sc.Device, sc.Baudrate, sc.Bytesize, sc.Stopbits, sc.Parity)
	if err != nil {
		return fmt.Errorf("modbus serial server %s (%s): %w", sc.Device, s.cfg.Path, err)
	}
	silence, stall := rtuTimings(sc.Baudrate, sc.Bytesize, sc.Stopbits, sc.Parity)
	s.rtu = newRTUServer(port, sc.Device, sc.UnitID, s.store, silence, stall, s.log, &s.Stats)
	go s.rtu.run()
	return nil
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.srv != nil {
		_ = s.srv.Stop()
		s.srv = nil
	}
	if s.rtu != nil {
		s.rtu.close()
		s.rtu = nil
	}
}
