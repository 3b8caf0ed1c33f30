package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/script"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("socket", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("socket", Sections())
}

const (
	// Upstream retries a failed bind every 3 s; we back off from there.
	minBindRetry = 3 * time.Second
	maxBindRetry = time.Minute
	// writeTimeout bounds a write to a peer that stopped reading.
	writeTimeout = 10 * time.Second
	// attributeRequestTimeout bounds one platform round trip.
	attributeRequestTimeout = 20 * time.Second
	// maxAttributeRequests bounds the UDP server's concurrent platform
	// round trips.
	maxAttributeRequests = 8
	// maxDatagram is the largest UDP payload.
	maxDatagram = 65535
)

// errTooManyFiles is the accept error to wait out rather than stop on.
var errTooManyFiles = syscall.EMFILE

// ErrNoConnection is returned for a write to a device that has no open
// connection (it has not sent anything yet, or its peer went away).
var ErrNoConnection = errors.New("no connection to the device")

// Connector is the `socket` connector: a protocols.Source serving TCP or
// UDP, and protocols.DeviceCommands writing to the devices' connections.
type Connector struct {
	name string
	cfg  *Config
	log  zerolog.Logger

	devices []*device
	byName  map[string]*device

	running atomic.Bool
	addr    atomic.Pointer[net.Addr] // bound address while serving
	udp     atomic.Pointer[net.UDPConn]
	ready   chan struct{} // closed once the first bind succeeded
	once    sync.Once

	connMu sync.Mutex
	conns  map[string]*conn // open TCP connections by peer "ip:port"

	received, messages, pushed, sent, rejected atomic.Uint64
}

// device is a configured device with its strategies and its last peer.
type device struct {
	cfg       *DeviceConfig
	script    *script.Script // converts instead of cfg's keys when set
	report    protocols.ReportStrategy
	keyReport map[string]protocols.ReportStrategy
	// last is where the device last sent from: writes go there, as
	// upstream writes to the device's last address.
	last atomic.Pointer[peer]
}

// peer is one sender: a TCP connection or a UDP address.
type peer struct {
	addr string // "ip:port"
	tcp  *conn
	udp  *net.UDPAddr
}

// conn is one accepted TCP connection.
type conn struct {
	c      net.Conn
	addr   string
	wmu    sync.Mutex
	closed atomic.Bool
	// devices are the devices whose filter the peer address matches,
	// resolved once when it connected.
	devices []*device
}

// NewConnector parses cfg and builds the connector; it does no I/O.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "socket", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{
		name: name, cfg: parsed, log: cfg.Logger, byName: map[string]*device{},
		ready: make(chan struct{}), conns: map[string]*conn{},
	}
	connectorReport := parsed.Report.Or(cfg.Report)
	dir := ""
	if cfg.File != "" {
		dir = filepath.Dir(cfg.File)
	}
	for _, d := range parsed.Devices {
		dev := &device{cfg: d, report: d.Report.Or(connectorReport)}
		if d.Script != "" {
			s, err := script.Load(script.Path(dir, d.Script), script.Options{Config: d.ScriptConfig,
				Print: func(file, msg string) { c.log.Debug().Str("script", file).Msg(msg) }})
			if err == nil && !s.HasUplink() {
				err = &script.CompileError{File: s.File, Msg: "defines no uplink(msg), which a device's converter needs"}
			}
			if err != nil {
				cfg.Config.Problems().Errorf(cfg.Config.File(), d.Path+"."+d.ScriptKey, "%v", err)
				continue
			}
			dev.script = s
		}
		for _, list := range [][]*KeyConfig{d.Telemetry, d.Attributes} {
			for _, k := range list {
				if k.Report.IsSet() {
					if dev.keyReport == nil {
						dev.keyReport = map[string]protocols.ReportStrategy{}
					}
					dev.keyReport[k.Key] = k.Report
				}
			}
		}
		c.devices = append(c.devices, dev)
		c.byName[d.Name] = dev
	}
	if err := cfg.Config.Problems().Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Config is the parsed connector file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices is nil: the devices are pushed (see Run).
func (c *Connector) Devices() []protocols.Device { return nil }

// Close has nothing to release: Run owns the server and ends it with its context.
func (c *Connector) Close() error { return nil }

