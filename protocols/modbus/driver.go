package modbus

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("modbus", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("modbus", Sections())
}

// Sample is a complete upstream-format modbus connector file.
//
//go:embed sample.json
var Sample []byte

// Sentinel errors. Errors from a request wrap one of the first three and
// the library's own error, so errors.Is works with either.
var (
	// ErrTimeout means the device did not answer within the slave's timeout
	// (library: modbus.ErrRequestTimedOut). The link was closed.
	ErrTimeout = errors.New("modbus: request timed out")
	// ErrConnection means the link failed (refused, reset, EOF, garbled
	// frame). The link was closed and the next request reopens it.
	ErrConnection = errors.New("modbus: connection failed")
	// ErrException means the device answered with a Modbus exception
	// (illegal address, device failure, ...). The link stays open.
	ErrException = errors.New("modbus: exception response")
	// ErrClosed means the connector was closed.
	ErrClosed = errors.New("modbus: connector closed")
)

// classified keeps the library's message while adding our class to the
// error chain.
type classified struct{ class, err error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.class, genericKind[e.class], e.err} }

// genericKind makes our classes match protocols' generic error kinds too.
var genericKind = map[error]error{ErrTimeout: protocols.ErrTimeout, ErrException: protocols.ErrException, ErrConnection: protocols.ErrIO}

var exceptions = []error{
	modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
	modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy,
	modbus.ErrMemoryParityError, modbus.ErrGWPathUnavailable, modbus.ErrGWTargetFailedToRespond,
}

// classify tags err and reports whether the link must be closed: the library
// never reconnects by itself, and after a timeout or a bad frame the stream
// may hold a late answer that would be taken for the next one.
func classify(err error) (error, bool) {
	if err == nil {
		return nil, false
	}
	for _, e := range exceptions {
		if errors.Is(err, e) {
			return &classified{ErrException, err}, false
		}
	}
	if strings.HasPrefix(err.Error(), "unknown exception code") {
		return &classified{ErrException, err}, false
	}
	if errors.Is(err, modbus.ErrUnexpectedParameters) || errors.Is(err, modbus.ErrConfigurationError) {
		return err, false
	}
	var ne net.Error
	if errors.Is(err, modbus.ErrRequestTimedOut) || os.IsTimeout(err) || (errors.As(err, &ne) && ne.Timeout()) {
		return &classified{ErrTimeout, err}, true
	}
	return &classified{ErrConnection, err}, true
}

// wire is what a link needs of a Modbus client: *modbus.ModbusClient on a
// network or serial endpoint, storeWire for the serial server's own
// reporting device (store.go's twin of the wire).
type wire interface {
	Open() error
	Close() error
	SetUnitId(id uint8) error
	ReadCoils(addr, quantity uint16) ([]bool, error)
	ReadDiscreteInputs(addr, quantity uint16) ([]bool, error)
	ReadRegisters(addr, quantity uint16, regType modbus.RegType) ([]uint16, error)
	WriteCoil(addr uint16, value bool) error
	WriteCoils(addr uint16, values []bool) error
	WriteRegister(addr, value uint16) error
	WriteRegisters(addr uint16, values []uint16) error
}

// link is one client for one endpoint, shared by the slaves on it.
type link struct {
	endpoint string
	// sem is held across SetUnitId and the request (the library's unit id is
	// client-wide state); a channel so waiters can give up on ctx.
	sem    chan struct{}
	client wire
	open   bool // guarded by sem
	closed bool // guarded by sem
	refs   int  // guarded by pool.mu
}

func (l *link) lock(ctx context.Context) error {
	// A free link needs no look at ctx: its Done may cost a timer.
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *link) unlock() { <-l.sem }

// do runs fn for unit with the link open, closing the link on I/O failure.
func (l *link) do(ctx context.Context, unit uint8, fn func(c wire) error) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.open {
		if err := l.client.Open(); err != nil {
			cerr, _ := classify(err)
			return fmt.Errorf("connect: %w", cerr)
		}
		l.open = true
	}
	_ = l.client.SetUnitId(unit)
	err := fn(l.client)
	cerr, broken := classify(err)
	if broken {
		_ = l.client.Close()
		l.open = false
	}
	return cerr
}

// isOpen reports whether the link holds an open connection (for tests).
func (l *link) isOpen() bool {
	l.sem <- struct{}{}
	defer l.unlock()
	return l.open
}

