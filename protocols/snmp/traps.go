package snmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols"
)

// Trap receiver errors.
var (
	// ErrCommunity means a v1/v2c notification came with a community the
	// traps section does not accept.
	ErrCommunity = errors.New("snmp trap: community not accepted")
	// ErrNoUsers means a v3 notification came to a receiver with no users.
	ErrNoUsers = errors.New("snmp trap: v3 notification but traps.users is empty")
	// ErrUser means a v3 notification named no configured user.
	ErrUser = errors.New("snmp trap: v3 user not accepted")
)

// Listener restarts back off from minBackoff to maxBackoff.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// TrapAddr is the address the trap receiver listens on, "" while it does
// not.
func (c *Connector) TrapAddr() string {
	if p := c.trapAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run implements protocols.Source: it receives traps and informs on the
// traps section's address until ctx ends, binding again with capped
// backoff when the port cannot be had. Without a traps section it only
// waits: the connector's devices are polled by their own actors.
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	t := c.cfg.Traps
	if t == nil {
		<-ctx.Done()
		return nil
	}
	r := &trapReceiver{c: c, ctx: ctx, sink: sink, communities: map[string]bool{}, users: map[string]bool{}}
	for _, s := range t.Communities {
		r.communities[s] = true
	}
	for _, u := range t.Users {
		r.users[u.User] = true
	}
	r.sources = c.trapSources(ctx)
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	if ip := net.ParseIP(t.Host); ip != nil && ip.IsUnspecified() {
		c.log.Warn().Str("host", t.Host).Msg("snmp trap receiver listens on every interface, as the connector file says")
	}
	backoff := minBackoff
	for {
		listened, err := c.listen(ctx, r, addr, sink)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			backoff = minBackoff // a socket that worked for a while starts over
		}
		sink.Link(false, err)
		tm := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil
		case <-tm.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one TrapListener until ctx ends or its socket fails;
// listened says it was bound.
func (c *Connector) listen(ctx context.Context, r *trapReceiver, addr string, sink protocols.Sink) (listened bool, err error) {
	tl := gosnmp.NewTrapListener()
	tl.Params = c.listenerParams(sink)
	tl.OnNewTrap = r.onTrap
	errc := make(chan error, 1)
	go func() { errc <- tl.Listen(addr) }()
	select {
	case err := <-errc:
		return false, fmt.Errorf("snmp trap receiver: listen on udp %s: %w", addr, err)
	case <-tl.Listening():
	case <-ctx.Done():
		// Listen may still bind; closing before it has is not safe (the
		// listener would wait forever to report its end), so wait for it.
		select {
		case err := <-errc:
			return false, err
		case <-tl.Listening():
			tl.Close()
			<-errc
			return true, nil
		}
	}
	c.trapAddr.Store(&addr)
	defer c.trapAddr.Store(nil)
	c.log.Info().Str("listen", "udp://"+addr).Int("mappings", len(c.cfg.Traps.Mapping)).Msg("snmp trap receiver listening")
	sink.Link(true, nil)
	select {
	case err := <-errc:
		return true, fmt.Errorf("snmp trap receiver on udp %s: %w", addr, err)
	case <-ctx.Done():
		// A handler waiting for a commit sees ctx end and returns, so the
		// read loop gets to notice the close.
		tl.Close()
		<-errc
		return true, nil
	}
}

// listenerParams are the receiver's credentials: any v1/v2c notification
// is decoded (trapReceiver checks the community), v3 ones only for the
// configured users, whose passphrases the library localizes to each
// sender's engine.
func (c *Connector) listenerParams(sink protocols.Sink) *gosnmp.GoSNMP {
	t := c.cfg.Traps
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Timeout: DefaultTimeout, Logger: gosnmp.NewLogger(listenerLog{sink})}
	if len(t.Users) == 0 {
		return g
	}
	g.Version = gosnmp.Version3
	g.SecurityModel = gosnmp.UserSecurityModel
	if t.EngineID != "" {
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{AuthoritativeEngineID: t.EngineID}
	}
	table := gosnmp.NewSnmpV3SecurityParametersTable(g.Logger)
	for _, u := range t.Users {
		_ = table.Add(u.User, &gosnmp.UsmSecurityParameters{
			UserName:                 u.User,
			AuthoritativeEngineID:    t.EngineID,
			AuthenticationProtocol:   u.AuthProtocol,
			AuthenticationPassphrase: u.AuthKey,
			PrivacyProtocol:          u.PrivProtocol,
			PrivacyPassphrase:        u.PrivKey,
		})
	}
	if t.EngineID != "" {
		// An inform's sender first asks for the engine ID with a probe
		// that names no user; the entry lets the listener decode it and
		// report the ID. It authenticates nothing: handle accepts only
		// the configured users' notifications.
		_ = table.Add("", &gosnmp.UsmSecurityParameters{AuthoritativeEngineID: t.EngineID})
	}
	g.SetTrapSecurityParametersTable(table)
	return g
}

// listenerLog turns the listener's reports of packets it could not decode
// or authenticate into malformed-input counts. The library's other lines
// (packet dumps) are dropped: they can carry what a log must not.
type listenerLog struct{ sink protocols.Sink }

func (l listenerLog) Print(...any) {}

