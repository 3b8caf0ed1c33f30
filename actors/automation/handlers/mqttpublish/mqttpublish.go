// Package mqttpublish is the automation handler that publishes to an MQTT
// broker (a local one, a SCADA's). One connection per broker is kept open
// and shared by the actions that publish there.
//
//   - handler: mqtt_publish
//     params:
//     broker: tcp://127.0.0.1:1883
//     topic: plant/alarms/{{device}}
//     payload: {temperature: "{{value}}"}   # JSON; a string is sent as it is
//     qos: 1                                  # 0 or 1, default 1
//     retain: false
//     username: ""                            # optional
//     password: ""
package mqttpublish

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/industryos/gateway/actors/automation/handler"
)

// Name is the handler's name in automation.yaml.
const Name = "mqtt_publish"

func init() { handler.Register(Name, New) }

// Handler publishes to brokers.
type Handler struct {
	env     handler.Env
	mu      sync.Mutex
	clients map[string]paho.Client // by broker and username
}

// New builds the handler.
func New(env handler.Env) handler.Handler {
	return &Handler{env: env, clients: map[string]paho.Client{}}
}

// Validate checks broker, topic, qos and retain.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, "broker", "topic", "payload", "qos", "retain", "username", "password")
	if b, err := handler.String(p, "broker"); err != nil {
		errs = append(errs, err)
	} else if u, err := url.Parse(b); err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt") || u.Host == "" {
		errs = append(errs, fmt.Errorf("params.broker: %q is not tcp://host:port", b))
	}
	if t, err := handler.String(p, "topic"); err != nil {
		errs = append(errs, err)
	} else if strings.ContainsAny(t, "+#") {
		errs = append(errs, fmt.Errorf("params.topic: %q has a wildcard", t))
	}
	if q, ok := p["qos"]; ok && q != 0.0 && q != 1.0 {
		errs = append(errs, fmt.Errorf("params.qos: %v is not 0 or 1", q))
	}
	if r, ok := p["retain"]; ok {
		if _, isBool := r.(bool); !isBool {
			errs = append(errs, fmt.Errorf("params.retain: %v is not true or false", r))
		}
	}
	return errs
}

// Run publishes once and, at QoS 1, waits for the broker's PUBACK.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	broker, err := handler.String(a.Params, "broker")
	if err != nil {
		return handler.Permanent(err)
	}
	topic, err := handler.String(a.Params, "topic")
	if err != nil {
		return handler.Permanent(err)
	}
	var payload []byte
	switch p := a.Params["payload"].(type) {
	case nil:
	case string:
		payload = []byte(p)
	default:
		if payload, err = json.Marshal(p); err != nil {
			return handler.Permanent(fmt.Errorf("params.payload: %w", err))
		}
	}
	qos := byte(1)
	if q, ok := a.Params["qos"].(float64); ok && q == 0 {
		qos = 0
	}
	retain, _ := a.Params["retain"].(bool)
	user, _ := a.Params["username"].(string)
	pass, _ := a.Params["password"].(string)
	c, err := h.client(ctx, broker, user, pass)
	if err != nil {
		return err
	}
	tok := c.Publish(topic, qos, retain, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish to %s on %s: %w", topic, broker, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish to %s on %s: %w", topic, broker, ctx.Err())
	}
}

// client returns the connected client of a broker, connecting it first.
func (h *Handler) client(ctx context.Context, broker, user, pass string) (paho.Client, error) {
	id := broker + "\x00" + user
	h.mu.Lock()
	c := h.clients[id]
	if c == nil {
		o := paho.NewClientOptions().AddBroker(strings.Replace(broker, "mqtt://", "tcp://", 1)).
			SetClientID(fmt.Sprintf("iotgw-automation-%d", time.Now().UnixNano())).
			SetUsername(user).SetPassword(pass).
			SetAutoReconnect(true).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
		c = paho.NewClient(o)
		h.clients[id] = c
	}
	h.mu.Unlock()
	if c.IsConnectionOpen() {
		return c, nil
	}
	tok := c.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", broker, err)
		}
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s: %w", broker, ctx.Err())
	}
}

// Close disconnects from every broker.
func (h *Handler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, c := range h.clients {
		c.Disconnect(250)
		delete(h.clients, id)
	}
	return nil
}

var (
	_ handler.Handler = (*Handler)(nil)
	_ handler.Closer  = (*Handler)(nil)
)