// Addr is the bound address once Run is serving (nil before): with port 0
// the kernel picks the port.
func (c *Connector) Addr() net.Addr {
	if a := c.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Ready is closed once the server first listens.
func (c *Connector) Ready() <-chan struct{} { return c.ready }

// Stats are the connector's counters since it was built.
type Stats struct {
	Received uint64 // TCP connections accepted and UDP datagrams read
	Messages uint64 // messages framed
	Pushed   uint64 // pushes handed to the sink
	Sent     uint64 // writes to peers
	Rejected uint64 // connections closed because maxConnections were open
}

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	return Stats{Received: c.received.Load(), Messages: c.messages.Load(), Pushed: c.pushed.Load(),
		Sent: c.sent.Load(), Rejected: c.rejected.Load()}
}

// Run binds the server and serves it until ctx ends. A failed bind is
// reported through sink.Link and retried with backoff (upstream retries
// every 3 s).
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("socket connector %q: Run is already running", c.name)
	}
	defer c.running.Store(false)
	delay := minBindRetry
	for {
		err := c.serve(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		sink.Link(false, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxBindRetry)
	}
}

func (c *Connector) serve(ctx context.Context, sink protocols.Sink) error {
	var lc net.ListenConfig
	if c.cfg.Type == "UDP" {
		pc, err := lc.ListenPacket(ctx, "udp", c.cfg.ListenAddr())
		if err != nil {
			return fmt.Errorf("socket connector %q: %w", c.name, err)
		}
		u := pc.(*net.UDPConn)
		c.up(u.LocalAddr(), sink)
		c.udp.Store(u)
		defer c.udp.CompareAndSwap(u, nil)
		stop := context.AfterFunc(ctx, func() { u.Close() })
		defer stop()
		err = c.serveUDP(ctx, u, sink)
		u.Close()
		return err
	}
	ln, err := lc.Listen(ctx, "tcp", c.cfg.ListenAddr())
	if err != nil {
		return fmt.Errorf("socket connector %q: %w", c.name, err)
	}
	c.up(ln.Addr(), sink)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	return c.serveTCP(ctx, ln, sink)
}

func (c *Connector) up(a net.Addr, sink protocols.Sink) {
	c.addr.Store(&a)
	sink.Link(true, nil)
	c.log.Info().Str("type", c.cfg.Type).Str("listen", a.String()).Msg("socket server up")
	c.once.Do(func() { close(c.ready) })
}

func (c *Connector) serveTCP(ctx context.Context, ln net.Listener, sink protocols.Sink) error {
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		// Every connection ends with the server.
		c.connMu.Lock()
		for _, cn := range c.conns {
			cn.c.Close()
		}
		c.connMu.Unlock()
		wg.Wait()
	}()
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of file descriptors and the like: wait, as net/http does.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				c.log.Warn().Err(err).Dur("retry", tempDelay).Msg("accept failed")
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("socket connector %q: accept: %w", c.name, err)
		}
		tempDelay = 0
		c.received.Add(1)
		cn := &conn{c: nc, addr: peerString(nc.RemoteAddr())}
		c.connMu.Lock()
		if len(c.conns) >= c.cfg.MaxConnections {
			c.connMu.Unlock()
			nc.Close()
			c.rejected.Add(1)
			sink.Dropped("socket connections", 1, fmt.Errorf("connection from %s closed: %d connections are open (maxConnections)", cn.addr, c.cfg.MaxConnections))
			continue
		}
		if old := c.conns[cn.addr]; old != nil {
			// Same address and port again: the old one is gone.
			old.c.Close()
		}
		c.conns[cn.addr] = cn
		c.connMu.Unlock()
		cn.devices = c.match(cn.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serveConn(ctx, cn, sink)
		}()
	}
}

// serveConn frames and delivers one connection's messages in order. A slow
// platform side blocks the sink's Push, which stops reading and so pushes
// back on the peer through TCP: nothing is dropped.
func (c *Connector) serveConn(ctx context.Context, cn *conn, sink protocols.Sink) {
	defer func() {
		cn.closed.Store(true)
		cn.c.Close()
		c.connMu.Lock()
		if c.conns[cn.addr] == cn {
			delete(c.conns, cn.addr)
		}
		c.connMu.Unlock()
	}()
	c.log.Debug().Str("peer", cn.addr).Int("devices", len(cn.devices)).Msg("connection open")
	p := &peer{addr: cn.addr, tcp: cn}
	f := NewFramer(c.cfg.Framing, cn.c, c.cfg.BufferSize)
	var st convState
	for {
		msg, err := f.Next()
		if errors.Is(err, ErrTooLong) {
			sink.Malformed("socket "+cn.addr, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					sink.Malformed("socket "+cn.addr, err)
				} else {
					c.log.Debug().Err(err).Str("peer", cn.addr).Msg("connection lost")
				}
			}
			return
		}
		if !c.deliver(ctx, sink, p, cn.devices, msg, time.Now(), &st) {
			return
		}
	}
}

