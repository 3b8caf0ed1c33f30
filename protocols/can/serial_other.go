//go:build !linux

package can

import (
	"errors"
	"os"
)

func openSerial(path string, baud int) (*os.File, error) {
	return nil, errors.New("serial " + path + ": the slcan transport supports Linux serial ports only")
}
