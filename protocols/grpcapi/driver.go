package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/industryos/gateway/protocols"
)

func init() {
	protocols.Register("grpc", protocols.FactoryOf(NewConnector))
	protocols.RegisterService(Section, newService)
}

// Connector is a "grpc" connector of the main file: a key a connector
// process registers with, and the connector file it is handed.
type Connector struct {
	name, key string
	config    string // the connector file as JSON text, sent on registration
	hub       *Hub
}

// NewConnector reads the connector's key (from the main file's entry) and
// its file, which is the process's business: it is passed on unread.
func NewConnector(cc protocols.ConnectorConfig) (*Connector, error) {
	return newConnector(cc, Default)
}

func newConnector(cc protocols.ConnectorConfig, hub *Hub) (*Connector, error) {
	if cc.Config == nil {
		return nil, errors.New("grpc: no connector config")
	}
	if cc.Key == "" {
		return nil, fmt.Errorf("grpc connector %q: no key", cc.Name)
	}
	raw, err := json.Marshal(cc.Config.Raw())
	if err != nil {
		return nil, fmt.Errorf("grpc connector %q: %s: %w", cc.Name, cc.Config.File(), err)
	}
	return &Connector{name: cc.Name, key: cc.Key, config: string(raw), hub: hub}, nil
}

// Devices is empty: the process names its devices as it sends data.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close releases nothing; Run detaches from the hub when it ends.
func (c *Connector) Close() error { return nil }

// Run offers the key to connector processes until ctx ends. The process
// streams are served by the hub's goroutines through sink.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	src := &source{c: c, sink: sink}
	if err := c.hub.attach(c.key, src); err != nil {
		return fmt.Errorf("grpc connector %q: %w", c.name, err)
	}
	defer c.hub.detach(c.key, src)
	if c.hub.Listening() {
		sink.Link(false, errors.New("waiting for the connector process to register"))
	} else {
		sink.Link(false, errors.New("the grpc server is not enabled (grpc.enabled in the main file)"))
	}
	<-ctx.Done()
	return nil
}

// Commander routes a device's RPC and attribute updates to the process.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	return &commander{c: c, device: device}
}

// source is one Run of the connector: the sink its process's data goes to.
type source struct {
	c    *Connector
	sink protocols.Sink
}

type commander struct {
	c      *Connector
	device string
}

func (cm *commander) session() (*session, error) {
	if s := cm.c.hub.current(cm.c.key); s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("grpc connector %q, device %q: %w", cm.c.name, cm.device, ErrNoProcess)
}

func (cm *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	s, err := cm.session()
	if err != nil {
		return nil, err
	}
	res, err := s.rpc(ctx, cm.device, req)
	if err != nil {
		return nil, fmt.Errorf("grpc connector %q, device %q: rpc %q: %w", cm.c.name, cm.device, req.Method, err)
	}
	return res, nil
}

func (cm *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	s, err := cm.session()
	if err != nil {
		return nil, err
	}
	if err := s.updateAttributes(ctx, cm.device, values); err != nil {
		return nil, fmt.Errorf("grpc connector %q, device %q: attribute update: %w", cm.c.name, cm.device, err)
	}
	return nil, nil
}

func (cm *commander) SharedAttributeKeys() []string { return nil }

var (
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
	_ protocols.Commander      = (*commander)(nil)
)
