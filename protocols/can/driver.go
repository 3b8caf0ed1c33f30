package can

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("can", protocols.FactoryOf(func(cfg protocols.ConnectorConfig) (*Connector, error) { return NewConnector(cfg) }))
	protocols.RegisterFields("can", Sections())
}

// DefaultReceiveQueue is how many received frames wait between the bus and
// the platform side. A CAN bus cannot be told to wait, so when the platform
// side is slower for longer than this queue covers, frames are dropped,
// counted (Stats.Dropped) and reported (Sink.Dropped) rather than blocking
// the bus reader.
const DefaultReceiveQueue = 4096

// Connector is the `can` connector: a protocols.Source that reads frames
// from the configured bus and pushes the decoded values per device, sends
// the polling frames, and takes attribute updates and RPC as frames
// (protocols.DeviceCommands). It owns its bus: Run opens it and re-opens it
// every reconnectPeriod after it is lost.
type Connector struct {
	name  string
	cfg   *Config
	log   zerolog.Logger
	dec   *Decoder
	open  Opener
	queue int

	devices map[*DeviceConfig]*device
	byName  map[string]*device
	polls   []*KeyConfig
	// scripts are the devices whose script reads a frame id.
	scripts map[ScriptID]*device

	bus     atomic.Pointer[busRef] // the open bus, nil while down
	running atomic.Bool
	closed  atomic.Bool

	received, dropped, pushed, sent atomic.Uint64
	opens, openFailures, lost       atomic.Uint64

	dropLog, pollLog ratelimit.Lines
}

// busRef boxes a Bus so the open bus can be swapped atomically.
type busRef struct{ Bus }

// device is a configured device with its report strategies resolved.
type device struct {
	cfg       *DeviceConfig
	report    protocols.ReportStrategy
	keyReport map[string]protocols.ReportStrategy
	script    *script.Script
}

// Option configures NewConnector.
type Option func(*Connector)

// WithOpener replaces the transport the config names, for tests and for
// embedding the connector over a bus the caller opens.
func WithOpener(o Opener) Option { return func(c *Connector) { c.open = o } }

// WithReceiveQueue sets the receive queue length (default DefaultReceiveQueue).
func WithReceiveQueue(n int) Option {
	return func(c *Connector) {
		if n > 0 {
			c.queue = n
		}
	}
}

// NewConnector parses cfg and builds the connector; it does no I/O.
func NewConnector(cfg protocols.ConnectorConfig, opts ...Option) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "can", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		name: name, cfg: parsed, log: cfg.Logger, dec: NewDecoder(parsed), queue: DefaultReceiveQueue,
		devices: map[*DeviceConfig]*device{}, byName: map[string]*device{},
	}
	c.dropLog.Interval, c.pollLog.Interval = logInterval, logInterval
	c.open = func(ctx context.Context) (Bus, error) { return OpenBus(ctx, parsed) }
	for _, d := range parsed.Devices {
		dev := &device{cfg: d, report: d.Report.Or(parsed.Report)}
		for _, list := range [][]*KeyConfig{d.Attributes, d.Timeseries} {
			for _, k := range list {
				if k.Report.IsSet() {
					if dev.keyReport == nil {
						dev.keyReport = map[string]protocols.ReportStrategy{}
					}
					dev.keyReport[k.Key] = k.Report
				}
				if k.Polling != nil {
					c.polls = append(c.polls, k)
				}
			}
		}
		if _, dup := c.byName[d.Name]; dup {
			return nil, fmt.Errorf("can connector %q: %s: device name %q is used twice", name, d.Path, d.Name)
		}
		c.devices[d], c.byName[d.Name] = dev, dev
		if d.Script != "" {
			dir := ""
			if cfg.File != "" {
				dir = filepath.Dir(cfg.File)
			}
			s, err := script.Load(script.Path(dir, d.Script), script.Options{Config: d.ScriptConfig,
				Print: func(file, msg string) { c.log.Debug().Str("script", file).Msg(msg) }})
			if err == nil && !s.HasUplink() {
				err = &script.CompileError{File: s.File, Msg: "defines no uplink(msg), which a device's converter needs"}
			}
			if err != nil {
				cfg.Config.Problems().Errorf(cfg.Config.File(), d.Path+".script", "%v", err)
				continue
			}
			dev.script = s
			for _, id := range d.ScriptIDs {
				if prev, dup := c.scripts[id]; dup {
					cfg.Config.Problems().Errorf(cfg.Config.File(), d.Path+".nodeIds", "id %#x is already read by the script of %q", id.ID, prev.cfg.Name)
					continue
				}
				if c.scripts == nil {
					c.scripts = map[ScriptID]*device{}
				}
				c.scripts[id] = dev
			}
		}
	}
	if err := cfg.Config.Problems().Err(); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Config is the parsed connector file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices is nil: the devices are pushed (see Run).
