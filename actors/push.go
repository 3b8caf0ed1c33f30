package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// pushWindow bounds one connector's pushed data that is handed over but not
// yet committed. It is the back-pressure of push sources: a flood waits at
// the source (an MQTT broker keeps what is not acknowledged) instead of
// filling memory or being dropped by a mailbox.
const pushWindow = 4096

// pushMailbox exceeds the window, so a pushed device's mailbox cannot drop
// data even when every push in flight is for that one device.
const pushMailbox = pushWindow + deviceMailbox

// adoptDevice asks a push connector's actor for the actor of a device,
// created on first use; it responds *adoptReply.
type adoptDevice struct {
	name, profile string
	report        protocols.ReportStrategy
	keyReport     map[string]protocols.ReportStrategy
}

type adoptReply struct {
	pid *actor.PID
	err error
}

// adoptRoute carries a platform command for a device of a push connector
// that has no actor yet (known from before a restart, silent since).
type adoptRoute struct {
	name, profile string
	msg           any
}

// sourceFailed is a Source's Run returning an error: the connector restarts.
type sourceFailed struct{ err error }

func (*adoptDevice) ControlMessage()  {}
func (*adoptRoute) ControlMessage()   {}
func (*sourceFailed) ControlMessage() {}

// pushSink is the runtime side of one connector incarnation's Source.
type pushSink struct {
	env       *connectorEnv
	sys       *actor.ActorSystem
	connector string
	self      *actor.PID // the connector actor
	cc        *ConnectorCounters
	log       zerolog.Logger
	window    chan struct{}

	mu   sync.Mutex
	pids map[string]*actor.PID

	malformedLog ratelimit.KeyedLines
	link         *linkState
}

// linkState is a push source's transport state, for /readyz and the log.
type linkState struct {
	mu    sync.Mutex
	known bool
	up    bool
	err   string
	log   ratelimit.Lines
}

func newPushSink(env *connectorEnv, sys *actor.ActorSystem, connector string, self *actor.PID, log zerolog.Logger) *pushSink {
	s := &pushSink{
		env: env, sys: sys, connector: connector, self: self, cc: env.devices.connectorCounters(connector), log: log,
		window: make(chan struct{}, pushWindow), pids: map[string]*actor.PID{}, link: &linkState{},
	}
	env.links.Store(connector, s.link)
	return s
}

func (s *pushSink) close() { s.env.links.CompareAndDelete(s.connector, s.link) }

