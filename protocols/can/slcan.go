package can

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slcan is the ASCII protocol of serial-line (USB) CAN adapters (Lawicel
// CAN232/CANUSB and its many clones: CANable, USBtin, ...). Every command and
// every received frame is one line ended by CR; the adapter answers a
// command with CR (ok) or BELL (refused).
//
//	t iii l dd..   standard data frame   (id 3 hex digits, dlc 1 digit)
//	T iiiiiiii l dd..   extended data frame
//	r iii l / R iiiiiiii l   remote frames (no data)
//	S0..S8 (S9: 83.3k)   bitrate, O open, L open listen-only, C close
//
// A received frame may carry a 4-hex-digit timestamp after its data when
// the adapter's timestamps are on ("Z1"); it is ignored.

// ErrBadLine marks input from an adapter that is not a valid slcan line. It
// is not a bus failure: the connector counts it as malformed and reads on.
var ErrBadLine = errors.New("bad slcan line")

// slcanBitrates maps a CAN bitrate to its slcan setup command.
var slcanBitrates = map[int]string{
	10000: "S0", 20000: "S1", 50000: "S2", 100000: "S3", 125000: "S4",
	250000: "S5", 500000: "S6", 750000: "S7", 1000000: "S8", 83300: "S9",
}

func slcanBitrateList() string {
	var l []int
	for b := range slcanBitrates {
		l = append(l, b)
	}
	sort.Ints(l)
	s := make([]string, len(l))
	for i, b := range l {
		s[i] = strconv.Itoa(b)
	}
	return strings.Join(s, ", ")
}

// ttySpeeds are the serial speeds the slcan transport can set.
var ttySpeeds = map[int]struct{}{
	9600: {}, 19200: {}, 38400: {}, 57600: {}, 115200: {}, 230400: {}, 460800: {},
	500000: {}, 576000: {}, 921600: {}, 1000000: {}, 1152000: {}, 1500000: {},
	2000000: {}, 2500000: {}, 3000000: {}, 3500000: {}, 4000000: {},
}

func ttySpeedList() string {
	var l []int
	for b := range ttySpeeds {
		l = append(l, b)
	}
	sort.Ints(l)
	s := make([]string, len(l))
	for i, b := range l {
		s[i] = strconv.Itoa(b)
	}
	return strings.Join(s, ", ")
}

// slcanMaxLine bounds a line: the longest classic frame line is 30 bytes
// (T + 8 + 1 + 16 + 4 timestamp); version and serial answers are shorter.
// Anything longer without a CR is noise (wrong tty speed) and is dropped.
const slcanMaxLine = 64

const hexDigits = "0123456789ABCDEF"

// AppendSlcan appends the slcan line (with its CR) that transmits f. It
// refuses CAN FD frames with ErrFDUnsupported: the Lawicel protocol is
// classic only.
func AppendSlcan(b []byte, f Frame) ([]byte, error) {
	if err := CheckClassic(f); err != nil {
		return b, err
	}
	c, digits := byte('t'), 3
	if f.Extended {
		c, digits = 'T', 8
	}
	if f.Remote {
		c -= 't' - 'r' // t→r, T→R
	}
	b = append(b, c)
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexDigits[(f.ID>>(4*uint(i)))&0xf])
	}
	b = append(b, byte('0'+len(f.Data)))
	if !f.Remote {
		for _, x := range f.Data {
			b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
		}
	}
	return append(b, '\r'), nil
}

