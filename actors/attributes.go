package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols/platform"
)

// AttributeRequestTimeout is how long an attribute request waits for the
// platform, as upstream does.
const AttributeRequestTimeout = 20 * time.Second

// ErrAttributeTimeout is returned when the platform does not answer an
// attribute request in time.
var ErrAttributeTimeout = errors.New("attribute request timed out")

type pendingAttr struct {
	keys []string
	ch   chan map[string]json.RawMessage
}

// attrRequests correlates v1/gateway/attributes/request ids with responses.
type attrRequests struct {
	mu      sync.Mutex
	next    int64
	pending map[int64]*pendingAttr
}

// RequestAttributes asks the platform for a device's shared (client=false)
// or client attributes and waits for the answer (at most 20 s or ctx).
func (g *Gateway) RequestAttributes(ctx context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error) {
	if len(keys) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, AttributeRequestTimeout)
	defer cancel()
	a := &g.attrs
	a.mu.Lock()
	if a.pending == nil {
		a.pending = map[int64]*pendingAttr{}
	}
	a.next++
	id := a.next
	p := &pendingAttr{keys: keys, ch: make(chan map[string]json.RawMessage, 1)}
	a.pending[id] = p
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
	}()
	platformName := g.renames.toPlatform(device)
	// Devices usually connect before the platform session is up at start;
	// waiting for it (within the 20 s) keeps the request from being lost.
	if err := g.PublishWhenUp(ctx, platform.TopicAttributesRequest, platform.AttributeRequestPayload(id, platformName, client, keys), 1); err != nil {
		return nil, fmt.Errorf("attribute request for %q: %w", device, err)
	}
	select {
	case v := <-p.ch:
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("attribute request %d for %q (%v): %w", id, device, keys, ErrAttributeTimeout)
	}
}

// respond hands an attribute response to its request. waiting is false
// when no request waits for id (late or duplicate); err is a malformed
// response.
func (a *attrRequests) respond(payload []byte) (id int64, waiting bool, err error) {
	resp, err := platform.ParseAttributeResponse(payload, func(id int64) string {
		a.mu.Lock()
		defer a.mu.Unlock()
		if p := a.pending[id]; p != nil && len(p.keys) == 1 {
			return p.keys[0]
		}
		return ""
	})
	if err != nil {
		return 0, false, err
	}
	a.mu.Lock()
	p := a.pending[resp.ID]
	a.mu.Unlock()
	if p == nil {
		return resp.ID, false, nil
	}
	select {
	case p.ch <- resp.Values:
	default:
	}
	return resp.ID, true, nil
}

// syncSharedAttributes requests the shared attributes a device declares and
// applies them, so a device that was offline gets the current setpoints.
func (g *Gateway) syncSharedAttributes(device string, keys []string) {
	if !g.conf().ThingsBoard.SyncSharedAttributes || len(keys) == 0 {
		return
	}
	vals, err := g.RequestAttributes(context.Background(), device, false, keys)
	if err != nil {
		g.log.Debug().Err(err).Str("device", device).Msg("shared attribute sync skipped")
		return
	}
	if len(vals) > 0 {
		g.sys.Root.Send(g.registry, &routeAttributes{upd: platformUpdate(device, vals)})
	}
}
