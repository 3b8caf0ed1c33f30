package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/supervisor"
)

// connectorEnv is what connector actors get from the gateway: what their
// device actors need, how to build actor props, and the services a push
// source's sink offers.
type connectorEnv struct {
	devices *deviceEnv
	props   *propsKit
	// goSafe runs a push source on its own goroutine, a panic logged and
	// counted rather than fatal.
	goSafe func(what string, fn func())
	// links publishes each push source's transport state (/readyz).
	links *sync.Map
	// requestAttributes asks the platform for a device's attributes.
	requestAttributes func(ctx context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error)
}

// deviceProps are the props of the actor of a polled device.
// pushed says the connector is also a push source, which may push data for
// the device: its mailbox then takes the push window as a pushed device's
// does.
func (e *connectorEnv) deviceProps(dev protocols.Device, connector string, log zerolog.Logger, pushed bool) *actor.Props {
	mb := deviceMailbox
	if pushed {
		mb = pushMailbox
	}
	return e.props.props(func() actor.Actor {
		return newDeviceActor(dev, protocols.DeviceInfo{}, nil, connector, e.devices, log)
	}, WithMailbox(mb))
}

// connectorActor owns one configured connector and supervises one device actor
// per device. A restart rebuilds the connector from its config, so shared
// resources (a Modbus line) start clean.
type connectorActor struct {
	cfg   config.Connector
	env   *connectorEnv
	log   zerolog.Logger
	first *bool
	conn  protocols.Connector

	// push sources only
	sink     *pushSink
	stopSrc  context.CancelFunc
	srcDone  chan struct{}
	children map[string]*actor.PID
}

func (c *connectorActor) Receive(ctx actor.Context) {
	if c.receivePush(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *connectorRPC:
		h, ok := c.conn.(protocols.ConnectorRPC)
		if !ok {
			ctx.Respond(&rpcResult{err: fmt.Errorf("connector %q has no connector-level rpc", c.cfg.Name)})
			return
		}
		rc, cancel := context.WithDeadline(context.Background(), m.deadline)
		data, err := h.ConnectorRPC(rc, m.req)
		cancel()
		ctx.Respond(&rpcResult{data: data, err: err})
	case *actor.Started:
		conn := c.cfg.Connector
		if !*c.first || conn == nil {
			var err error
			if conn, err = c.cfg.Build(); err != nil {
				// A config that was valid at start-up and is not now (edited
				// file) is a config error: stop, don't crash-loop.
				panic(supervisor.ConfigError(fmt.Errorf("connector %q: %w", c.cfg.Name, err)))
			}
		}
		*c.first = false
		c.conn = conn
		if ms, ok := conn.(protocols.MetricsSource); ok {
			c.env.devices.metrics.ConnectorStarted(c.cfg.Name, ms)
		}
		devs := conn.Devices()
		c.log.Info().Int("devices", len(devs)).Msg("connector started")
		c.lifecycle(bus.Started)
		src, isSource := conn.(protocols.Source)
		polled := map[string]*actor.PID{}
		for _, dev := range devs {
			props := c.env.deviceProps(dev, c.cfg.Name, c.log, isSource)
			pid, err := ctx.SpawnNamed(props, "device/"+dev.Info().Name)
			if err != nil {
				c.log.Error().Err(err).Str("device", dev.Info().Name).Msg("cannot start device actor (duplicate deviceName?)")
				continue
			}
			polled[dev.Info().Name] = pid
		}
		if isSource {
			c.startSource(ctx, src)
			// A source may push data for a device it also polls (an SNMP
			// agent's traps): that goes to the polling actor.
			maps.Copy(c.children, polled)
		}
	case *actor.Stopping:
		// Before the children stop, so no push is sent to a stopped device.
		c.stopSource()
	case *actor.Stopped, *actor.Restarting:
		c.stopSource()
		// Children are already stopped when Stopped arrives; on Restarting
		// they are stopped next, and closing here makes their in-flight polls
		// fail fast instead of hanging.
		if c.conn != nil {
			if _, ok := c.conn.(protocols.MetricsSource); ok {
				c.env.devices.metrics.ConnectorStopped(c.cfg.Name)
			}
			if err := c.conn.Close(); err != nil {
				c.log.Warn().Err(err).Msg("closing connector")
			}
			c.conn = nil
		}
		if _, ok := m.(*actor.Stopped); ok {
			c.log.Info().Msg("connector stopped")
			c.lifecycle(bus.Stopped)
		}
	}
}

// lifecycle publishes a state change of the connector on the bus.
func (c *connectorActor) lifecycle(event string) {
	if b := c.env.devices.bus; b.Active() {
		b.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassConnector, Name: c.cfg.Name, Event: event, Ts: time.Now().UnixMilli()})
	}
}