func (l *link) shutdown() {
	l.sem <- struct{}{}
	defer l.unlock()
	if l.open {
		_ = l.client.Close()
	}
	l.open, l.closed = false, true
}

// pool holds the connector's links, reference counted by device.
type pool struct {
	mu     sync.Mutex
	links  map[string]*link
	closed bool
}

func (p *pool) acquire(s *SlaveConfig, commands bool) (*link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	ep := s.Endpoint()
	key := ep
	if commands && s.Type != "serial" {
		key = ep + " (commands)"
	}
	if l := p.links[key]; l != nil {
		l.refs++
		return l, nil
	}
	conf := &modbus.ClientConfiguration{
		URL:     ep,
		Timeout: s.Timeout,
		// The library logs to stdout when no logger is given.
		Logger: log.New(io.Discard, "", 0),
	}
	if s.Type == "serial" {
		conf.Speed = uint(s.Baudrate)
		conf.DataBits = uint(s.Bytesize)
		conf.StopBits = uint(s.Stopbits)
		switch s.Parity {
		case "E":
			conf.Parity = modbus.PARITY_EVEN
		case "O":
			conf.Parity = modbus.PARITY_ODD
		default:
			conf.Parity = modbus.PARITY_NONE
		}
	}
	c, err := modbus.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("modbus %s: %w", ep, err)
	}
	l := &link{endpoint: key, sem: make(chan struct{}, 1), client: c, refs: 1}
	if p.links == nil {
		p.links = map[string]*link{}
	}
	p.links[key] = l
	return l, nil
}

func (p *pool) release(l *link) {
	p.mu.Lock()
	l.refs--
	last := l.refs <= 0 && p.links[l.endpoint] == l
	if last {
		delete(p.links, l.endpoint)
	}
	p.mu.Unlock()
	if last {
		l.shutdown()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	links := p.links
	p.links, p.closed = nil, true
	p.mu.Unlock()
	for _, l := range links {
		l.shutdown()
	}
}

// Connector is a configured modbus connector: one Device per slave.
type Connector struct {
	name    string
	cfg     *Config
	pool    *pool
	devices []*Device
	server  *server // nil without a served `slave` section
}

// NewConnector is New with the concrete type.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "modbus", func(o *spec.Obj) (*Config, string) {
		c := Parse(o, cfg.Report)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, cfg: parsed, pool: &pool{}}
	if parsed.Server != nil {
		c.server = newServer(parsed.Server, cfg.Logger)
	}
	for _, s := range parsed.Slaves {
		d := newDevice(s, c.pool)
		if c.server != nil && s == parsed.Server.Slave {
			d.server = c.server
		}
		c.devices = append(c.devices, d)
	}
	return c, nil
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices returns one device per slave, in file order.
func (c *Connector) Devices() []protocols.Device {
	out := make([]protocols.Device, len(c.devices))
	for i, d := range c.devices {
		out[i] = d
	}
	return out
}

// Device returns the device named name, or nil.
func (c *Connector) Device(name string) *Device {
	for _, d := range c.devices {
		if d.cfg.DeviceName == name {
			return d
		}
	}
	return nil
}

// Close closes every link; devices fail with ErrClosed afterwards.
func (c *Connector) Close() error {
	c.pool.close()
	if c.server != nil {
		c.server.stop()
	}
	return nil
}

// Device is one slave.
type Device struct {
	cfg  *SlaveConfig
	pool *pool
	info protocols.DeviceInfo
	plan []request

	mu   sync.Mutex // guards link and cmdLink
	link *link
	// cmdLink carries RPC and attribute writes. On network endpoints it is
	// a second connection, so a command never queues behind another
	// slave's slow poll; on a serial line it is the poll link, because one
	// line can only carry one request at a time.
	cmdLink *link
	// server is the Modbus server this device reports (the `slave`
	// section), started before its first request; nil for other slaves.
	server *server
}

// request is one read covering the keys that lie in it.
type request struct {
	fc    int
	addr  int
	count int
	keys  []planKey
}

type planKey struct {
	key    *KeyConfig
	attr   bool
	index  int // position in Reading.Attributes or Reading.Telemetry
	offset int // first register or bit of the key inside the request
}

