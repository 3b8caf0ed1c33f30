package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func client(t *testing.T, s *Sim, timeout time.Duration) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + s.Addr(), Timeout: timeout, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func start(t *testing.T, o Options) *Sim {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestValueAndTick(t *testing.T) {
	if Value(1, 5, 0) != 0x0105 || Value(3, 0, 7) != 0x0307 || Value(247, 300, 0) != 0xF72C {
		t.Error("layout changed")
	}
	for _, tick := range []uint64{0, 1, 255, 65535} {
		if got := TickOf(9, Value(9, 0, tick)); got != tick {
			t.Errorf("TickOf(Value(tick %d)) = %d", tick, got)
		}
	}
}

func TestStaticRegistersAndWrites(t *testing.T) {
	s := start(t, Options{Devices: 2, Registers: 10})
	c := client(t, s, time.Second)
	_ = c.SetUnitId(2)
	regs, err := c.ReadRegisters(0, 10, modbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range regs {
		if r != Value(2, uint16(i), 0) {
			t.Fatalf("reg %d = %04X", i, r)
		}
	}
	s.Set(2, 3, 0xBEEF)
	if err := c.WriteRegisters(4, []uint16{1, 2}); err != nil {
		t.Fatal(err)
	}
	in, err := c.ReadRegisters(3, 3, modbus.INPUT_REGISTER)
	if err != nil || in[0] != 0xBEEF || in[1] != 1 || in[2] != 2 {
		t.Fatalf("input registers %04X %v", in, err)
	}
	if got := s.Get(2, 4, 2); got[0] != 1 || got[1] != 2 {
		t.Errorf("Get %v", got)
	}
	if err := c.WriteCoils(1, []bool{true, true}); err != nil {
		t.Fatal(err)
	}
	di, err := c.ReadDiscreteInputs(0, 3)
	if err != nil || di[0] || !di[1] || !di[2] {
		t.Errorf("discrete inputs %v %v", di, err)
	}
	if _, err := c.ReadRegisters(8, 5, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("past the end: %v", err)
	}
	_ = c.SetUnitId(3)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrGWTargetFailedToRespond) {
		t.Errorf("unknown unit: %v", err)
	}
	if s.Requests() != 7 {
		t.Errorf("%d requests", s.Requests())
	}
}

func TestAnimatedReadsAreConsistent(t *testing.T) {
	s := start(t, Options{Devices: 1, Registers: 50, Animate: true, Tick: time.Millisecond})
	s.Set(1, 10, 7) // pinned registers stop animating
	c := client(t, s, time.Second)
	for i := 0; i < 20; i++ {
		regs, err := c.ReadRegisters(0, 50, modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatal(err)
		}
		tick := TickOf(1, regs[0])
		for r, v := range regs {
			want := Value(1, uint16(r), tick)
			if r == 10 {
				want = 7
			}
			if v != want {
				t.Fatalf("tick %d reg %d = %d, want %d", tick, r, v, want)
			}
		}
	}
}

func TestFailingAndSilent(t *testing.T) {
	s := start(t, Options{Devices: 1, Registers: 4})
	c := client(t, s, 100*time.Millisecond)
	s.SetFailing(1, true)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrServerDeviceFailure) {
		t.Fatalf("failing: %v", err)
	}
	s.SetFailing(1, false)
	s.SetSilent(true)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Fatalf("silent: %v", err)
	}
	s.SetSilent(false)
	c2 := client(t, s, time.Second)
	if _, err := c2.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); err != nil {
		t.Fatalf("after silence: %v", err)
	}
	// Close releases a request that is blocked by silence.
	s.SetSilent(true)
	done := make(chan error, 1)
	go func() {
		_, err := c2.ReadRegisters(0, 1, modbus.HOLDING_REGISTER)
		done <- err
	}()
	testpeer.Eventually(t, testpeer.MinTimeout, "the request to arrive", func() error {
		if n := s.Requests(); n < 4 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	s.Close()
	if err := <-done; err == nil {
		t.Error("request answered after Close")
	}
}

func TestGatewayConfig(t *testing.T) {
	raw := GatewayConfig("127.0.0.1:5020", 2, 3, 250*time.Millisecond)
	var f struct {
		Master struct {
			Slaves []struct {
				Host       string
				Port       int
				UnitID     int `json:"unitId"`
				DeviceName string
				PollPeriod int
				Timeseries []struct {
					Tag     string
					Type    string
					Address int
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	sl := f.Master.Slaves
	if len(sl) != 2 || sl[1].DeviceName != "sim-dev-2" || sl[1].UnitID != 2 || sl[0].Port != 5020 || sl[0].PollPeriod != 250 {
		t.Fatalf("%+v", sl)
	}
	if ts := sl[0].Timeseries; len(ts) != 3 || ts[2].Tag != "r2" || ts[2].Type != "16uint" || ts[2].Address != 2 {
		t.Errorf("%+v", ts)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Start(Options{Devices: 0}); err == nil {
		t.Error("0 devices accepted")
	}
	if _, err := Start(Options{Devices: 248}); err == nil {
		t.Error("248 devices accepted")
	}
	s := start(t, Options{Devices: 1})
	if _, err := Start(Options{Addr: s.Addr(), Devices: 1}); err == nil {
		t.Error("second sim on a used port")
	}
}

func TestSequenceCountsServedReads(t *testing.T) {
	s := start(t, Options{Devices: 2, Registers: 4, Sequence: true})
	c := client(t, s, time.Second)
	_ = c.SetUnitId(2)
	for want := uint16(0); want < 3; want++ {
		regs, err := c.ReadRegisters(0, 4, modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatal(err)
		}
		if regs[3] != want || regs[2] != Value(2, 2, 0) {
			t.Fatalf("read %d: registers %v, want sequence %d in the last one", want, regs, want)
		}
	}
	if regs, err := c.ReadRegisters(3, 1, modbus.INPUT_REGISTER); err != nil || regs[0] != 3 {
		t.Fatalf("input register mirror: %v, %v", regs, err)
	}
	if s.Served(2) != 4 || s.Served(1) != 0 {
		t.Fatalf("served %d and %d, want 4 and 0", s.Served(2), s.Served(1))
	}
	// A failing unit serves nothing.
	s.SetFailing(1, true)
	_ = c.SetUnitId(1)
	if _, err := c.ReadRegisters(0, 4, modbus.HOLDING_REGISTER); err == nil {
		t.Fatal("failing unit answered")
	}
	if s.Served(1) != 0 {
		t.Fatalf("failing unit served %d", s.Served(1))
	}
}
