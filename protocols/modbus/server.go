package modbus

import (
	"fmt"
	"io"
	"log"
	"sync"
	"time"

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

// server runs the `slave` section's Modbus TCP server. It starts on the
// reporting device's first poll (New does no I/O) and retries on the next
// poll when the port cannot be bound.
type server struct {
	cfg   *ServerConfig
	store *Store

	mu      sync.Mutex
	srv     *modbus.ModbusServer
	stopped bool
}

func newServer(cfg *ServerConfig) *server {
	return &server{cfg: cfg, store: NewStore(cfg.Values)}
}

// start binds the server unless it is running.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrClosed
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

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.srv != nil {
		_ = s.srv.Stop()
		s.srv = nil
	}
}