func newDevice(s *SlaveConfig, p *pool) *Device {
	d := &Device{cfg: s, pool: p}
	d.info = protocols.DeviceInfo{
		Name:                s.DeviceName,
		Type:                s.DeviceType,
		PollPeriod:          s.PollPeriod,
		Report:              s.Report,
		ConnectAttemptCount: s.ConnectAttemptCount,
		RetryDelay:          s.ConnectAttemptTime,
	}
	for _, sec := range [][]*KeyConfig{s.Attributes, s.Timeseries} {
		for _, k := range sec {
			if k.Report.IsSet() {
				if d.info.KeyReport == nil {
					d.info.KeyReport = map[string]protocols.ReportStrategy{}
				}
				d.info.KeyReport[k.Tag] = k.Report
			}
		}
	}
	d.plan = s.plan()
	return d
}

func requestLimit(fc int) int {
	if isBitFunction(fc) {
		return maxReadBits
	}
	return maxReadRegisters
}

// buildPlan groups keys into as few reads as possible: keys of one function
// code whose ranges touch or overlap share a read, up to the protocol's
// per-request limit. Gaps are never bridged, since unmapped addresses may
// answer with an exception.
func buildPlan(s *SlaveConfig) []request {
	var keys []planKey
	for i, k := range s.Attributes {
		keys = append(keys, planKey{key: k, attr: true, index: i})
	}
	for i, k := range s.Timeseries {
		keys = append(keys, planKey{key: k, index: i})
	}
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i].key, keys[j].key
		if a.FunctionCode != b.FunctionCode {
			return a.FunctionCode < b.FunctionCode
		}
		return a.Address < b.Address
	})
	var plan []request
	for _, pk := range keys {
		k := pk.key
		start, n := int(k.Address), k.RequestCount()
		if len(plan) > 0 {
			r := &plan[len(plan)-1]
			end := max(r.addr+r.count, start+n)
			if r.fc == k.FunctionCode && start <= r.addr+r.count && end-r.addr <= requestLimit(r.fc) {
				r.count = end - r.addr
				pk.offset = start - r.addr
				r.keys = append(r.keys, pk)
				continue
			}
		}
		plan = append(plan, request{fc: k.FunctionCode, addr: start, count: n, keys: []planKey{pk}})
	}
	return plan
}

// Info describes the device.
func (d *Device) Info() protocols.DeviceInfo { return d.info }

// Config is the slave's parsed entry.
func (d *Device) Config() *SlaveConfig { return d.cfg }

// Link is the slave's link (protocols.LinkedDevice): the endpoint its
// requests queue on with the other slaves of the endpoint. A serial line is
// slow from the outset; a TCP or UDP endpoint is fast on a LAN, but a
// serial gateway behind it (rtuovertcp, or a Modbus TCP gateway in front of
// RS-485 slaves) is slow like a line and cannot be told from a fast one by
// its config: the gateway finds out from the polls' times.
func (d *Device) Link() (string, bool) {
	return d.cfg.Endpoint(), d.cfg.Type == "serial"
}

// Requests is the number of reads one Poll issues.
func (d *Device) Requests() int { return len(d.plan) }

func (d *Device) getLink() (*link, error) { return d.linkFor(&d.link, false) }

// commandLink is the link for RPC and attribute writes (see cmdLink).
func (d *Device) commandLink() (*link, error) { return d.linkFor(&d.cmdLink, true) }

