package can

import (
	"errors"
	"fmt"
)

// Identifier limits.
const (
	MaxStandardID = 0x7FF
	MaxExtendedID = 0x1FFFFFFF
	// MaxClassicLen is the payload limit of a classic CAN frame.
	MaxClassicLen = 8
	// MaxFDLen is the payload limit of a CAN FD frame.
	MaxFDLen = 64
)

// Sentinel errors.
var (
	// ErrFDUnsupported is returned when a CAN FD frame would be sent on a
	// transport that only carries classic frames (brutella/can has no FD).
	ErrFDUnsupported = errors.New("CAN FD frames are not supported by this transport")
	// ErrClosed is returned by a closed endpoint.
	ErrClosed = errors.New("can: endpoint closed")
	// ErrInvalidFrame marks a frame that breaks the CAN limits.
	ErrInvalidFrame = errors.New("invalid CAN frame")
	// ErrConvert marks a failed uplink or downlink conversion.
	ErrConvert = errors.New("can conversion failed")
)

// Frame is one CAN or CAN FD frame. It is the package's own type so the
// converters and the virtual bus do not depend on a transport library; the
// SocketCAN transport converts to brutella/can's Frame (classic only).
type Frame struct {
	ID       uint32
	Extended bool
	FD       bool
	// BRS is the CAN FD bit-rate switch flag.
	BRS bool
	// Remote marks a remote transmission request. A remote frame carries no
	// data; its requested length (DLC) is len(Data) and the bytes are zero.
	Remote bool
	Data   []byte
}

func (f Frame) String() string {
	kind := "std"
	if f.Extended {
		kind = "ext"
	}
	if f.FD {
		kind += ",fd"
		if f.BRS {
			kind += ",brs"
		}
	}
	if f.Remote {
		return fmt.Sprintf("%#x[%s,rtr] dlc %d", f.ID, kind, len(f.Data))
	}
	return fmt.Sprintf("%#x[%s] % x", f.ID, kind, f.Data)
}

var fdLens = [...]int{12, 16, 20, 24, 32, 48, 64}

// Validate checks the identifier range for the frame format and the payload
// length (at most 8 bytes classic, or a CAN FD length up to 64).
func (f Frame) Validate() error {
	if f.Extended && f.ID > MaxExtendedID {
		return fmt.Errorf("%w: extended id %#x exceeds %#x", ErrInvalidFrame, f.ID, MaxExtendedID)
	}
	if !f.Extended && f.ID > MaxStandardID {
		return fmt.Errorf("%w: standard id %#x exceeds %#x (set isExtendedId)", ErrInvalidFrame, f.ID, MaxStandardID)
	}
	if f.BRS && !f.FD {
		return fmt.Errorf("%w: bitrateSwitch needs an FD frame", ErrInvalidFrame)
	}
	if f.Remote && f.FD {
		return fmt.Errorf("%w: CAN FD has no remote frames", ErrInvalidFrame)
	}
	return checkLen(len(f.Data), f.FD)
}

func checkLen(n int, fd bool) error {
	if n <= MaxClassicLen {
		return nil
	}
	if !fd {
		return fmt.Errorf("%w: %d data bytes, a classic frame carries at most %d", ErrInvalidFrame, n, MaxClassicLen)
	}
	for _, l := range fdLens {
		if n == l {
			return nil
		}
	}
	return fmt.Errorf("%w: %d data bytes is not a CAN FD length (0-8, 12, 16, 20, 24, 32, 48, 64)", ErrInvalidFrame, n)
}

// fitLen checks a payload length; an FD payload of up to 64 bytes that is not
// a CAN FD length is padded with zeros to the next one (padded is its
// length before, 0 when unchanged), as a CAN FD controller transmits it.
func fitLen(b []byte, fd bool) (_ []byte, padded int, _ error) {
	if fd && len(b) > MaxClassicLen && len(b) <= MaxFDLen && checkLen(len(b), fd) != nil {
		for _, l := range fdLens {
			if l > len(b) {
				n := len(b)
				return append(b, make([]byte, l-n)...), n, nil
			}
		}
	}
	return b, 0, checkLen(len(b), fd)
}

// CheckClassic validates f and refuses CAN FD frames with ErrFDUnsupported.
// Transports without FD (SocketCAN through brutella/can, slcan) call it before
// sending, so an isFd key is refused rather than mis-sent as a classic frame.
func CheckClassic(f Frame) error {
	if f.FD {
		return fmt.Errorf("frame %#x: %w (isFd is set; SocketCAN via brutella/can and slcan send classic frames only)", f.ID, ErrFDUnsupported)
	}
	return f.Validate()
}
