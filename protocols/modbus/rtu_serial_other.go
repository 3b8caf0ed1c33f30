//go:build !linux

package modbus

import (
	"errors"
	"os"
)

// openSerial: the serial server's tty setup is written for Linux, the only
// platform the gateway ships for.
func openSerial(path string, baud, dataBits, stopBits int, parity string) (*os.File, error) {
	return nil, errors.New("the serial Modbus server runs on Linux only")
}
