package opcua

import (
	"context"
	"errors"
	"sync"

	"github.com/industryos/gateway/protocols"
)

// ErrBacklog is reported through Sink.Dropped when the sink is so far
// behind that queued values were replaced by newer values of the same key.
var ErrBacklog = errors.New("opcua: sink backlog, values superseded")

// handoff sits between gopcua's publish loop and Sink.Push. gopcua sends
// notifications with a blocking send from the one goroutine that also
// sends every PublishRequest, so a consumer blocked in Sink.Push would
// starve every subscription of the client until the server expires them.
// The consumer therefore never blocks here: it queues up to max values;
// beyond that it folds the new values into the device's newest queued
// push (newer value per key wins, like an OPC-UA queue of size 1 with
// discardOldest). Memory stays bounded by max plus one push per device,
// and every superseded value is counted and reported, never dropped
// silently. The poller, which owns its loop, blocks instead.
type handoff struct {
	mu         sync.Mutex
	q          []protocols.Push
	base       int            // absolute index of q[0]
	last       map[string]int // device → absolute index of its newest queued push
	values     int
	max        int
	wake       chan struct{}
	space      chan struct{}
	superseded int
}

func newHandoff(max int) *handoff {
	if max < 1 {
		max = 1
	}
	return &handoff{last: map[string]int{}, max: max, wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func size(p *protocols.Push) int { return len(p.Reading.Telemetry) + len(p.Reading.Attributes) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offer queues p without blocking and returns how many queued values were
// superseded to make room.
func (h *handoff) offer(p protocols.Push) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := size(&p)
	if h.values+n > h.max {
		if i, ok := h.last[p.Device]; ok && i >= h.base {
			dst := &h.q[i-h.base]
			before := size(dst)
			dst.Reading.Telemetry, n = merge(dst.Reading.Telemetry, p.Reading.Telemetry)
			superseded := n
			var m int
			dst.Reading.Attributes, m = merge(dst.Reading.Attributes, p.Reading.Attributes)
			superseded += m
			if p.Ts.After(dst.Ts) {
				dst.Ts = p.Ts
			}
			h.values += size(dst) - before
			h.superseded += superseded
			return superseded
		}
	}
	h.q = append(h.q, p)
	h.last[p.Device] = h.base + len(h.q) - 1
	h.values += n
	signal(h.wake)
	return 0
}

// merge folds src into dst; a key present in both takes src's value.
func merge(dst, src []protocols.Datapoint) ([]protocols.Datapoint, int) {
	replaced := 0
	for _, dp := range src {
		found := false
		for i := range dst {
			if dst[i].Key == dp.Key {
				dst[i].Value = dp.Value
				replaced++
				found = true
				break
			}
		}
		if !found {
			dst = append(dst, dp)
		}
	}
	return dst, replaced
}

// put queues p, waiting for room; for producers that may block.
func (h *handoff) put(ctx context.Context, p protocols.Push) error {
	n := size(&p)
	for {
		h.mu.Lock()
		if h.values+n <= h.max || len(h.q) == 0 {
			h.q = append(h.q, p)
			h.last[p.Device] = h.base + len(h.q) - 1
			h.values += n
			h.mu.Unlock()
			signal(h.wake)
			return nil
		}
		h.mu.Unlock()
		select {
		case <-h.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take waits for the oldest push.
func (h *handoff) take(ctx context.Context) (protocols.Push, error) {
	for {
		h.mu.Lock()
		if len(h.q) > 0 {
			p := h.q[0]
			h.q[0] = protocols.Push{}
			h.q = h.q[1:]
			if i, ok := h.last[p.Device]; ok && i == h.base {
				delete(h.last, p.Device)
			}
			h.base++
			h.values -= size(&p)
			if len(h.q) == 0 {
				// Let the backing array go rather than creep forward forever.
				h.q = nil
			}
			h.mu.Unlock()
			signal(h.space)
			return p, nil
		}
		h.mu.Unlock()
		select {
		case <-h.wake:
		case <-ctx.Done():
			return protocols.Push{}, ctx.Err()
		}
	}
}

// pending is the number of queued values.
func (h *handoff) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.values
}