func (d *Device) linkFor(slot **link, commands bool) (*link, error) {
	if d.server != nil {
		if err := d.server.start(); err != nil {
			return nil, err
		}
		if l := d.server.local; l != nil {
			// The serial server's line belongs to the masters on it: its
			// reporting device reads the registers in process.
			return l, nil
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if *slot == nil {
		l, err := d.pool.acquire(d.cfg, commands)
		if err != nil {
			return nil, err
		}
		*slot = l
	}
	return *slot, nil
}

// Close releases the device's share of its link; the link closes with its
// last device. A later Poll takes a new share.
func (d *Device) Close() error {
	d.mu.Lock()
	links := []*link{d.link, d.cmdLink}
	d.link, d.cmdLink = nil, nil
	d.mu.Unlock()
	for _, l := range links {
		if l != nil {
			d.pool.release(l)
		}
	}
	return nil
}

func (d *Device) errorf(op string, addr, n int, err error) error {
	return fmt.Errorf("modbus %s unit %d: %s @%d x%d: %w", d.cfg.Endpoint(), d.cfg.UnitID, op, addr, n, err)
}

func opName(fc int, write bool) string {
	if write {
		switch fc {
		case 5:
			return "write coil"
		case 15:
			return "write coils"
		case 6:
			return "write register"
		}
		return "write registers"
	}
	switch fc {
	case 1:
		return "read coils"
	case 2:
		return "read discrete inputs"
	case 3:
		return "read holding registers"
	}
	return "read input registers"
}

// read performs one read request.
func (d *Device) read(ctx context.Context, l *link, fc, addr, n int) (regs []uint16, bits []bool, err error) {
	err = l.do(ctx, d.cfg.UnitID, func(c wire) error {
		var err error
		switch fc {
		case 1:
			bits, err = c.ReadCoils(uint16(addr), uint16(n))
		case 2:
			bits, err = c.ReadDiscreteInputs(uint16(addr), uint16(n))
		case 3:
			regs, err = c.ReadRegisters(uint16(addr), uint16(n), modbus.HOLDING_REGISTER)
		case 4:
			regs, err = c.ReadRegisters(uint16(addr), uint16(n), modbus.INPUT_REGISTER)
		default:
			err = fmt.Errorf("functionCode %d is not a read", fc)
		}
		return err
	})
	if err != nil {
		return nil, nil, d.errorf(opName(fc, false), addr, n, err)
	}
	return regs, bits, nil
}

// Poll reads every attribute and timeseries key. After a Modbus exception it
// carries on with the other reads and returns what it got together with the
// error; after a link failure (ErrTimeout, ErrConnection) or ctx expiry it
// stops and returns the keys read so far with the error.
func (d *Device) Poll(ctx context.Context) (protocols.Reading, error) {
	l, err := d.getLink()
	if err != nil {
		return protocols.Reading{}, err
	}
	attrs := protocols.MakeDatapoints(len(d.cfg.Attributes))
	tele := protocols.MakeDatapoints(len(d.cfg.Timeseries))
	var got [2][]bool // attrs, tele; allocated on the first failure
	var errs []error
	fail := func(reqs []request) {
		if got[0] == nil {
			got[0], got[1] = make([]bool, len(attrs)), make([]bool, len(tele))
			for i := range got[0] {
				got[0][i] = true
			}
			for i := range got[1] {
				got[1][i] = true
			}
		}
		for _, r := range reqs {
			for _, pk := range r.keys {
				if pk.attr {
					got[0][pk.index] = false
				} else {
					got[1][pk.index] = false
				}
			}
		}
	}
	for i, r := range d.plan {
		if i > 0 && d.cfg.DelayBetweenRequests > 0 {
			if err := sleep(ctx, d.cfg.DelayBetweenRequests); err != nil {
				fail(d.plan[i:])
				errs = append(errs, err)
				break
			}
		}
		if err := ctx.Err(); err != nil {
			fail(d.plan[i:])
			errs = append(errs, err)
			break
		}
		regs, bits, err := d.read(ctx, l, r.fc, r.addr, r.count)
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, ErrException) {
				fail(d.plan[i : i+1])
				continue
			}
			fail(d.plan[i:])
			break
		}
		for _, pk := range r.keys {
			k := pk.key
			var v protocols.Value
			var derr error
			if isBitFunction(r.fc) {
				v, derr = k.DecodeBits(bits[pk.offset:])
			} else {
				v, derr = k.DecodeRegisters(regs[pk.offset:])
			}
			if derr != nil {
				fail([]request{{keys: []planKey{pk}}})
				errs = append(errs, fmt.Errorf("modbus %s unit %d: key %q: %w", d.cfg.Endpoint(), d.cfg.UnitID, k.Tag, derr))
				continue
			}
			dp := protocols.Datapoint{Key: k.Tag, Value: v}
			if pk.attr {
				attrs[pk.index] = dp
			} else {
				tele[pk.index] = dp
			}
		}
	}
	if got[0] != nil {
		attrs, tele = keep(attrs, got[0]), keep(tele, got[1])
	}
	return protocols.Reading{Telemetry: tele, Attributes: attrs}, errors.Join(errs...)
}

// PollContextReusable says Poll uses its context only for its deadline, on
// the calling goroutine and until it returns (see
// protocols.ReusableContextPoller): the link queue, the delay between
// requests and the check between requests. The library bounds each request
// with its own socket deadline (the slave's timeout).
func (d *Device) PollContextReusable() {}

