package can

import (
	"context"
	"sync"
	"sync/atomic"
)

// DefaultVirtualQueue is the per-endpoint receive queue of the virtual bus.
const DefaultVirtualQueue = 1024

// virtualChannels is the process-wide registry of virtual channels, like
// python-can's virtual interface: endpoints opened on the same channel name
// see each other's frames.
var virtualChannels = struct {
	sync.Mutex
	m map[string]*virtualChannel
}{m: map[string]*virtualChannel{}}

type virtualChannel struct {
	name string
	mu   sync.RWMutex
	eps  map[*VirtualEndpoint]struct{}
}

// VirtualEndpoint is one attachment to an in-memory CAN channel. Frames it
// sends reach every other endpoint on the channel, never itself. Delivery
// never blocks the sender: when a receiver's queue is full the frame is
// dropped for that receiver and counted. Safe for concurrent use.
type VirtualEndpoint struct {
	ch      *virtualChannel
	rx      chan Frame
	once    sync.Once
	closed  atomic.Bool
	dropped atomic.Uint64
	sent    atomic.Uint64
}

// VirtualOption configures NewVirtualBus.
type VirtualOption func(*virtualOpts)

type virtualOpts struct{ queue int }

// WithQueue sets the endpoint's receive queue length (default DefaultVirtualQueue).
func WithQueue(n int) VirtualOption {
	return func(o *virtualOpts) {
		if n > 0 {
			o.queue = n
		}
	}
}

// NewVirtualBus attaches a new endpoint to the virtual channel named channel,
// creating the channel on first use.
func NewVirtualBus(channel string, opts ...VirtualOption) *VirtualEndpoint {
	o := virtualOpts{queue: DefaultVirtualQueue}
	for _, f := range opts {
		f(&o)
	}
	virtualChannels.Lock()
	defer virtualChannels.Unlock()
	ch := virtualChannels.m[channel]
	if ch == nil {
		ch = &virtualChannel{name: channel, eps: map[*VirtualEndpoint]struct{}{}}
		virtualChannels.m[channel] = ch
	}
	e := &VirtualEndpoint{ch: ch, rx: make(chan Frame, o.queue)}
	ch.mu.Lock()
	ch.eps[e] = struct{}{}
	ch.mu.Unlock()
	return e
}

// Channel is the channel name.
func (e *VirtualEndpoint) Channel() string { return e.ch.name }

// Send validates f and delivers a copy to every other endpoint on the channel.
// CAN FD frames are carried (the virtual bus is not limited like brutella/can).
func (e *VirtualEndpoint) Send(f Frame) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := f.Validate(); err != nil {
		return err
	}
	e.ch.mu.RLock()
	defer e.ch.mu.RUnlock()
	for other := range e.ch.eps {
		if other == e {
			continue
		}
		g := f
		g.Data = append(make([]byte, 0, len(f.Data)), f.Data...)
		select {
		case other.rx <- g:
		default:
			other.dropped.Add(1)
		}
	}
	e.sent.Add(1)
	return nil
}

// C is the receive queue; it is closed by Close.
func (e *VirtualEndpoint) C() <-chan Frame { return e.rx }

// Recv waits for the next frame, ctx's end or Close.
func (e *VirtualEndpoint) Recv(ctx context.Context) (Frame, error) {
	select {
	case f, ok := <-e.rx:
		if !ok {
			return Frame{}, ErrClosed
		}
		return f, nil
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Dropped counts frames dropped because this endpoint's queue was full.
func (e *VirtualEndpoint) Dropped() uint64 { return e.dropped.Load() }

// Sent counts frames this endpoint sent.
func (e *VirtualEndpoint) Sent() uint64 { return e.sent.Load() }

// Close detaches the endpoint and closes its receive queue; the channel is
// forgotten when its last endpoint closes. Close is idempotent.
func (e *VirtualEndpoint) Close() error {
	e.once.Do(func() {
		e.closed.Store(true)
		virtualChannels.Lock()
		e.ch.mu.Lock()
		delete(e.ch.eps, e)
		if len(e.ch.eps) == 0 && virtualChannels.m[e.ch.name] == e.ch {
			delete(virtualChannels.m, e.ch.name)
		}
		e.ch.mu.Unlock()
		virtualChannels.Unlock()
		// No sender holds the channel lock now, so none can write to rx.
		close(e.rx)
	})
	return nil
}
