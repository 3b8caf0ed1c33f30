package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/industryos/gateway/protocols"
)

// ErrNoRPC is a reply for a request id the device was not asked (or that
// timed out already).
var ErrNoRPC = errors.New("no pending rpc with this id")

// hub is the downlink: what the platform sends to local devices waits here
// until the device's MQTT session or HTTP long poll takes it.
type hub struct {
	sink   atomic.Pointer[sinkBox]
	mqtt   atomic.Pointer[mqttServer]
	byName map[string]*devState
}

type sinkBox struct{ protocols.Sink }

// devState is one configured device's downlink.
type devState struct {
	dev *Device
	// prefix keeps the device's MQTT subscriptions apart from every other
	// device's: all devices use the same v1/devices/me/* names, so the
	// broker stores them under this prefix and strips it on the way out.
	prefix string

	// pollers counts HTTP long polls waiting (for tests and the log).
	pollers atomic.Int32

	mu      sync.Mutex
	pending map[int64]*pendingRPC
	queue   []*pendingRPC // not yet taken by the device
	updates [][]byte      // attribute updates for an HTTP long poll (no MQTT subscription)
	wake    chan struct{} // closed when queue or updates grow

	// observers are the device's CoAP observations, by resource.
	observers [numObserved][]*observer
}

// What a CoAP device can observe.
type observed int

const (
	observeAttributes observed = iota
	observeRPC
	numObserved
)

// observer is one CoAP observation: notify sends a confirmable
// notification and returns once the device acknowledged it (an error: the
// device is gone, the observation is dropped).
type observer struct {
	notify func(payload []byte) error
}

// observe registers o; the returned func removes it.
func (st *devState) observe(what observed, o *observer) func() {
	st.mu.Lock()
	st.observers[what] = append(st.observers[what], o)
	st.mu.Unlock()
	return func() { st.unobserve(what, o) }
}

func (st *devState) unobserve(what observed, o *observer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	obs := st.observers[what]
	for i, q := range obs {
		if q == o {
			st.observers[what] = append(obs[:i:i], obs[i+1:]...)
			return
		}
	}
}

// notifyObservers hands payload to the newest observation that takes it;
// false when none did (observations that failed are dropped).
func (st *devState) notifyObservers(what observed, payload []byte) bool {
	for {
		st.mu.Lock()
		obs := st.observers[what]
		var o *observer
		if len(obs) > 0 {
			o = obs[len(obs)-1]
		}
		st.mu.Unlock()
		if o == nil {
			return false
		}
		if o.notify(payload) == nil {
			return true
		}
		st.unobserve(what, o)
	}
}

func (st *devState) observing(what observed) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.observers[what]) > 0
}

// pendingRPC is a server-side RPC waiting for the device's reply.
type pendingRPC struct {
	req   protocols.RPCRequest
	reply chan json.RawMessage // buffered 1
}

func newHub(devices []*Device) *hub {
	h := &hub{byName: map[string]*devState{}}
	for i, d := range devices {
		h.byName[d.Name] = &devState{dev: d, prefix: topicPrefix + strconv.Itoa(i) + "/",
			pending: map[int64]*pendingRPC{}, wake: make(chan struct{})}
	}
	return h
}

func (h *hub) attach(s protocols.Sink) { h.sink.Store(&sinkBox{s}) }

func (h *hub) setMQTT(s *mqttServer) { h.mqtt.Store(s) }

func (h *hub) state(d *Device) *devState { return h.byName[d.Name] }

// commander is the Commander of a configured device; nil for any other.
func (h *hub) commander(name string) protocols.Commander {
	st := h.byName[name]
	if st == nil {
		return nil
	}
	return &commander{h: h, st: st}
}

type commander struct {
	h  *hub
	st *devState
}

// RPC hands the request to the device (its MQTT session when it is
// subscribed, else the next HTTP long poll) and waits for its reply until
// ctx ends (the request's timeout).
func (c *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	st := c.st
	p := &pendingRPC{req: req, reply: make(chan json.RawMessage, 1)}
	st.mu.Lock()
	st.pending[req.ID] = p
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		if st.pending[req.ID] == p {
			delete(st.pending, req.ID)
		}
		st.dequeue(p)
		st.mu.Unlock()
	}()
	if !c.h.deliverRPC(st, p) {
		st.mu.Lock()
		st.queue = append(st.queue, p)
		st.wakeLocked()
		st.mu.Unlock()
	}
	select {
	case r := <-p.reply:
		return protocols.RPCResult(r), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("device %q did not reply to rpc %d (%s): %w", st.dev.Name, req.ID, req.Method, ctx.Err())
	}
}

// deliverRPC hands a request to a subscribed MQTT session or a CoAP
// observation of the device's rpc; false when neither took it.
func (h *hub) deliverRPC(st *devState, p *pendingRPC) bool {
	if m := h.mqtt.Load(); m != nil && m.deliverRPC(st, p) {
		return true
	}
	return st.notifyObservers(observeRPC, rpcRequestPayload(p.req))
}

// maxUpdates bounds the attribute updates kept for a device's next HTTP
// long poll; older ones are dropped (counted).
const maxUpdates = 16

