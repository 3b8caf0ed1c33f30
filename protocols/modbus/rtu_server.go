package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// The serial (RTU) server: github.com/simonvetter/modbus serves TCP only,
// so the gateway frames RTU itself (rtu_frame.go) and hands each request to
// the same RequestHandler, the Store, the TCP server uses.

// Exception codes (Modbus application protocol, 7).
const (
	exIllegalFunction    = 1
	exIllegalDataAddress = 2
	exIllegalDataValue   = 3
	exDeviceFailure      = 4
)

// exceptionCode maps a handler error to its exception code as the TCP
// server does: the library's sentinel errors keep their codes, anything
// else is a device failure.
func exceptionCode(err error) byte {
	for code, e := range map[byte]error{
		1: modbus.ErrIllegalFunction, 2: modbus.ErrIllegalDataAddress, 3: modbus.ErrIllegalDataValue,
		4: modbus.ErrServerDeviceFailure, 5: modbus.ErrAcknowledge, 6: modbus.ErrServerDeviceBusy,
		8: modbus.ErrMemoryParityError, 10: modbus.ErrGWPathUnavailable, 11: modbus.ErrGWTargetFailedToRespond,
	} {
		if errors.Is(err, e) {
			return code
		}
	}
	return exDeviceFailure
}

// servePDU answers one request PDU (function code, then data) with h and
// returns the response PDU: the data asked for, the write echoed, or an
// exception. Quantities outside the protocol's limits and malformed data
// answer "illegal data value" (a serial slave cannot drop the line as the
// TCP server drops the connection); addresses past 65535 "illegal data
// address"; function codes other than 1-6, 15 and 16 "illegal function".
func servePDU(h modbus.RequestHandler, client string, unit byte, pdu []byte) []byte {
	fc, data := pdu[0], pdu[1:]
	exc := func(code byte) []byte { return []byte{fc | 0x80, code} }
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(data[i:]) }
	// span checks the quantity against the function's limit and the range
	// against the table.
	span := func(limit uint16) (addr, n uint16, ex byte) {
		addr, n = u16(0), u16(2)
		if n == 0 || n > limit {
			return 0, 0, exIllegalDataValue
		}
		if int(addr)+int(n) > 65536 {
			return 0, 0, exIllegalDataAddress
		}
		return addr, n, 0
	}
	switch fc {
	case 1, 2:
		if len(data) != 4 {
			return exc(exIllegalDataValue)
		}
		addr, n, ex := span(2000)
		if ex != 0 {
			return exc(ex)
		}
		var bits []bool
		var err error
		if fc == 1 {
			bits, err = h.HandleCoils(&modbus.CoilsRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n})
		} else {
			bits, err = h.HandleDiscreteInputs(&modbus.DiscreteInputsRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n})
		}
		if err != nil {
			return exc(exceptionCode(err))
		}
		if len(bits) != int(n) {
			return exc(exDeviceFailure)
		}
		out := make([]byte, 2+(n+7)/8)
		out[0], out[1] = fc, byte((n+7)/8)
		for i, b := range bits {
			if b {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case 3, 4:
		if len(data) != 4 {
			return exc(exIllegalDataValue)
		}
		addr, n, ex := span(125)
		if ex != 0 {
			return exc(ex)
		}
		var regs []uint16
		var err error
		if fc == 3 {
			regs, err = h.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n})
		} else {
			regs, err = h.HandleInputRegisters(&modbus.InputRegistersRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n})
		}
		if err != nil {
			return exc(exceptionCode(err))
		}
		if len(regs) != int(n) {
			return exc(exDeviceFailure)
		}
		out := make([]byte, 2, 2+2*n)
		out[0], out[1] = fc, byte(2*n)
		for _, r := range regs {
			out = binary.BigEndian.AppendUint16(out, r)
		}
		return out
	case 5:
		if len(data) != 4 || (u16(2) != 0xFF00 && u16(2) != 0) {
			return exc(exIllegalDataValue)
		}
		if _, err := h.HandleCoils(&modbus.CoilsRequest{ClientAddr: client, UnitId: unit, Addr: u16(0), Quantity: 1, IsWrite: true, Args: []bool{u16(2) == 0xFF00}}); err != nil {
			return exc(exceptionCode(err))
		}
		return append([]byte(nil), pdu...)
	case 6:
		if len(data) != 4 {
			return exc(exIllegalDataValue)
		}
		if _, err := h.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{ClientAddr: client, UnitId: unit, Addr: u16(0), Quantity: 1, IsWrite: true, Args: []uint16{u16(2)}}); err != nil {
			return exc(exceptionCode(err))
		}
		return append([]byte(nil), pdu...)
	case 15, 16:
		if len(data) < 5 {
			return exc(exIllegalDataValue)
		}
		limit, per := uint16(1968), 0
		if fc == 16 {
			limit, per = 123, 2
		}
		addr, n, ex := span(limit)
		if ex != 0 {
			return exc(ex)
		}
		want := int(n+7) / 8
		if per != 0 {
			want = per * int(n)
		}
		if int(data[4]) != want || len(data) != 5+want {
			return exc(exIllegalDataValue)
		}
		values := data[5:]
		var err error
		if fc == 15 {
			bits := make([]bool, n)
			for i := range bits {
				bits[i] = values[i/8]&(1<<(i%8)) != 0
			}
			_, err = h.HandleCoils(&modbus.CoilsRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n, IsWrite: true, Args: bits})
		} else {
			regs := make([]uint16, n)
			for i := range regs {
				regs[i] = binary.BigEndian.Uint16(values[2*i:])
			}
			_, err = h.HandleHoldingRegisters(&modbus.HoldingRegistersRequest{ClientAddr: client, UnitId: unit, Addr: addr, Quantity: n, IsWrite: true, Args: regs})
		}
		if err != nil {
			return exc(exceptionCode(err))
		}
		return append([]byte{fc}, data[:4]...)
	}
	return exc(exIllegalFunction)
}