// device returns the actor of a pushed device, asking the connector actor
// to create it the first time.
func (s *pushSink) device(ctx context.Context, name, profile string, rs protocols.ReportStrategy, krs map[string]protocols.ReportStrategy) (*actor.PID, error) {
	s.mu.Lock()
	pid := s.pids[name]
	s.mu.Unlock()
	if pid != nil {
		return pid, nil
	}
	fut := s.sys.Root.RequestFuture(s.self, &adoptDevice{name: name, profile: profile, report: rs, keyReport: krs}, 10*time.Second)
	ch := make(chan adoptReply, 1)
	go func() {
		res, err := fut.Result()
		if err != nil {
			ch <- adoptReply{err: err}
			return
		}
		ch <- *res.(*adoptReply)
	}()
	// The connector actor may be waiting for Run to return (it is
	// stopping), so give up with ctx rather than wait for the future.
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connector %q: device %q: %w", s.connector, name, r.err)
		}
		s.mu.Lock()
		s.pids[name] = r.pid
		s.mu.Unlock()
		return r.pid, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *pushSink) Push(ctx context.Context, p protocols.Push) error {
	if p.Device == "" {
		s.Malformed("device name", errors.New("data without a device name"))
		if p.Done != nil {
			p.Done(nil)
		}
		return nil
	}
	select {
	case s.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	pid, err := s.device(ctx, p.Device, p.Profile, p.Report, p.KeyReport)
	if err != nil {
		<-s.window
		return err
	}
	s.sys.Root.Send(pid, &pushData{p: p, window: s.window})
	return nil
}

func (s *pushSink) Connect(device, profile string) {
	pid, err := s.device(context.Background(), device, profile, protocols.ReportStrategy{}, nil)
	if err != nil {
		s.log.Warn().Err(err).Str("device", device).Msg("connect request not applied")
		return
	}
	s.sys.Root.Send(pid, &pushConnect{profile: profile})
}

func (s *pushSink) Disconnect(device string) {
	s.mu.Lock()
	pid := s.pids[device]
	s.mu.Unlock()
	if pid == nil {
		// Never seen in this run: the platform may still list it from before.
		s.sys.Root.Send(s.env.devices.registry, &DeviceDisconnected{Device: device, Connector: s.connector})
		s.sys.Root.Send(s.env.devices.journal, &AppendEvents{Events: []protocols.Event{{Kind: protocols.EventDisconnect, Device: device, Ts: time.Now().UnixMilli()}}})
		return
	}
	s.sys.Root.Send(pid, &pushDisconnect{})
}

func (s *pushSink) RequestAttributes(ctx context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error) {
	return s.env.requestAttributes(ctx, device, client, keys)
}

func (s *pushSink) Malformed(where string, err error) {
	s.cc.Malformed.Add(1)
	s.env.devices.counters.Malformed.Add(1)
	if ok, suppressed := s.malformedLog.Allow(where, time.Now()); ok {
		s.log.Warn().Err(err).Str("where", where).Int("suppressed", suppressed).Msg("malformed input dropped")
	}
}

func (s *pushSink) Dropped(where string, n int, err error) {
	s.cc.Dropped.Add(uint64(n))
	s.env.devices.counters.InputDropped.Add(uint64(n))
	if ok, suppressed := s.malformedLog.Allow("dropped "+where, time.Now()); ok {
		s.log.Warn().Err(err).Str("where", where).Int("dropped", n).Int("suppressed", suppressed).Msg("input dropped at the source")
	}
}

func (s *pushSink) Refused(where string, err error) {
	s.cc.Refused.Add(1)
	s.env.devices.counters.Refused.Add(1)
	if ok, suppressed := s.malformedLog.Allow("refused "+where, time.Now()); ok {
		s.log.Warn().Err(err).Str("where", where).Int("suppressed", suppressed).Msg("peer refused: unknown credentials")
	}
}

func (s *pushSink) Unmatched() {
	s.cc.Unmatched.Add(1)
	s.env.devices.counters.Unmatched.Add(1)
}

func (s *pushSink) Link(up bool, err error) {
	l := s.link
	l.mu.Lock()
	changed := !l.known || l.up != up
	l.known, l.up = true, up
	l.err = ""
	if err != nil {
		l.err = err.Error()
	}
	l.mu.Unlock()
	switch {
	case up && changed:
		l.log.Reset()
		s.log.Info().Msg("connector link up")
	case !up:
		if ok, suppressed := l.log.Allow(time.Now()); ok {
			s.log.Warn().Err(err).Int("suppressed", suppressed).Msg("connector link down")
		}
	}
}

// startSource runs the connector's Source until the actor stops.
func (c *connectorActor) startSource(ctx actor.Context, src protocols.Source) {
	sink := newPushSink(c.env, ctx.ActorSystem(), c.cfg.Name, ctx.Self(), c.log)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.sink, c.stopSrc, c.children = sink, cancel, map[string]*actor.PID{}
	sys, self := ctx.ActorSystem(), ctx.Self()
	c.env.goSafe("connector "+c.cfg.Name, func() {
		defer close(done)
		if err := src.Run(rctx, sink); err != nil && rctx.Err() == nil {
			sys.Root.Send(self, &sourceFailed{err: err})
		}
	})
	c.srcDone = done
}

// stopSource cancels Run and waits for it, so a restarted connector never
// has two sources reading the same broker or bus.
func (c *connectorActor) stopSource() {
	if c.stopSrc == nil {
		return
	}
	c.stopSrc()
	select {
	case <-c.srcDone:
	case <-time.After(10 * time.Second):
		c.log.Error().Msg("connector source did not stop within 10 s; abandoning it")
	}
	c.sink.close()
	c.stopSrc = nil
}

// adopt returns the actor of a pushed device, spawning it on first use.
func (c *connectorActor) adopt(ctx actor.Context, m *adoptDevice) (*actor.PID, error) {
	if pid, ok := c.children[m.name]; ok {
		return pid, nil
	}
	if c.stopSrc == nil {
		return nil, fmt.Errorf("connector %q is not a push connector or is stopping", c.cfg.Name)
	}
	var cmd protocols.Commander
	if dc, ok := c.conn.(protocols.DeviceCommands); ok {
		cmd = dc.Commander(m.name, m.profile)
	}
	env, name, log := c.env, c.cfg.Name, c.log
	info := protocols.DeviceInfo{Name: m.name, Type: m.profile, Report: m.report.Or(env.devices.conf().ThingsBoard.Report), KeyReport: m.keyReport}
	reportSet := m.report.IsSet() || len(m.keyReport) > 0
	props := env.props.props(func() actor.Actor {
		d := newDeviceActor(nil, info, cmd, name, env.devices, log)
		d.reportSet = reportSet
		return d
	}, WithMailbox(pushMailbox))
	pid, err := ctx.SpawnNamed(props, "device/"+m.name)
	if err != nil {
		return nil, err
	}
	c.children[m.name] = pid
	c.log.Debug().Str("device", m.name).Str("profile", m.profile).Msg("new device")
	return pid, nil
}

func (c *connectorActor) receivePush(ctx actor.Context) bool {
	switch m := ctx.Message().(type) {
	case *adoptDevice:
		pid, err := c.adopt(ctx, m)
		ctx.Respond(&adoptReply{pid: pid, err: err})
	case *adoptRoute:
		pid, err := c.adopt(ctx, &adoptDevice{name: m.name, profile: m.profile})
		if err == nil {
			ctx.RequestWithCustomSender(pid, m.msg, ctx.Sender())
			return true
		}
		if _, isRPC := m.msg.(*routeRPC); isRPC {
			ctx.Respond(&rpcResult{err: fmt.Errorf("%w: %q", errUnknownDevice, m.name)})
		}
	case *sourceFailed:
		panic(fmt.Errorf("connector %q: %w", c.cfg.Name, m.err))
	default:
		return false
	}
	return true
}
