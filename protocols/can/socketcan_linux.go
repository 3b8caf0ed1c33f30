//go:build linux

package can

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// OpenSocketCAN opens a CAN_RAW socket on the network interface named
// channel (can0, vcan0) and runs brutella/can over it. The socket is made
// here rather than by brutella's NewBusForInterfaceWithName because that one
// ignores the socket() error and makes a blocking fd, whose Read a Close
// cannot interrupt; ours is non-blocking, so Close ends the read loop.
func OpenSocketCAN(channel string) (*BrutellaBus, error) {
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, fmt.Errorf("socketcan %s: socket: %w (does this kernel have CAN support?)", channel, err)
	}
	iface, err := net.InterfaceByName(channel)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("socketcan %s: %w", channel, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: iface.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("socketcan %s: bind: %w", channel, err)
	}
	return NewBrutellaBus(channel, os.NewFile(uintptr(fd), "can:"+channel)), nil
}