var _ protocols.ReusableContextPoller = (*Device)(nil)

// PollReadingOwned says Poll's Reading is the caller's (see
// protocols.OwnedReadingPoller): its slices are made per call.
func (d *Device) PollReadingOwned() {}

var _ protocols.OwnedReadingPoller = (*Device)(nil)

func keep(dps []protocols.Datapoint, ok []bool) []protocols.Datapoint {
	out := dps[:0]
	for i, dp := range dps {
		if ok[i] {
			out = append(out, dp)
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadKey reads one key (an rpc entry, or any KeyConfig with a read
// function code) and decodes it.
func (d *Device) ReadKey(ctx context.Context, key *KeyConfig) (protocols.Value, error) {
	if key.FunctionCode < 1 || key.FunctionCode > 4 {
		return protocols.Value{}, fmt.Errorf("modbus %s unit %d: key %q: functionCode %d is not a read", d.cfg.Endpoint(), d.cfg.UnitID, key.Tag, key.FunctionCode)
	}
	l, err := d.commandLink()
	if err != nil {
		return protocols.Value{}, err
	}
	regs, bits, err := d.read(ctx, l, key.FunctionCode, int(key.Address), key.RequestCount())
	if err != nil {
		return protocols.Value{}, err
	}
	if isBitFunction(key.FunctionCode) {
		return key.DecodeBits(bits)
	}
	return key.DecodeRegisters(regs)
}

// Read reads count objects at address with a read function code (1-4) and
// decodes them as typ with the slave's byte and word order. count 0 means
// the type's own size.
func (d *Device) Read(ctx context.Context, functionCode, address, count int, typ string) (protocols.Value, error) {
	k, err := d.adHocKey(functionCode, address, count, typ, false)
	if err != nil {
		return protocols.Value{}, err
	}
	return d.ReadKey(ctx, k)
}

// adHocKey builds a KeyConfig for the reserved get/set RPCs.
func (d *Device) adHocKey(fc, address, count int, typ string, write bool) (*KeyConfig, error) {
	t, err := ParseType(typ, max(count, 1), write)
	if err != nil {
		return nil, err
	}
	k := &KeyConfig{Tag: typ, Codec: Codec{Type: t, FunctionCode: fc, Count: count,
		ByteOrder: d.cfg.ByteOrder, WordOrder: d.cfg.WordOrder, Bit: -1, Round: DefaultRound}}
	if t.numeric() {
		k.Count = 0 // the type decides
	}
	n := k.RequestCount()
	if address < 0 || n <= 0 || address+n-1 > 65535 || n > requestLimit(fc) {
		return nil, fmt.Errorf("address %d with %d objects is out of range", address, n)
	}
	k.Address = uint16(address)
	return k, nil
}

// Write writes value to key with its write function code (5, 6, 15 or 16).
func (d *Device) Write(ctx context.Context, key *KeyConfig, value protocols.Value) error {
	fc := key.FunctionCode
	var regs []uint16
	var bits []bool
	var err error
	switch fc {
	case 5, 15:
		bits, err = key.EncodeBits(value)
	case 6, 16:
		regs, err = key.EncodeRegisters(value)
	default:
		err = fmt.Errorf("functionCode %d is not a write", fc)
	}
	if err == nil && (len(regs) > 123 || len(bits) > 1968) {
		err = fmt.Errorf("%d objects do not fit in one write", max(len(regs), len(bits)))
	}
	n := max(len(regs), len(bits))
	if err != nil {
		return fmt.Errorf("modbus %s unit %d: key %q: %w", d.cfg.Endpoint(), d.cfg.UnitID, key.Tag, err)
	}
	l, err := d.commandLink()
	if err != nil {
		return err
	}
	addr := key.Address
	err = l.do(ctx, d.cfg.UnitID, func(c wire) error {
		// Keep the configured function code on the wire: some devices
		// implement only the single or only the multiple variant.
		switch fc {
		case 5:
			return c.WriteCoil(addr, bits[0])
		case 15:
			return c.WriteCoils(addr, bits)
		case 6:
			return c.WriteRegister(addr, regs[0])
		}
		return c.WriteRegisters(addr, regs)
	})
	if err != nil {
		return d.errorf(opName(fc, true), int(addr), n, err)
	}
	return nil
}

var (
	_ protocols.Connector = (*Connector)(nil)
	_ protocols.Device    = (*Device)(nil)
)