func (c *Connector) serveUDP(ctx context.Context, u *net.UDPConn, sink protocols.Sink) error {
	// One byte more than allowed tells an oversized datagram.
	buf := make([]byte, min(c.cfg.BufferSize+1, maxDatagram))
	// The filter result per sender; bounded so a scan of ports cannot grow it.
	cache := map[string][]*device{}
	var wg sync.WaitGroup
	defer wg.Wait()
	// At most this many round trips at once; beyond, the reader waits.
	sem := make(chan struct{}, maxAttributeRequests)
	st := convState{async: func(f func()) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f()
		}()
	}}
	for {
		n, from, err := u.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("socket connector %q: read: %w", c.name, err)
		}
		c.received.Add(1)
		addr := peerString(from)
		if n > c.cfg.BufferSize {
			sink.Malformed("socket "+addr, fmt.Errorf("%w (%d bytes): datagram dropped", ErrTooLong, c.cfg.BufferSize))
			continue
		}
		devs, ok := cache[addr]
		if !ok {
			if len(cache) >= 4096 {
				clear(cache)
			}
			devs = c.match(addr)
			cache[addr] = devs
		}
		if !c.deliver(ctx, sink, &peer{addr: addr, udp: from}, devs, buf[:n], time.Now(), &st) {
			return ctx.Err()
		}
	}
}

// match lists the devices whose address filter takes peer.
func (c *Connector) match(addr string) []*device {
	var out []*device
	for _, d := range c.devices {
		ok, err := d.cfg.Matches(addr)
		if err != nil {
			c.log.Warn().Err(err).Str("device", d.cfg.Name).Str("peer", addr).Msg("address filter failed; treated as not matching")
		}
		if ok {
			out = append(out, d)
		}
	}
	return out
}

// convState is one reader's scratch space and how it answers attribute
// requests.
type convState struct {
	errs []KeyError
	// async runs an attribute request's platform round trip beside the
	// reader; nil runs it inline. TCP runs inline, so a connection's
	// answer comes before anything it sent later is handled; the one UDP
	// reader serves every peer and must not wait for the platform.
	async func(func())
}

// deliver hands one message to every device it belongs to: as an
// attribute request when it is one, otherwise as values. It returns false
// once ctx ended.
func (c *Connector) deliver(ctx context.Context, sink protocols.Sink, p *peer, devs []*device, msg []byte, at time.Time, st *convState) bool {
	c.messages.Add(1)
	if len(devs) == 0 {
		sink.Unmatched()
		return true
	}
	for _, d := range devs {
		d.last.Store(p)
		if c.attrRequest(ctx, sink, d, p, msg, st) {
			continue
		}
		if d.script != nil {
			if !c.deliverScript(ctx, sink, d, p, msg, at) {
				return false
			}
			continue
		}
		var r protocols.Reading
		r, st.errs = d.cfg.Convert(msg, st.errs[:0])
		for _, ke := range st.errs {
			sink.Malformed("socket "+p.addr+" key "+ke.Key.Key, fmt.Errorf("device %q: %w", d.cfg.Name, ke))
		}
		if len(r.Telemetry) == 0 && len(r.Attributes) == 0 {
			continue
		}
		err := sink.Push(ctx, protocols.Push{Device: d.cfg.Name, Profile: d.cfg.Type, Ts: at, Reading: r,
			Report: d.report, KeyReport: d.keyReport})
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			// The runtime is stopping the connector; a socket peer cannot
			// be asked to resend, so the values are lost and counted.
			sink.Dropped("socket "+p.addr, len(r.Telemetry)+len(r.Attributes), fmt.Errorf("device %q: push refused: %w", d.cfg.Name, err))
			continue
		}
		c.pushed.Add(1)
	}
	return true
}

