package localapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Type is the registered type of the local API's push source. It is not a
// connector type of the connectors list: the main file's localApi section
// configures it.
const Type = "localapi"

func init() {
	protocols.Register(Type, protocols.FactoryOf(NewConnector))
}

// Connector is the local API: its listeners, its devices' credentials and
// the downlink waiting for them. It has no polled devices; Run serves.
type Connector struct {
	name string
	cfg  *Config
	log  zerolog.Logger
	auth *authenticator
	hub  *hub

	mu    sync.Mutex
	addrs map[string]string // transport → bound address, once listening
	ready chan struct{}     // closed when every enabled listener is bound
}

// NewConnector parses the section (cfg.Config) and prepares; it does no I/O.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	dir := "."
	if cfg.File != "" {
		dir = filepath.Dir(cfg.File)
	}
	parsed, name, err := protocols.Open(cfg, Type, func(o *spec.Obj) (*Config, string) {
		return Parse(o, dir), Section
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, cfg: parsed, log: cfg.Logger, auth: newAuthenticator(parsed.Devices),
		addrs: map[string]string{}, ready: make(chan struct{})}
	c.hub = newHub(parsed.Devices)
	return c, nil
}

// Enabled reports whether any transport is on; the config loader leaves a
// section with none out of the running connectors.
func (c *Connector) Enabled() bool { return c.cfg.Enabled() }

// Summary is what `iotgw check` prints: the listeners and the devices.
func (c *Connector) Summary() string {
	var on []string
	for _, t := range []struct {
		name string
		t    Transport
	}{{"mqtt", c.cfg.MQTT}, {"http", c.cfg.HTTP}, {"coap", c.cfg.CoAP}} {
		if t.t.Enabled {
			s := t.name + " " + t.t.Address
			if t.t.TLS() {
				s += " (TLS)"
			}
			on = append(on, s)
		}
	}
	return fmt.Sprintf("local device API on %s; %d devices", strings.Join(on, ", "), len(c.cfg.Devices))
}

// Config is the parsed section.
func (c *Connector) Config() *Config { return c.cfg }

// Devices: none are polled.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close releases nothing: Run owns the listeners.
func (c *Connector) Close() error { return nil }

// Addr returns the address a transport ("mqtt", "http", "coap") listens on, once
// Ready is closed: with port 0 configured it is the port picked.
func (c *Connector) Addr(transport string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[transport]
}

// Ready is closed when every enabled listener is bound.
func (c *Connector) Ready() <-chan struct{} { return c.ready }

func (c *Connector) setAddr(transport, addr string) {
	c.mu.Lock()
	c.addrs[transport] = addr
	c.mu.Unlock()
}

// Run serves the enabled transports until ctx ends. A listener that cannot
// bind is reported as a link down and retried with backoff, so a port held
// by another process at start does not stop the rest of the gateway.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	c.hub.attach(sink)
	var mq *mqttServer
	var hs *http.Server
	var cs *coapServer
	delay := time.Second
	for {
		err := c.listen(ctx, sink, &mq, &hs, &cs)
		if err == nil {
			break
		}
		sink.Link(false, err)
		select {
		case <-ctx.Done():
			c.shutdown(mq, hs, cs)
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
	close(c.ready)
	sink.Link(true, nil)
	<-ctx.Done()
	c.shutdown(mq, hs, cs)
	return nil
}

// listen binds the transports not bound yet.
func (c *Connector) listen(ctx context.Context, sink protocols.Sink, mq **mqttServer, hs **http.Server, cs **coapServer) error {
	if c.cfg.MQTT.Enabled && *mq == nil {
		s, err := startMQTT(ctx, c, sink)
		if err != nil {
			return fmt.Errorf("local api: mqtt on %s: %w", c.cfg.MQTT.Address, err)
		}
		*mq = s
		c.setAddr("mqtt", s.addr)
		c.hub.setMQTT(s)
	}
	if c.cfg.HTTP.Enabled && *hs == nil {
		s, addr, err := startHTTP(ctx, c, sink)
		if err != nil {
			return fmt.Errorf("local api: http on %s: %w", c.cfg.HTTP.Address, err)
		}
		*hs = s
		c.setAddr("http", addr)
	}
	if c.cfg.CoAP.Enabled && *cs == nil {
		s, err := startCoAP(ctx, c, sink)
		if err != nil {
			return fmt.Errorf("local api: coap on %s: %w", c.cfg.CoAP.Address, err)
		}
		*cs = s
		c.setAddr("coap", s.addr)
	}
	return nil
}

func (c *Connector) shutdown(mq *mqttServer, hs *http.Server, cs *coapServer) {
	if cs != nil {
		cs.close()
	}
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			c.log.Debug().Err(err).Msg("local api: http shutdown")
		}
		cancel()
		_ = hs.Close()
	}
	if mq != nil {
		c.hub.setMQTT(nil)
		mq.close()
	}
}

// Commander gives the runtime the downlink of a local device.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	return c.hub.commander(device)
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
)
