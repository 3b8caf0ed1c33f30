package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/script"
)

// SetExample is the reserved set params form, quoted in messages.
const SetExample = "address=127.0.0.1;port=50001;value=text;"

// okResult is upstream's reply to a write, {"result": str("ok")}.
var okResult = protocols.RPCResult(`{"result":"ok"}`)

// dialTimeout bounds the reserved set's outgoing TCP connection.
const dialTimeout = 5 * time.Second

// Commander returns the platform-write side of a configured device, nil
// for a device this connector does not configure.
func (c *Connector) Commander(device, _ string) protocols.Commander {
	d := c.byName[device]
	if d == nil {
		return nil
	}
	return &commander{c: c, d: d}
}

type commander struct {
	c *Connector
	d *device
}

// SharedAttributeKeys is empty: upstream does not ask for a socket
// device's shared attributes when it connects, and the device may have no
// connection to write them to then.
func (m *commander) SharedAttributeKeys() []string { return nil }

// UpdateAttributes writes every value an attributeUpdates[] entry declares
// to the device's connection, as text in the entry's encoding.
// A value no entry declares goes to the device script's downlink(cmd),
// when it has one, and what it returns is written.
func (m *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	ignored, err := protocols.UpdateEach(values, m.d.cfg.Updates,
		func(dl *Downlink, name string) bool { return dl.Attribute == name },
		func(dl *Downlink, name string, raw json.RawMessage) error {
			if err := m.send(ctx, dl.Encoding, Text(raw)); err != nil {
				return fmt.Errorf("socket device %q: attribute %q (%s): %w", m.d.cfg.Name, name, dl.Path, err)
			}
			return nil
		})
	if len(ignored) == 0 || m.d.script == nil || !m.d.script.HasDownlink() {
		return ignored, err
	}
	ignored, serr := m.d.script.UpdateUnclaimed(m.d.cfg.Name, values, ignored, script.StreamKeys,
		func(_ string, outs []script.Output) error { return m.writeAll(ctx, outs) })
	if serr != nil {
		serr = fmt.Errorf("socket device %q: %w", m.d.cfg.Name, serr)
	}
	return ignored, errors.Join(err, serr)
}

// scriptRPC hands an RPC no serverSideRpc entry takes to the device
// script's downlink(cmd); handled is false when the device has no such
// script or it returned nothing (then "set" and the unknown-method error
// follow as without a script).
func (m *commander) scriptRPC(ctx context.Context, req protocols.RPCRequest) (res protocols.RPCResult, handled bool, err error) {
	if m.d.script == nil || !m.d.script.HasDownlink() {
		return nil, false, nil
	}
	outs, err := m.d.script.DownlinkFor(script.RPCCommand(req), script.StreamKeys)
	if err != nil {
		return nil, true, err
	}
	if len(outs) == 0 {
		return nil, false, nil
	}
	if err := m.writeAll(ctx, outs); err != nil {
		return nil, true, err
	}
	return protocols.RPCResult(script.Reply(outs, json.RawMessage(okResult))), true, nil
}

// writeAll writes each output's payload, as it is, to the device's
// connection; an empty payload writes nothing.
func (m *commander) writeAll(ctx context.Context, outs []script.Output) error {
	for _, o := range outs {
		if len(o.Payload) == 0 {
			continue
		}
		p := m.d.last.Load()
		if p == nil {
			return fmt.Errorf("%w: it has not sent anything yet", ErrNoConnection)
		}
		if err := m.c.write(ctx, p, o.Payload); err != nil {
			return err
		}
	}
	return nil
}

// RPC writes a serverSideRpc method's params to the device's connection,
// or runs the reserved set ("address=…;port=…;value=…;", address and port
// defaulting to the device's connection), and replies upstream's
// {"result":"ok"} once written.
func (m *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	for _, dl := range m.d.cfg.RPC {
		if dl.Method != req.Method {
			continue
		}
		if len(req.Params) == 0 {
			return nil, m.rpcErr(req.Method, errors.New("params are required: the text to write"))
		}
		if err := m.send(ctx, dl.Encoding, Text(req.Params)); err != nil {
			return nil, m.rpcErr(req.Method, err)
		}
		return okResult, nil
	}
	if res, handled, err := m.scriptRPC(ctx, req); handled {
		if err != nil {
			return nil, m.rpcErr(req.Method, err)
		}
		return res, nil
	}
	if strings.EqualFold(req.Method, "set") {
		s, err := ParseSetParams(req.Params)
		if err != nil {
			return nil, m.rpcErr(req.Method, err)
		}
		if s.Address == "" {
			enc := m.d.cfg.Encoding
			if s.Encoding != nil {
				enc = *s.Encoding
			}
			err = m.send(ctx, enc, s.Value)
		} else {
			err = m.c.set(ctx, s, m.d.cfg.Encoding)
		}
		if err != nil {
			return nil, m.rpcErr(req.Method, err)
		}
		return okResult, nil
	}
	known := []string{"set"}
	for _, dl := range m.d.cfg.RPC {
		known = append(known, dl.Method)
	}
	return nil, m.rpcErr(req.Method, fmt.Errorf("%w %q (known: %s)", protocols.ErrUnknownMethod, req.Method, strings.Join(known, ", ")))
}

