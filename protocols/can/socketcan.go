package can

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	bcan "github.com/brutella/can"
)

// BrutellaBus is a Bus over brutella/can: SocketCAN (OpenSocketCAN) or any
// message-preserving stream of Linux can_frame structs (net.Pipe in tests).
// brutella/can carries classic frames only, so FD frames are refused.
type BrutellaBus struct {
	name string
	bus  *bcan.Bus
	rx   chan Frame
	// done is closed when brutella's read loop ends; err is why.
	done    chan struct{}
	err     error
	closing chan struct{}
	once    sync.Once
	wmu     sync.Mutex
}

// NewBrutellaBus starts brutella's read loop on rwc, which must keep
// message boundaries (one Write is one Read), as a CAN_RAW socket does.
func NewBrutellaBus(name string, rwc io.ReadWriteCloser) *BrutellaBus {
	b := &BrutellaBus{
		name: name, bus: bcan.NewBus(bcan.NewReadWriteCloser(rwc)),
		rx: make(chan Frame, 64), done: make(chan struct{}), closing: make(chan struct{}),
	}
	// Subscribe before the loop starts: brutella's handler list has no lock.
	b.bus.SubscribeFunc(b.handle)
	go func() {
		err := b.bus.ConnectAndPublish()
		if err == nil {
			err = io.EOF // brutella returns nil when the socket is closed
		}
		b.err = err
		close(b.done)
	}()
	return b
}

// handle runs on brutella's read loop; blocking it here only delays the
// next socket read (the kernel queues meanwhile), and the connector drains
// rx promptly into its own counted queue.
func (b *BrutellaBus) handle(bf bcan.Frame) {
	if bf.ID&bcan.MaskErr != 0 {
		return // error frames are only delivered when enabled; we do not
	}
	f := Frame{Extended: bf.ID&bcan.MaskEff != 0, Remote: bf.ID&bcan.MaskRtr != 0}
	if f.Extended {
		f.ID = bf.ID & bcan.MaskIDEff
	} else {
		f.ID = bf.ID & bcan.MaskIDSff
	}
	n := min(int(bf.Length), MaxClassicLen)
	f.Data = make([]byte, n)
	if !f.Remote {
		copy(f.Data, bf.Data[:n])
	}
	select {
	case b.rx <- f:
	case <-b.closing:
	}
}

// Recv returns the next frame, or the read loop's error once it ended.
func (b *BrutellaBus) Recv(ctx context.Context) (Frame, error) {
	select {
	case f := <-b.rx:
		return f, nil
	case <-b.done:
		select {
		case f := <-b.rx:
			return f, nil
		default:
		}
		select {
		case <-b.closing:
			return Frame{}, ErrClosed
		default:
		}
		return Frame{}, fmt.Errorf("socketcan %s: read: %w", b.name, b.err)
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Send writes f; FD frames are refused with ErrFDUnsupported.
func (b *BrutellaBus) Send(_ context.Context, f Frame) error {
	if err := CheckClassic(f); err != nil {
		return fmt.Errorf("socketcan %s: %w", b.name, err)
	}
	bf := bcan.Frame{ID: f.ID, Length: uint8(len(f.Data))}
	if f.Extended {
		bf.ID |= bcan.MaskEff
	}
	if f.Remote {
		bf.ID |= bcan.MaskRtr
	} else {
		copy(bf.Data[:], f.Data)
	}
	select {
	case <-b.closing:
		return ErrClosed
	default:
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if err := b.bus.Publish(bf); err != nil {
		return fmt.Errorf("socketcan %s: send %v: %w", b.name, f, err)
	}
	return nil
}

// Close closes the socket, which ends the read loop. Idempotent.
func (b *BrutellaBus) Close() error {
	var err error
	b.once.Do(func() {
		close(b.closing)
		err = b.bus.Disconnect()
		if errors.Is(err, io.ErrClosedPipe) {
			err = nil
		}
	})
	return err
}

var _ Bus = (*BrutellaBus)(nil)