func (c *Connector) Devices() []protocols.Device { return nil }

// Close closes the bus if Run still has it open; commands fail afterwards.
func (c *Connector) Close() error {
	c.closed.Store(true)
	if ref := c.bus.Swap(nil); ref != nil {
		return ref.Close()
	}
	return nil
}

// Stats are the connector's counters since it was built.
type Stats struct {
	Received     uint64 // frames read from the bus
	Dropped      uint64 // frames dropped: receive queue full, or a push the sink refused
	Pushed       uint64 // pushes handed to the sink
	Sent         uint64 // frames sent: polling, attribute updates, RPC
	Opens        uint64 // successful bus opens
	OpenFailures uint64 // failed bus opens
	Lost         uint64 // buses lost after they were open
}

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	return Stats{
		Received: c.received.Load(), Dropped: c.dropped.Load(), Pushed: c.pushed.Load(), Sent: c.sent.Load(),
		Opens: c.opens.Load(), OpenFailures: c.openFailures.Load(), Lost: c.lost.Load(),
	}
}

// Run connects every configured device (as upstream does at start), then
// opens the bus and serves it until ctx ends, re-opening it every
// reconnectPeriod after a failure. With reconnect off, or after
// reconnectCount consecutive failures, the failure is returned and the
// runtime restarts the connector.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("can connector %q: Run is already running", c.name)
	}
	defer c.running.Store(false)
	if err := c.announce(ctx, sink); err != nil {
		return nil // only ctx's end stops the announcements
	}
	failures := 0
	for {
		if c.closed.Load() {
			return fmt.Errorf("can connector %q: %w", c.name, ErrClosed)
		}
		bus, err := c.open(ctx)
		if err == nil {
			failures = 0
			c.opens.Add(1)
			// Commands may be sent as soon as the link is reported up.
			ref := &busRef{bus}
			c.bus.Store(ref)
			sink.Link(true, nil)
			c.log.Info().Str("interface", c.cfg.Interface).Str("channel", c.cfg.Channel).Msg("CAN bus open")
			err = c.serve(ctx, ref, sink)
			if ctx.Err() != nil {
				return nil
			}
			c.lost.Add(1)
		} else {
			if ctx.Err() != nil {
				return nil
			}
			c.openFailures.Add(1)
			failures++
			err = fmt.Errorf("open bus: %w", err)
		}
		sink.Link(false, err)
		if !c.cfg.Reconnect {
			return fmt.Errorf("can connector %q: %w (reconnect is off)", c.name, err)
		}
		if c.cfg.ReconnectCount > 0 && failures > c.cfg.ReconnectCount {
			return fmt.Errorf("can connector %q: %w (gave up after %d attempts, reconnectCount)", c.name, err, failures)
		}
		t := time.NewTimer(c.cfg.ReconnectPeriod)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// announce pushes an empty reading for every configured device: it
// connects the device to the platform (upstream connects all configured
// devices at start, so they take RPC before they send anything) and hands
// the runtime the device's report strategies with its first Push.
func (c *Connector) announce(ctx context.Context, sink protocols.Sink) error {
	for _, d := range c.cfg.Devices {
		dev := c.devices[d]
		if err := sink.Push(ctx, protocols.Push{Device: d.Name, Profile: d.Type, Report: dev.report, KeyReport: dev.keyReport}); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// The device is then connected by its first data instead.
			c.log.Warn().Err(err).Str("device", d.Name).Msg("device not announced")
		}
	}
	return nil
}

type rxFrame struct {
	f  Frame
	at time.Time
}