// RTUStats counts what the serial server saw on its line.
type RTUStats struct {
	Requests  atomic.Uint64 // frames for this unit, answered
	Broadcast atomic.Uint64 // unit 0 writes, applied without an answer
	Ignored   atomic.Uint64 // frames for other units, and broadcast reads
	BadCRC    atomic.Uint64 // frames dropped for their CRC
	Garbage   atomic.Uint64 // bytes dropped outside frames (incomplete, overlong, skipped after a bad frame)
}

// serialPort is what the RTU server needs of its line: an *os.File on a
// tty, or a net.Pipe end in tests.
type serialPort interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

// rtuServer answers RTU requests on one serial line from handler.
type rtuServer struct {
	port    serialPort
	name    string // the device path, for logs and ClientAddr
	unit    byte   // 0: every unit, as upstream's server (see parseServer)
	handler modbus.RequestHandler
	// silence is 3.5 character times; stall how long a frame of known
	// length may pause before its bytes are dropped.
	silence, stall time.Duration
	log            zerolog.Logger
	warn           ratelimit.KeyedLines
	stats          *RTUStats

	// skipping mirrors run's state for tests: true from a bad frame to
	// the next silence.
	skipping atomic.Bool
	closing  atomic.Bool
	done     chan struct{} // closed when run returns
	err      error         // why run returned, read after done
}

// rtuTimings returns the 3.5-character silence for the line settings (a
// fixed 1.75 ms above 19200 baud, as the serial-line spec says) and the
// stall, long enough for a USB adapter's latency timer (16 ms) or a pty.
func rtuTimings(baud, dataBits, stopBits int, parity string) (silence, stall time.Duration) {
	if baud <= 0 || baud > 19200 {
		silence = 1750 * time.Microsecond
	} else {
		bits := 1 + dataBits + stopBits
		if parity == "E" || parity == "O" {
			bits++
		}
		silence = time.Duration(float64(time.Second) * 3.5 * float64(bits) / float64(baud))
	}
	return silence, max(50*time.Millisecond, 20*silence)
}