// deliverScript converts msg with d's script and pushes what it names,
// each result as its own device (the script names it). A failed call is
// counted as malformed input of the peer. It returns false once ctx ended.
func (c *Connector) deliverScript(ctx context.Context, sink protocols.Sink, d *device, p *peer, msg []byte, at time.Time) bool {
	res, err := d.script.Uplink(script.Message{Payload: msg, Topic: p.addr, Meta: map[string]any{"device": d.cfg.Name}, Now: at})
	if err != nil {
		sink.Malformed("socket "+p.addr+" script", fmt.Errorf("device %q: %w", d.cfg.Name, err))
		return true
	}
	for _, r := range res {
		if len(r.Telemetry) == 0 && len(r.Attributes) == 0 {
			continue
		}
		err := sink.Push(ctx, protocols.Push{Device: r.Device, Profile: r.Profile, Ts: time.UnixMilli(r.Ts),
			Reading: protocols.Reading{Telemetry: r.Telemetry, Attributes: r.Attributes}, Report: d.report})
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			sink.Dropped("socket "+p.addr, len(r.Telemetry)+len(r.Attributes), fmt.Errorf("device %q: push refused: %w", r.Device, err))
			continue
		}
		c.pushed.Add(1)
	}
	return true
}

// attrRequest reports whether msg is one of d's attribute requests and
// answers it: the platform's values are written back to the peer as one
// JSON object.
func (c *Connector) attrRequest(ctx context.Context, sink protocols.Sink, d *device, p *peer, msg []byte, st *convState) bool {
	for _, ar := range d.cfg.Requests {
		if !ar.Matches(msg) {
			continue
		}
		keys, err := ar.Keys(msg)
		if err != nil {
			sink.Malformed("socket "+p.addr+" "+ar.Path, fmt.Errorf("device %q: %w", d.cfg.Name, err))
			return true
		}
		if st.async != nil {
			st.async(func() { c.answer(ctx, sink, d, p, ar, keys) })
		} else {
			c.answer(ctx, sink, d, p, ar, keys)
		}
		return true
	}
	return false
}

func (c *Connector) answer(ctx context.Context, sink protocols.Sink, d *device, p *peer, ar *AttrRequest, keys []string) {
	rctx, cancel := context.WithTimeout(ctx, attributeRequestTimeout)
	values, err := sink.RequestAttributes(rctx, d.cfg.Name, ar.Client, keys)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn().Err(err).Str("device", d.cfg.Name).Strs("keys", keys).Msg("attribute request not answered")
		}
		return
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	out, err := json.Marshal(values)
	if err == nil {
		err = c.write(ctx, p, out)
	}
	if err != nil && ctx.Err() == nil {
		c.log.Warn().Err(err).Str("device", d.cfg.Name).Str("peer", p.addr).Msg("attribute response not written")
	}
}

// write sends b to a peer: on its TCP connection, or as a datagram from the
// server's UDP socket (so the reply comes from the port the peer sent to).
func (c *Connector) write(ctx context.Context, p *peer, b []byte) error {
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if p.tcp != nil {
		cn := p.tcp
		if cn.closed.Load() {
			return fmt.Errorf("%w: the connection from %s is closed", ErrNoConnection, p.addr)
		}
		cn.wmu.Lock()
		defer cn.wmu.Unlock()
		_ = cn.c.SetWriteDeadline(deadline)
		if _, err := cn.c.Write(b); err != nil {
			return fmt.Errorf("%w: write to %s: %v", protocols.ErrIO, p.addr, err)
		}
		c.sent.Add(1)
		return nil
	}
	u := c.udp.Load()
	if u == nil {
		return fmt.Errorf("%w: the UDP server is not running", ErrNoConnection)
	}
	if _, err := u.WriteToUDP(b, p.udp); err != nil {
		return fmt.Errorf("%w: send to %s: %v", protocols.ErrIO, p.addr, err)
	}
	c.sent.Add(1)
	return nil
}

// peerString formats an address as upstream's f"{ip}:{port}" (no brackets
// around IPv6, no zone), which address filters are matched against.
func peerString(a net.Addr) string {
	switch t := a.(type) {
	case *net.TCPAddr:
		return t.IP.String() + ":" + strconv.Itoa(t.Port)
	case *net.UDPAddr:
		return t.IP.String() + ":" + strconv.Itoa(t.Port)
	}
	return a.String()
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
)
