//go:build !linux

package can

import "fmt"

// OpenSocketCAN is Linux only.
func OpenSocketCAN(channel string) (*BrutellaBus, error) {
	return nil, fmt.Errorf("socketcan %s: SocketCAN exists on Linux only", channel)
}