func newRTUServer(port serialPort, name string, unit byte, h modbus.RequestHandler, silence, stall time.Duration, log zerolog.Logger, stats *RTUStats) *rtuServer {
	return &rtuServer{port: port, name: name, unit: unit, handler: h, silence: silence, stall: stall,
		log: log, stats: stats, done: make(chan struct{})}
}

// run reads and answers until the port fails or close is called.
func (s *rtuServer) run() {
	defer close(s.done)
	buf := make([]byte, 0, 2*rtuMaxFrame)
	chunk := make([]byte, rtuMaxFrame)
	out := make([]byte, 0, rtuMaxFrame)
	skipping := false // after a bad frame, until the line is silent
	var last time.Time
	for {
		s.skipping.Store(skipping)
		var deadline time.Time
		if len(buf) > 0 || skipping {
			deadline = time.Now().Add(s.silence)
		}
		if err := s.port.SetReadDeadline(deadline); err != nil {
			s.err = fmt.Errorf("modbus serial server %s: set read deadline: %w", s.name, err)
			return
		}
		n, err := s.port.Read(chunk)
		now := time.Now()
		if n > 0 {
			last = now
			if skipping {
				s.stats.Garbage.Add(uint64(n))
			} else {
				buf = append(buf, chunk[:n]...)
			}
		}
		q := lineBusy
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				if !s.closing.Load() {
					s.err = fmt.Errorf("modbus serial server %s: read: %w", s.name, err)
				}
				return
			}
			switch gap := now.Sub(last); {
			case gap >= s.stall:
				q = lineStalled
			case gap >= s.silence:
				q = lineSilent
			}
		}
		if skipping {
			skipping = q < lineSilent
			continue
		}
		for len(buf) > 0 {
			frame, used, st := cutRequest(buf, q)
			if st == frameNeedMore {
				break
			}
			switch st {
			case frameOK:
				out = s.answer(frame, out[:0])
				if len(out) > 0 {
					if _, err := s.port.Write(out); err != nil {
						if !s.closing.Load() {
							s.err = fmt.Errorf("modbus serial server %s: write: %w", s.name, err)
						}
						return
					}
				}
			case frameBadCRC:
				s.stats.BadCRC.Add(1)
				s.warnf("crc", "dropped a %d-byte frame with a bad CRC; skipping to the next silence", used)
				skipping = true
			default:
				s.stats.Garbage.Add(uint64(used))
				s.warnf("garbage", "dropped %d bytes that did not make a request frame (%s); skipping to the next silence", used, st)
				skipping = true
			}
			buf = buf[:copy(buf, buf[used:])]
			if skipping {
				s.stats.Garbage.Add(uint64(len(buf)))
				buf = buf[:0]
				skipping = q < lineSilent
				break
			}
		}
	}
}

// answer handles one good frame and appends the response frame to out;
// nothing for other units and broadcasts.
func (s *rtuServer) answer(frame, out []byte) []byte {
	unit, pdu := frame[0], frame[1:len(frame)-2]
	switch {
	case unit == 0:
		if !isWriteFunction(int(pdu[0])) {
			// Only writes may be broadcast.
			s.stats.Ignored.Add(1)
			return out
		}
		// A broadcast write is applied and never answered; a refused one
		// has no one to tell but the log.
		if resp := servePDU(s.handler, s.name, unit, pdu); resp[0]&0x80 != 0 {
			s.warnf("broadcast", "broadcast function %d refused with exception %d", pdu[0], resp[1])
		}
		s.stats.Broadcast.Add(1)
		return out
	case s.unit != 0 && unit != s.unit:
		s.stats.Ignored.Add(1)
		return out
	}
	s.stats.Requests.Add(1)
	return appendRTU(out, unit, servePDU(s.handler, s.name, unit, pdu))
}

func (s *rtuServer) warnf(key, format string, args ...any) {
	ok, suppressed := s.warn.Allow(key, time.Now())
	if !ok {
		return
	}
	e := s.log.Warn().Str("port", s.name)
	if suppressed > 0 {
		e = e.Int("suppressed", suppressed)
	}
	e.Msgf(format, args...)
}

// close stops run and waits for it.
func (s *rtuServer) close() {
	s.closing.Store(true)
	_ = s.port.Close()
	<-s.done
}