// UpdateAttributes pushes the shared attributes to the device's MQTT
// session (v1/devices/me/attributes) when it is subscribed, else keeps
// them for its next GET /attributes/updates. Every key goes to the device.
func (c *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	payload, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("device %q: attribute update: %w", c.st.dev.Name, err)
	}
	if m := c.h.mqtt.Load(); m != nil && m.subscribed(c.st, topicAttributes) {
		return nil, m.publish(c.st, topicAttributes, payload)
	}
	st := c.st
	if st.observing(observeAttributes) {
		// A CoAP notification waits for the device's ACK: not on the
		// caller's goroutine. One no observation takes is kept.
		go func() {
			if !st.notifyObservers(observeAttributes, payload) {
				c.h.keepUpdate(st, payload)
			}
		}()
		return nil, nil
	}
	c.h.keepUpdate(st, payload)
	return nil, nil
}

// keepUpdate keeps an attribute update for the device's next poll,
// subscription or observation.
func (h *hub) keepUpdate(st *devState, payload []byte) {
	st.mu.Lock()
	st.updates = append(st.updates, payload)
	dropped := 0
	if len(st.updates) > maxUpdates {
		dropped = len(st.updates) - maxUpdates
		st.updates = append(st.updates[:0], st.updates[dropped:]...)
	}
	st.wakeLocked()
	st.mu.Unlock()
	if b := h.sink.Load(); dropped > 0 && b != nil {
		b.Dropped("attribute updates of "+st.dev.Name, dropped, fmt.Errorf("more than %d updates waiting for the device's poll", maxUpdates))
	}
}

func (st *devState) wakeLocked() {
	close(st.wake)
	st.wake = make(chan struct{})
}

// pollUpdate waits for an attribute update (an HTTP long poll) until ctx ends.
func (st *devState) pollUpdate(ctx context.Context) ([]byte, bool) {
	return popOrWait(ctx, st, &st.updates)
}

// popOrWait takes the first element of one of the device's lists (held
// under st.mu), waiting for it to grow (st.wake) until ctx ends.
func popOrWait[T any](ctx context.Context, st *devState, list *[]T) (T, bool) {
	for {
		st.mu.Lock()
		if len(*list) > 0 {
			v := (*list)[0]
			*list = (*list)[1:]
			st.mu.Unlock()
			return v, true
		}
		wake := st.wake
		st.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			var zero T
			return zero, false
		}
	}
}

// SharedAttributeKeys: a local device asks for its attributes itself.
func (c *commander) SharedAttributeKeys() []string { return nil }

func (st *devState) dequeue(p *pendingRPC) {
	for i, q := range st.queue {
		if q == p {
			st.queue = append(st.queue[:i], st.queue[i+1:]...)
			return
		}
	}
}

// flush sends what waited for the device to its new CoAP observation
// (what it does not take waits on).
func (h *hub) flush(st *devState, what observed) {
	if what == observeRPC {
		for _, p := range st.takeQueued() {
			if !h.deliverRPC(st, p) {
				st.requeue(p)
			}
		}
		return
	}
	for _, u := range st.takeUpdates() {
		if !st.notifyObservers(observeAttributes, u) {
			h.keepUpdate(st, u)
		}
	}
}

// requeue puts back a request no transport took.
func (st *devState) requeue(p *pendingRPC) {
	st.mu.Lock()
	st.queue = append(st.queue, p)
	st.wakeLocked()
	st.mu.Unlock()
}

// takeUpdates removes and returns the kept attribute updates.
func (st *devState) takeUpdates() [][]byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	u := st.updates
	st.updates = nil
	return u
}

// takeQueued removes and returns the queued requests (for an MQTT session
// that just subscribed).
func (st *devState) takeQueued() []*pendingRPC {
	st.mu.Lock()
	defer st.mu.Unlock()
	q := st.queue
	st.queue = nil
	return q
}

// poll waits for a request for the device (an HTTP long poll) until ctx ends.
func (st *devState) poll(ctx context.Context) (*pendingRPC, bool) {
	st.pollers.Add(1)
	defer st.pollers.Add(-1)
	return popOrWait(ctx, st, &st.queue)
}

// reply hands the device's reply to the waiting request. A payload that
// is not JSON is sent to the platform as a JSON string.
func (st *devState) reply(id int64, payload []byte) error {
	st.mu.Lock()
	p := st.pending[id]
	delete(st.pending, id)
	st.mu.Unlock()
	if p == nil {
		return fmt.Errorf("device %q: rpc %d: %w", st.dev.Name, id, ErrNoRPC)
	}
	raw := json.RawMessage(payload)
	if len(payload) == 0 || !json.Valid(payload) {
		raw, _ = json.Marshal(string(payload))
	}
	select {
	case p.reply <- raw:
	default:
	}
	return nil
}

// rpcRequestPayload is what the device receives: the platform's shape.
func rpcRequestPayload(req protocols.RPCRequest) []byte {
	b, _ := json.Marshal(struct {
		ID     int64           `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params,omitempty"`
	}{req.ID, req.Method, req.Params})
	return b
}

// clientRPC answers a device's client-side RPC. The platform's gateway API
// has no client-side RPC for gateway devices, so the gateway answers the
// platform's common time request itself and refuses other methods.
func clientRPC(payload []byte, now time.Time) []byte {
	var call rpcCall
	if err := json.Unmarshal(payload, &call); err != nil || call.Method == "" {
		return errorBody("client-side rpc: expected {\"method\":...,\"params\":...}")
	}
	if call.Method == "getCurrentTime" {
		return []byte(strconv.FormatInt(now.UnixMilli(), 10))
	}
	return errorBody(fmt.Sprintf("client-side rpc method %q is not available through the gateway", call.Method))
}

func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}