// ParseSlcanLine parses one line from an adapter, without its CR. ok is
// false for lines that are not frames: command acknowledgements (empty,
// "z", "Z") and answers to V, v, N and F. A frame line that breaks the
// format, and any other line, is an error wrapping ErrBadLine.
func ParseSlcanLine(line []byte) (f Frame, ok bool, err error) {
	if len(line) == 0 {
		return f, false, nil
	}
	digits := 3
	switch line[0] {
	case 't', 'r':
	case 'T', 'R':
		digits = 8
		f.Extended = true
	case 'z', 'Z', 'V', 'v', 'N', 'F':
		return f, false, nil
	case 'd', 'D', 'b', 'B':
		return f, false, fmt.Errorf("%w: %q is a CAN FD frame; the slcan transport takes classic frames only", ErrBadLine, clip(line))
	default:
		return f, false, fmt.Errorf("%w: %q", ErrBadLine, clip(line))
	}
	f.Remote = line[0] == 'r' || line[0] == 'R'
	if len(line) < 1+digits+1 {
		return Frame{}, false, fmt.Errorf("%w: %q is too short", ErrBadLine, clip(line))
	}
	var id uint32
	for _, c := range line[1 : 1+digits] {
		v, good := unhex(c)
		if !good {
			return Frame{}, false, fmt.Errorf("%w: %q: id is not hex", ErrBadLine, clip(line))
		}
		id = id<<4 | uint32(v)
	}
	if (!f.Extended && id > MaxStandardID) || id > MaxExtendedID {
		return Frame{}, false, fmt.Errorf("%w: %q: id %#x out of range", ErrBadLine, clip(line), id)
	}
	f.ID = id
	dlc := int(line[1+digits]) - '0'
	if dlc < 0 || dlc > MaxClassicLen {
		return Frame{}, false, fmt.Errorf("%w: %q: length %q is not 0-8", ErrBadLine, clip(line), line[1+digits])
	}
	rest := line[2+digits:]
	data := 2 * dlc
	if f.Remote {
		data = 0
	}
	// Data, then an optional 4-digit timestamp.
	if len(rest) != data && len(rest) != data+4 {
		return Frame{}, false, fmt.Errorf("%w: %q: want %d data digits for length %d, got %d", ErrBadLine, clip(line), data, dlc, len(rest))
	}
	f.Data = make([]byte, dlc)
	for i := 0; i < data/2; i++ {
		hi, ok1 := unhex(rest[2*i])
		lo, ok2 := unhex(rest[2*i+1])
		if !ok1 || !ok2 {
			return Frame{}, false, fmt.Errorf("%w: %q: data is not hex", ErrBadLine, clip(line))
		}
		f.Data[i] = hi<<4 | lo
	}
	for _, c := range rest[data:] {
		if _, good := unhex(c); !good {
			return Frame{}, false, fmt.Errorf("%w: %q: timestamp is not hex", ErrBadLine, clip(line))
		}
	}
	return f, true, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// clip keeps error messages short when a line is garbage.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// SlcanBus is an open slcan adapter: it implements Bus over any byte
// stream (a serial port, or a pty in tests). Recv is for one goroutine;
// Send may be called concurrently with it and with itself.
type SlcanBus struct {
	name string
	rw   io.ReadWriteCloser

	wmu  sync.Mutex
	wbuf []byte

	rbuf []byte    // Recv only: bytes read, not yet parsed
	rd   [128]byte // Recv only

	closeOnce sync.Once
	closed    atomic.Bool
	bells     atomic.Uint64
}

// NewSlcanBus wraps rw, an adapter's byte stream, named name in errors. It
// sends nothing; Open does the init sequence.
func NewSlcanBus(name string, rw io.ReadWriteCloser) *SlcanBus {
	return &SlcanBus{name: name, rw: rw, rbuf: make([]byte, 0, 2*slcanMaxLine)}
}

// Open configures the adapter and opens the CAN channel: C (in case a
// previous run left it open; refused harmlessly otherwise), S<n> when
// bitrate is non-zero, then O, or L when listenOnly. Like python-can it does
// not wait for the acknowledgements: many clones do not send them.
func (b *SlcanBus) Open(ctx context.Context, bitrate int, listenOnly bool) error {
	cmds := "C\r"
	if bitrate != 0 {
		code, ok := slcanBitrates[bitrate]
		if !ok {
			return fmt.Errorf("slcan %s: %d is not an slcan bitrate (want one of: %s)", b.name, bitrate, slcanBitrateList())
		}
		cmds += code + "\r"
	}
	if listenOnly {
		cmds += "L\r"
	} else {
		cmds += "O\r"
	}
	if err := b.write(ctx, []byte(cmds)); err != nil {
		return fmt.Errorf("slcan %s: open channel: %w", b.name, err)
	}
	return nil
}

// Recv returns the next frame. Errors wrapping ErrBadLine are about one line
// and the bus is still usable; any other error means the adapter is gone.
// Close unblocks a waiting Recv.
func (b *SlcanBus) Recv(ctx context.Context) (Frame, error) {
	for {
		if i := lineEnd(b.rbuf); i >= 0 {
			line, term := b.rbuf[:i], b.rbuf[i]
			f, ok, err := ParseSlcanLine(trimLF(line))
			b.consume(i + 1)
			if term == '\a' {
				// A refused command (for example C on a closed channel) or
				// a failed transmit; adapters say no more than that.
				b.bells.Add(1)
				continue
			}
			if err != nil || ok {
				return f, err
			}
			continue
		}
		if len(b.rbuf) >= slcanMaxLine {
			garbage := clip(b.rbuf)
			b.rbuf = b.rbuf[:0]
			return Frame{}, fmt.Errorf("%w: %q: no CR within %d bytes (wrong ttyBaudrate?)", ErrBadLine, garbage, slcanMaxLine)
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		n, err := b.rw.Read(b.rd[:])
		b.rbuf = append(b.rbuf, b.rd[:n]...)
		if err != nil && n == 0 {
			if b.closed.Load() {
				return Frame{}, ErrClosed
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, fmt.Errorf("slcan %s: read: %w", b.name, err)
		}
	}
}

func lineEnd(b []byte) int {
	for i, c := range b {
		if c == '\r' || c == '\a' {
			return i
		}
	}
	return -1
}

// trimLF drops the LF some adapters send after CR.
func trimLF(b []byte) []byte {
	for len(b) > 0 && b[0] == '\n' {
		b = b[1:]
	}
	return b
}

func (b *SlcanBus) consume(n int) {
	m := copy(b.rbuf, b.rbuf[n:])
	b.rbuf = b.rbuf[:m]
}

// Send transmits f as one line. CAN FD frames are refused (ErrFDUnsupported).
func (b *SlcanBus) Send(ctx context.Context, f Frame) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	line, err := AppendSlcan(b.wbuf[:0], f)
	if err != nil {
		return fmt.Errorf("slcan %s: %w", b.name, err)
	}
	b.wbuf = line
	if err := b.writeLocked(ctx, line); err != nil {
		return fmt.Errorf("slcan %s: send %v: %w", b.name, f, err)
	}
	return nil
}

// Bells counts BELL answers: refused commands and failed transmits.
func (b *SlcanBus) Bells() uint64 { return b.bells.Load() }

func (b *SlcanBus) write(ctx context.Context, p []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.writeLocked(ctx, p)
}

// slcanWriteTimeout bounds a write when the caller gives no deadline: a
// serial line that takes no bytes for that long is stuck.
const slcanWriteTimeout = 2 * time.Second

func (b *SlcanBus) writeLocked(ctx context.Context, p []byte) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if d, ok := b.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		dl, has := ctx.Deadline()
		if !has {
			dl = time.Now().Add(slcanWriteTimeout)
		}
		// Not every file supports deadlines; then the write just blocks.
		_ = d.SetWriteDeadline(dl)
	}
	_, err := b.rw.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: serial write timed out", err)
	}
	return err
}

// Close sends C (best effort, so the adapter stops sending) and closes the
// stream, which unblocks Recv. Idempotent.
func (b *SlcanBus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = b.write(ctx, []byte("C\r"))
		cancel()
		b.closed.Store(true)
		err = b.rw.Close()
	})
	return err
}

var _ Bus = (*SlcanBus)(nil)