func (l listenerLog) Printf(format string, v ...any) {
	if strings.HasPrefix(format, "TrapListener:") {
		l.sink.Malformed("snmp trap receiver", fmt.Errorf(strings.TrimSpace(strings.TrimPrefix(format, "TrapListener:")), v...))
	}
}

// trapSources maps the polled devices' addresses to them, in file order
// (the first device of an address receives its traps). A host name is
// resolved once, here; one that does not resolve is logged and left out.
func (c *Connector) trapSources(ctx context.Context) map[netip.Addr]*DeviceConfig {
	out := map[netip.Addr]*DeviceConfig{}
	for _, d := range c.cfg.Devices {
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(d.IP); err == nil {
			addrs = []netip.Addr{a.Unmap()}
		} else {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", d.IP)
			cancel()
			if err != nil {
				c.log.Warn().Err(err).Str("device", d.DeviceName).Msg("snmp trap receiver: device ip does not resolve; its traps go to traps.deviceName")
			}
			for _, a := range ips {
				addrs = append(addrs, a.Unmap())
			}
		}
		for _, a := range addrs {
			if _, dup := out[a]; !dup {
				out[a] = d
			}
		}
	}
	return out
}

// trapReceiver turns notifications into pushes. The listener calls it from
// its one read loop, so it needs no lock.
type trapReceiver struct {
	c           *Connector
	ctx         context.Context
	sink        protocols.Sink
	communities map[string]bool
	users       map[string]bool
	sources     map[netip.Addr]*DeviceConfig
}

// onTrap handles one notification. The listener acknowledges an inform
// when this returns with the PDU type still InformRequest; an inform whose
// data is not committed is left unanswered (its type changed), so its
// sender sends it again.
func (r *trapReceiver) onTrap(p *gosnmp.SnmpPacket, from *net.UDPAddr) {
	inform := p.PDUType == gosnmp.InformRequest
	if !r.handle(p, from, inform) && inform {
		p.PDUType = gosnmp.SNMPv2Trap
	}
}

// handle reports whether the notification may be acknowledged: its data
// is committed, or it was given up on with a count (nothing mapped, no
// device) so a resend would not change that.
func (r *trapReceiver) handle(p *gosnmp.SnmpPacket, from *net.UDPAddr, inform bool) bool {
	src := from.AddrPort().Addr().Unmap()
	where := "trap from " + src.String()
	switch p.Version {
	case gosnmp.Version1, gosnmp.Version2c:
		if !r.communities[p.Community] {
			r.sink.Malformed(where, ErrCommunity) // the community itself is a secret
			return false
		}
	case gosnmp.Version3:
		if len(r.c.cfg.Traps.Users) == 0 {
			r.sink.Malformed(where, ErrNoUsers)
			return false
		}
		usm, _ := p.SecurityParameters.(*gosnmp.UsmSecurityParameters)
		if usm == nil || !r.users[usm.UserName] {
			r.sink.Malformed(where, ErrUser)
			return false
		}
	}
	trapOID := TrapOID(p)
	reading, matched, errs := TrapReading(r.c.cfg.Traps.Mapping, trapOID, p.Variables)
	for _, err := range errs {
		r.sink.Malformed(where, fmt.Errorf("trap %s: %w", oidText(trapOID), err))
	}
	n := len(reading.Telemetry) + len(reading.Attributes)
	if !matched || n == 0 {
		r.sink.Unmatched()
		return true
	}
	push := protocols.Push{Reading: reading}
	if d := r.sources[src]; d != nil {
		// A polled device: its actor has its strategies (trap keys' merged in).
		push.Device, push.Profile = d.DeviceName, d.DeviceType
	} else if t := r.c.cfg.Traps; t.DeviceName != "" {
		push.Device, push.Profile = t.DeviceName, t.DeviceType
		push.Report, push.KeyReport = r.c.cfg.Report, r.c.trapReports
	} else {
		r.sink.Unmatched()
		return true
	}
	if !inform {
		if err := r.sink.Push(r.ctx, push); err != nil {
			r.sink.Dropped(where, n, fmt.Errorf("trap %s for %q: %w", oidText(trapOID), push.Device, err))
			return false
		}
		return true
	}
	done := make(chan error, 1)
	push.Done = func(err error) { done <- err }
	if err := r.sink.Push(r.ctx, push); err != nil {
		return false // not acknowledged: the sender resends
	}
	// The listener reads the next packet only when this returns: a journal
	// that stalls must not stop the receiver. Senders resend an unanswered
	// inform after about a second (net-snmp's default timeout), so waiting
	// longer gains nothing; the late commit makes the resend a duplicate,
	// never a loss.
	wait := time.NewTimer(informCommitWait)
	defer wait.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-wait.C:
		// At most one line a second: each one held the receiver that long.
		r.c.log.Warn().Str("where", where).Str("trap", oidText(trapOID)).Str("device", push.Device).
			Dur("waited", informCommitWait).Msg("snmp inform not committed in time; left unanswered so its sender resends it")
		return false
	case <-r.ctx.Done():
		return false
	}
}

// informCommitWait is how long one inform may hold the receiver.
const informCommitWait = time.Second

var _ protocols.Source = (*Connector)(nil)