// serve reads bus until it is lost (the error is returned) or ctx ends.
// A reader goroutine moves frames into a bounded queue and never waits for
// the sink; this goroutine decodes and pushes, waiting for the sink's
// back-pressure. Polling runs beside them.
func (c *Connector) serve(ctx context.Context, ref *busRef, sink protocols.Sink) error {
	sctx, cancel := context.WithCancel(ctx)
	bus := ref.Bus
	q := make(chan rxFrame, c.queue)
	lost := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.read(sctx, bus, sink, q, lost)
	}()
	go func() {
		defer wg.Done()
		c.poll(sctx, bus)
	}()
	defer func() {
		c.bus.CompareAndSwap(ref, nil)
		cancel()
		bus.Close()
		wg.Wait()
	}()
	var st decodeState
	for {
		select {
		case rf := <-q:
			if err := c.deliver(ctx, sink, rf, &st); err != nil {
				return err
			}
		case err := <-lost:
			// Deliver what was read before the loss.
			for {
				select {
				case rf := <-q:
					if err := c.deliver(ctx, sink, rf, &st); err != nil {
						return err
					}
				default:
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Connector) read(ctx context.Context, bus Bus, sink protocols.Sink, q chan<- rxFrame, lost chan<- error) {
	where := c.cfg.Interface + " " + c.cfg.Channel
	overrun := fmt.Errorf("CAN receive queue full (%d frames), frame dropped: the platform side is slower than the bus", c.queue)
	// A transport with its own receive queue (the virtual bus) can overrun
	// before we read; those drops are counted too.
	dropper, _ := bus.(interface{ Dropped() uint64 })
	var busDrops uint64
	if dropper != nil {
		busDrops = dropper.Dropped()
	}
	for {
		f, err := bus.Recv(ctx)
		if dropper != nil {
			if d := dropper.Dropped(); d != busDrops {
				n := d - busDrops
				busDrops = d
				c.dropped.Add(n)
				sink.Dropped(where+" receive queue", int(n), fmt.Errorf("bus endpoint queue full: %d frames dropped before they were read", n))
			}
		}
		if err != nil {
			if errors.Is(err, ErrBadLine) {
				sink.Malformed(where, err)
				continue
			}
			if ctx.Err() == nil {
				lost <- err
			}
			return
		}
		c.received.Add(1)
		select {
		case q <- rxFrame{f, time.Now()}:
		default:
			// The sink counts it for the runtime and logs it, rate-limited.
			c.dropped.Add(1)
			sink.Dropped("can receive queue", 1, overrun)
		}
	}
}

// decodeState holds per-frame scratch space reused across frames.
type decodeState struct {
	readings []Reading
	errs     []keyError
}

// deliver decodes one frame and pushes one Push per device it carries
// values for. Only ctx's end is returned: bad input and refused pushes are
// counted, not fatal.
func (c *Connector) deliver(ctx context.Context, sink protocols.Sink, rf rxFrame, st *decodeState) error {
	if rf.f.Remote {
		// A request for data, not data: no key reads it.
		sink.Unmatched()
		return nil
	}
	var matched bool
	if dev := c.scripts[ScriptID{ID: rf.f.ID, Extended: rf.f.Extended}]; dev != nil {
		matched = true
		if err := c.deliverScript(ctx, sink, dev, rf); err != nil {
			return err
		}
	}
	var keys bool
	st.readings, st.errs, keys = c.dec.decode(rf.f, st.readings[:0], st.errs[:0])
	if !keys {
		if !matched {
			sink.Unmatched()
		}
		return nil
	}
	for _, ke := range st.errs {
		sink.Malformed(fmt.Sprintf("can id %#x key %s", rf.f.ID, ke.key.Key), fmt.Errorf("device %q: %w", ke.key.Device.Name, ke.err))
	}
	rs := st.readings
	for i := range rs {
		d := rs[i].Device
		if seen(rs[:i], d) {
			continue
		}
		nt, na := 0, 0
		for _, r := range rs[i:] {
			if r.Device == d {
				if r.Key.Telemetry {
					nt++
				} else {
					na++
				}
			}
		}
		// One allocation per push: the sink keeps the slices.
		dps := make([]protocols.Datapoint, nt+na)
		var reading protocols.Reading
		ti, ai := 0, nt
		for _, r := range rs[i:] {
			if r.Device != d {
				continue
			}
			if r.Key.Telemetry {
				dps[ti] = protocols.Datapoint{Key: r.Key.Key, Value: r.Value}
				ti++
			} else {
				dps[ai] = protocols.Datapoint{Key: r.Key.Key, Value: r.Value}
				ai++
			}
		}
		if nt > 0 {
			reading.Telemetry = dps[:nt:nt]
		}
		if na > 0 {
			reading.Attributes = dps[nt:]
		}
		dev := c.devices[d]
		if err := sink.Push(ctx, protocols.Push{Device: d.Name, Profile: d.Type, Ts: rf.at, Reading: reading,
			Report: dev.report, KeyReport: dev.keyReport}); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// The runtime refused the data (no device actor); the bus
			// cannot resend it, so it is lost like an overrun, and counted.
			n := c.dropped.Add(1)
			if ok, suppressed := c.dropLog.Allow(time.Now()); ok {
				c.log.Warn().Err(err).Str("device", d.Name).Uint64("dropped_total", n).Int("suppressed", suppressed).Msg("push refused, values of a frame dropped")
			}
			continue
		}
		c.pushed.Add(1)
	}
	return nil
}

// deliverScript runs dev's script on a frame and pushes each result as
// the device it names. A failed call is counted as malformed input of the
// frame id; only ctx's end is returned.
func (c *Connector) deliverScript(ctx context.Context, sink protocols.Sink, dev *device, rf rxFrame) error {
	f := rf.f
	res, err := dev.script.Uplink(script.Message{Payload: f.Data, Topic: fmt.Sprintf("%#x", f.ID),
		Meta: map[string]any{"id": int64(f.ID), "extended": f.Extended, "fd": f.FD}, Now: rf.at})
	if err != nil {
		sink.Malformed(fmt.Sprintf("can id %#x script", f.ID), fmt.Errorf("device %q: %w", dev.cfg.Name, err))
		return nil
	}
	for _, r := range res {
		if len(r.Telemetry) == 0 && len(r.Attributes) == 0 {
			continue
		}
		err := sink.Push(ctx, protocols.Push{Device: r.Device, Profile: r.Profile, Ts: time.UnixMilli(r.Ts),
			Reading: protocols.Reading{Telemetry: r.Telemetry, Attributes: r.Attributes}, Report: dev.report})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			n := c.dropped.Add(1)
			if ok, suppressed := c.dropLog.Allow(time.Now()); ok {
				c.log.Warn().Err(err).Str("device", r.Device).Uint64("dropped_total", n).Int("suppressed", suppressed).Msg("push refused, values of a frame dropped")
			}
			continue
		}
		c.pushed.Add(1)
	}
	return nil
}

func seen(rs []Reading, d *DeviceConfig) bool {
	for _, r := range rs {
		if r.Device == d {
			return true
		}
	}
	return false
}

// poll sends the polling frames: every key's frame once right after the
// bus opened, in file order, then the "always" keys every period until
// the bus is closed.
func (c *Connector) poll(ctx context.Context, bus Bus) {
	var wg sync.WaitGroup
	for _, k := range c.polls {
		c.sendPoll(ctx, bus, k)
	}
	for _, k := range c.polls {
		if k.Polling.Once {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(k.Polling.Period)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					c.sendPoll(ctx, bus, k)
				}
			}
		}()
	}
	wg.Wait()
}

func (c *Connector) sendPoll(ctx context.Context, bus Bus, k *KeyConfig) {
	if ctx.Err() != nil {
		return
	}
	if err := bus.Send(ctx, *k.PollFrame()); err != nil {
		if ctx.Err() == nil {
			if ok, suppressed := c.pollLog.Allow(time.Now()); ok {
				c.log.Warn().Err(err).Str("device", k.Device.Name).Str("key", k.Key).Int("suppressed", suppressed).Msg("polling frame not sent")
			}
		}
		return
	}
	c.sent.Add(1)
}

// send transmits a command frame on the open bus.
func (c *Connector) send(ctx context.Context, f Frame) error {
	ref := c.bus.Load()
	if ref == nil {
		return fmt.Errorf("%w: the %s bus %q is not open", protocols.ErrIO, c.cfg.Interface, c.cfg.Channel)
	}
	if err := ref.Send(ctx, f); err != nil {
		return err
	}
	c.sent.Add(1)
	return nil
}

// logInterval is the least time between two warnings of one kind: one
// line per interval, the rest counted and reported with the next.
const logInterval = 10 * time.Second

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
)
