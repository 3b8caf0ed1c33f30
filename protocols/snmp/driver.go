package snmp

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("snmp", protocols.FactoryOf(NewConnector))
	protocols.RegisterFields("snmp", Sections())
}

// Sample is a complete upstream-format snmp connector file.
//
//go:embed sample.json
var Sample []byte

// Sentinel errors; each matches a generic protocols kind too.
var (
	// ErrTimeout means the agent did not answer within the key's timeout.
	ErrTimeout = fmt.Errorf("snmp: request timed out: %w", protocols.ErrTimeout)
	// ErrConnection means the socket failed (unresolvable host, refused).
	ErrConnection = fmt.Errorf("snmp: connection failed: %w", protocols.ErrIO)
	// ErrClosed means the device was closed.
	ErrClosed = errors.New("snmp: device closed")
)

// classified keeps the library's message and adds our class to the chain.
type classified struct{ class, err error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.class, e.err} }

func classify(err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.Is(err, gosnmp.ErrMaxRetriesExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		os.IsTimeout(err) || (errors.As(err, &ne) && ne.Timeout()) {
		return &classified{ErrTimeout, err}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &classified{ErrConnection, err}
}

// Connector is a configured snmp connector.
type Connector struct {
	name    string
	cfg     *Config
	devices []*Device
	log     zerolog.Logger
	// trapReports are the strategies of the keys traps make (ON_RECEIVED
	// unless the key says otherwise): the trap device's, and merged into
	// each polled device's, whose actor gets traps from its agent.
	trapReports map[string]protocols.ReportStrategy
	trapAddr    atomic.Pointer[string]
}

// NewConnector is New with the concrete type.
func NewConnector(cfg protocols.ConnectorConfig) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "snmp", func(o *spec.Obj) (*Config, string) {
		c := Parse(o, cfg.Report)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, cfg: parsed, log: cfg.Logger}
	if t := parsed.Traps; t != nil {
		c.trapReports = trapReports(t)
	}
	for _, d := range parsed.Devices {
		dev := newDevice(d)
		for k, rs := range c.trapReports {
			if _, set := dev.info.KeyReport[k]; !set {
				if dev.info.KeyReport == nil {
					dev.info.KeyReport = map[string]protocols.ReportStrategy{}
				}
				dev.info.KeyReport[k] = rs
			}
		}
		c.devices = append(c.devices, dev)
	}
	return c, nil
}

// trapReports: a trap is an event, so its keys report every value
// (ON_RECEIVED) unless their reportStrategy says otherwise.
func trapReports(t *TrapConfig) map[string]protocols.ReportStrategy {
	out := map[string]protocols.ReportStrategy{}
	received := protocols.ReportStrategy{Type: protocols.OnReceived}
	for _, m := range t.Mapping {
		if m.TrapKey != "" {
			out[m.TrapKey] = received
		}
		for _, k := range append(append([]*TrapKey(nil), m.Attributes...), m.Telemetry...) {
			if k.Report.IsSet() {
				out[k.Key] = k.Report
			} else if _, set := out[k.Key]; !set {
				out[k.Key] = received
			}
		}
	}
	return out
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices returns one device per devices[] entry, in file order. Each is
// polled by its own actor, so a dead agent delays nobody else.
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

// Close closes every device's socket.
func (c *Connector) Close() error {
	for _, d := range c.devices {
		_ = d.Close()
	}
	return nil
}

// Device is one agent. Poll and the commands run on the device's actor one
// at a time, which is what makes its single *gosnmp.GoSNMP (not safe for
// concurrent use) safe here.
type Device struct {
	cfg    *DeviceConfig
	info   protocols.DeviceInfo
	client *gosnmp.GoSNMP
	closed bool
}

func newDevice(c *DeviceConfig) *Device {
	d := &Device{cfg: c}
	d.info = protocols.DeviceInfo{
		Name:                c.DeviceName,
		Type:                c.DeviceType,
		PollPeriod:          c.PollPeriod,
		Report:              c.Report,
		ConnectAttemptCount: 1,
		RetryDelay:          time.Second,
	}
	for _, sec := range [][]*KeyConfig{c.Attributes, c.Telemetry} {
		for _, k := range sec {
			if k.Report.IsSet() {
				if d.info.KeyReport == nil {
					d.info.KeyReport = map[string]protocols.ReportStrategy{}
				}
				d.info.KeyReport[k.Key] = k.Report
			}
		}
	}
	return d
}

// Info describes the device to the device actor.
func (d *Device) Info() protocols.DeviceInfo { return d.info }

// Config is the device's parsed entry.
func (d *Device) Config() *DeviceConfig { return d.cfg }

// Close closes the socket; a closed device fails with ErrClosed.
func (d *Device) Close() error {
	d.closed = true
	if d.client != nil && d.client.Conn != nil {
		_ = d.client.Conn.Close()
	}
	d.client = nil
	return nil
}

// conn returns the device's client, set up for one request of key k.
func (d *Device) conn(ctx context.Context, community string, timeout time.Duration) (*gosnmp.GoSNMP, error) {
	if d.closed {
		return nil, ErrClosed
	}
	if d.client == nil {
		c := d.cfg
		g := &gosnmp.GoSNMP{
			Target:    c.IP,
			Port:      uint16(c.Port),
			Transport: "udp",
			Version:   c.Version,
			Community: c.Community,
			Timeout:   c.Timeout,
			Retries:   c.Retries,
			MaxOids:   maxOIDs,
			Context:   ctx,
		}
		if u := c.V3; u != nil {
			g.SecurityModel = gosnmp.UserSecurityModel
			g.MsgFlags = u.Level
			g.ContextName = u.ContextName
			g.SecurityParameters = &gosnmp.UsmSecurityParameters{
				UserName:                 u.User,
				AuthenticationProtocol:   u.AuthProtocol,
				AuthenticationPassphrase: u.AuthKey,
				PrivacyProtocol:          u.PrivProtocol,
				PrivacyPassphrase:        u.PrivKey,
			}
		}
		if err := g.Connect(); err != nil {
			return nil, fmt.Errorf("snmp %s: %w", d.endpoint(), classify(err))
		}
		d.client = g
	}
	g := d.client
	g.Context = ctx
	g.Community = d.cfg.Community
	if community != "" {
		g.Community = community
	}
	g.Timeout = timeout
	return g, nil
}

func (d *Device) endpoint() string {
	return net.JoinHostPort(d.cfg.IP, fmt.Sprint(d.cfg.Port))
}

// Poll reads every attribute and telemetry key. An agent error on one key
// is returned with the others' values; a timeout stops the poll there (the
// agent is gone; upstream likewise dropped the rest of the poll) and
// returns what was read with the error.
func (d *Device) Poll(ctx context.Context) (protocols.Reading, error) {
	var r protocols.Reading
	var errs []error
	for _, sec := range []struct {
		keys []*KeyConfig
		dst  *[]protocols.Datapoint
	}{{d.cfg.Attributes, &r.Attributes}, {d.cfg.Telemetry, &r.Telemetry}} {
		for _, k := range sec.keys {
			v, err := d.ReadKey(ctx, k)
			if err != nil {
				errs = append(errs, err)
				if errors.Is(err, ErrAgent) {
					continue
				}
				return r, errors.Join(errs...)
			}
			*sec.dst = append(*sec.dst, protocols.Datapoint{Key: k.Key, Value: v})
		}
	}
	return r, errors.Join(errs...)
}

// PollReadingOwned says Poll's Reading is the caller's (see
// protocols.OwnedReadingPoller): its slices are made per call.
func (d *Device) PollReadingOwned() {}

var _ protocols.OwnedReadingPoller = (*Device)(nil)

// ReadKey runs one key's method and converts its result.
func (d *Device) ReadKey(ctx context.Context, k *KeyConfig) (protocols.Value, error) {
	pdus, err := d.read(ctx, k)
	if err != nil {
		return protocols.Value{}, fmt.Errorf("snmp %s key %q (%s): %w", d.endpoint(), k.Key, k.Method, err)
	}
	base := ""
	if len(k.OIDs) > 0 {
		base = k.OIDs[0]
	}
	v, err := Convert(k.Method, base, pdus)
	if err != nil {
		return protocols.Value{}, fmt.Errorf("snmp %s key %q (%s): %w", d.endpoint(), k.Key, k.Method, err)
	}
	return v, nil
}

// checked turns a response's error-status into ErrAgent.
func checked(p *gosnmp.SnmpPacket, err error) ([]gosnmp.SnmpPDU, error) {
	if err != nil {
		return nil, classify(err)
	}
	if p.Error != gosnmp.NoError {
		return nil, fmt.Errorf("%w: %s at varbind %d", ErrAgent, p.Error, p.ErrorIndex)
	}
	return p.Variables, nil
}

// read runs k's method and returns the varbinds it produced.
func (d *Device) read(ctx context.Context, k *KeyConfig) ([]gosnmp.SnmpPDU, error) {
	g, err := d.conn(ctx, k.Community, k.Timeout)
	if err != nil {
		return nil, err
	}
	v1 := g.Version == gosnmp.Version1
	g.MaxRepetitions = uint32(k.BulkSize)
	switch k.Method {
	case "get", "multiget":
		var out []gosnmp.SnmpPDU
		for i := 0; i < len(k.OIDs); i += maxOIDs {
			pdus, err := checked(g.Get(k.OIDs[i:min(i+maxOIDs, len(k.OIDs))]))
			if err != nil {
				return nil, err
			}
			out = append(out, pdus...)
		}
		return out, nil
	case "getnext", "multigetnext":
		return checked(g.GetNext(k.OIDs))
	case "walk", "multiwalk", "table":
		return walk(g, k.OIDs, false)
	case "bulkwalk", "bulktable":
		return walk(g, k.OIDs, !v1)
	case "bulkget":
		if v1 {
			return bulkgetV1(g, k)
		}
		oids := append(append([]string(nil), k.ScalarOIDs...), k.RepeatingOIDs...)
		return checked(g.GetBulk(oids, uint8(min(len(k.ScalarOIDs), 255)), uint32(k.MaxListSize)))
	}
	return nil, fmt.Errorf("method %q cannot read", k.Method)
}

func walk(g *gosnmp.GoSNMP, roots []string, bulk bool) ([]gosnmp.SnmpPDU, error) {
	var out []gosnmp.SnmpPDU
	for _, root := range roots {
		var pdus []gosnmp.SnmpPDU
		var err error
		if bulk {
			pdus, err = g.BulkWalkAll(root)
		} else {
			pdus, err = g.WalkAll(root)
		}
		if err != nil {
			if strings.Contains(err.Error(), "response with error") {
				return nil, fmt.Errorf("%w: %v", ErrAgent, err)
			}
			return nil, classify(err)
		}
		out = append(out, pdus...)
	}
	return out, nil
}

// bulkgetV1 does what GETBULK does with GETNEXTs, since v1 has no GETBULK:
// one next of each scalar, then maxListSize successive nexts of each
// repeating OID.
func bulkgetV1(g *gosnmp.GoSNMP, k *KeyConfig) ([]gosnmp.SnmpPDU, error) {
	var out []gosnmp.SnmpPDU
	if len(k.ScalarOIDs) > 0 {
		pdus, err := checked(g.GetNext(k.ScalarOIDs))
		if err != nil {
			return nil, err
		}
		out = append(out, pdus...)
	}
	for _, oid := range k.RepeatingOIDs {
		cur := oid
		for range k.MaxListSize {
			pdus, err := checked(g.GetNext([]string{cur}))
			if err != nil {
				if errors.Is(err, ErrAgent) && len(out) > 0 {
					break // end of MIB in v1 is noSuchName
				}
				return nil, err
			}
			if len(pdus) != 1 || pdus[0].Type == gosnmp.EndOfMibView {
				break
			}
			out = append(out, pdus[0])
			cur = pdus[0].Name
		}
	}
	return out, nil
}