func (m *commander) send(ctx context.Context, enc Encoding, text string) error {
	b, err := enc.Encode(text)
	if err != nil {
		return fmt.Errorf("encode as %s: %w", enc.Name, err)
	}
	p := m.d.last.Load()
	if p == nil {
		return fmt.Errorf("%w: it has not sent anything yet", ErrNoConnection)
	}
	return m.c.write(ctx, p, b)
}

func (m *commander) rpcErr(method string, err error) error {
	return fmt.Errorf("socket device %q: rpc %s: %w", m.d.cfg.Name, method, err)
}

// ConnectorRPC runs "socket_set" on the gateway device: params
// "address=…;port=…;value=…;" (optionally "encoding=…;"), written to that
// peer's open connection, or over a new TCP connection (a UDP datagram)
// when it has none, as upstream does.
func (c *Connector) ConnectorRPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	_, name, _ := strings.Cut(req.Method, "_")
	if name != "set" {
		return nil, fmt.Errorf("%w %q for socket connector %q (want socket_set)", protocols.ErrUnknownMethod, req.Method, c.name)
	}
	s, err := ParseSetParams(req.Params)
	if err == nil && s.Address == "" {
		err = fmt.Errorf("address and port are required, e.g. %q", SetExample)
	}
	if err == nil {
		err = c.set(ctx, s, Encoding{})
	}
	if err != nil {
		return nil, fmt.Errorf("socket connector %q: rpc %s: %w", c.name, req.Method, err)
	}
	return okResult, nil
}

// SetParams are the reserved set's params.
type SetParams struct {
	Address  string // empty: the device's own connection
	Port     int
	Value    string
	Encoding *Encoding // nil: the device's (utf-8 on the connector level)
}

// ParseSetParams reads "address=…;port=…;value=…;encoding=…;" (a JSON
// string); address and port go together, value is required.
func ParseSetParams(raw json.RawMessage) (SetParams, error) {
	var s SetParams
	text, ok := protocols.JSONString(raw)
	if !ok {
		return s, fmt.Errorf("params must be a string like %q", SetExample)
	}
	var haveValue, havePort bool
	for part := range strings.SplitSeq(text, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, found := strings.Cut(part, "=")
		if !found {
			return s, fmt.Errorf("%q is not key=value (want %q)", part, SetExample)
		}
		switch strings.TrimSpace(k) {
		case "address":
			s.Address = strings.TrimSpace(v)
		case "port":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 || n > 65535 {
				return s, fmt.Errorf("port %q is not a port number", v)
			}
			s.Port, havePort = n, true
		case "value":
			s.Value, haveValue = v, true
		case "encoding":
			e, err := LookupEncoding(v)
			if err != nil {
				return s, err
			}
			s.Encoding = &e
		default:
			return s, fmt.Errorf("unknown key %q (want address, port, value, encoding)", k)
		}
	}
	switch {
	case !haveValue:
		return s, fmt.Errorf("value is required (want %q)", SetExample)
	case (s.Address == "") != !havePort:
		return s, fmt.Errorf("address and port go together (want %q)", SetExample)
	}
	return s, nil
}

// set writes s.Value to s.Address:s.Port: on that peer's open TCP
// connection when there is one, otherwise over a new connection (TCP) or
// as a datagram from the server socket (UDP).
func (c *Connector) set(ctx context.Context, s SetParams, def Encoding) error {
	enc := def
	if s.Encoding != nil {
		enc = *s.Encoding
	}
	if enc.encode == nil {
		enc, _ = LookupEncoding(DefaultEncoding)
	}
	b, err := enc.Encode(s.Value)
	if err != nil {
		return fmt.Errorf("encode as %s: %w", enc.Name, err)
	}
	addr := s.Address + ":" + strconv.Itoa(s.Port)
	hostPort := net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
	if c.cfg.Type == "UDP" {
		ua, err := net.ResolveUDPAddr("udp", hostPort)
		if err != nil {
			return fmt.Errorf("%w: %v", protocols.ErrIO, err)
		}
		return c.write(ctx, &peer{addr: addr, udp: ua}, b)
	}
	c.connMu.Lock()
	cn := c.conns[addr]
	c.connMu.Unlock()
	if cn != nil {
		return c.write(ctx, &peer{addr: addr, tcp: cn}, b)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", hostPort)
	if err != nil {
		return fmt.Errorf("%w: %v", protocols.ErrIO, err)
	}
	defer nc.Close()
	return c.write(ctx, &peer{addr: addr, tcp: &conn{c: nc, addr: addr}}, b)
}

var (
	_ protocols.Commander    = (*commander)(nil)
	_ protocols.ConnectorRPC = (*Connector)(nil)
)
