//go:build linux

package modbus

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// baudRates are the speeds termios can set.
var baudRates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200,
	230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
}

// openSerial opens a tty in raw mode with the line settings. The file is
// non-blocking underneath, so Go's poller serves it: read deadlines measure
// the line's silences and Close ends a pending read (a blocking tty read
// would hold the server's goroutine past Close).
func openSerial(path string, baud, dataBits, stopBits int, parity string) (*os.File, error) {
	speed, ok := baudRates[baud]
	if !ok {
		return nil, fmt.Errorf("baudrate %d is not a standard rate (want one of 1200 to 921600)", baud)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%s is not a serial line: %w", path, err)
	}
	// Raw mode (cfmakeraw): no line editing, echo, signals or translation.
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CBAUD | unix.CRTSCTS
	t.Cflag |= unix.CREAD | unix.CLOCAL | speed
	switch dataBits {
	case 5:
		t.Cflag |= unix.CS5
	case 6:
		t.Cflag |= unix.CS6
	case 7:
		t.Cflag |= unix.CS7
	default:
		t.Cflag |= unix.CS8
	}
	switch parity {
	case "E":
		t.Cflag |= unix.PARENB
	case "O":
		t.Cflag |= unix.PARENB | unix.PARODD
	}
	if stopBits == 2 {
		t.Cflag |= unix.CSTOPB
	}
	t.Ispeed, t.Ospeed = speed, speed
	// Reads return what has arrived; the deadline bounds the wait.
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("set line settings: %w", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
