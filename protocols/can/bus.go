package can

import (
	"context"
	"fmt"
)

// Bus is one open CAN transport: the virtual bus, SocketCAN or an slcan
// adapter. Recv is called from one goroutine at a time; Send may be called
// concurrently with Recv and with itself. Close unblocks a pending Recv and
// is idempotent.
type Bus interface {
	// Recv returns the next frame received. An error wrapping ErrBadLine
	// concerns one piece of input and the bus is still usable; any other
	// error means the bus is lost and must be re-opened.
	Recv(ctx context.Context) (Frame, error)
	// Send transmits f. Transports without CAN FD refuse FD frames with an
	// error wrapping ErrFDUnsupported rather than sending them as classic.
	Send(ctx context.Context, f Frame) error
	Close() error
}

// Opener opens the configured bus. The connector calls it on start and
// again, every reconnectPeriod, after the bus is lost.
type Opener func(ctx context.Context) (Bus, error)

// OpenBus opens the transport cfg names.
func OpenBus(ctx context.Context, cfg *Config) (Bus, error) {
	switch cfg.Interface {
	case "virtual":
		return VirtualBus{NewVirtualBus(cfg.Channel)}, nil
	case "socketcan":
		b, err := OpenSocketCAN(cfg.Channel)
		if err != nil {
			return nil, err
		}
		return b, nil
	case "slcan":
		f, err := openSerial(cfg.Slcan.Path, cfg.Slcan.TTYBaudrate)
		if err != nil {
			return nil, fmt.Errorf("slcan: %w", err)
		}
		b := NewSlcanBus(cfg.Slcan.Path, f)
		if err := b.Open(ctx, cfg.Slcan.Bitrate, cfg.Slcan.ListenOnly); err != nil {
			b.Close()
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("can: unknown interface %q", cfg.Interface)
}

// VirtualBus is a VirtualEndpoint seen as a Bus.
type VirtualBus struct{ *VirtualEndpoint }

// Send delivers f to the other endpoints on the channel; it never blocks.
func (v VirtualBus) Send(_ context.Context, f Frame) error { return v.VirtualEndpoint.Send(f) }

var _ Bus = VirtualBus{}
