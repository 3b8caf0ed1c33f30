package opcua

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols"
)

// ErrNotConnected is returned by commands while the connector has no
// session with the server.
var ErrNotConnected = errors.New("opcua: not connected")

// ErrConnection wraps failures of the session as a whole (dial, secure
// channel, session, transport), which make Run reconnect; it matches
// protocols.ErrIO.
var ErrConnection = errors.New("opcua connection")

type connError struct{ err error }

func (e *connError) Error() string   { return e.err.Error() }
func (e *connError) Unwrap() []error { return []error{ErrConnection, protocols.ErrIO, e.err} }

func connErr(format string, a ...any) error { return &connError{fmt.Errorf(format, a...)} }

// isConnectionError tells request failures that mean the session or the
// transport is gone from per-request problems.
func isConnectionError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrConnection) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var sc ua.StatusCode
	if errors.As(err, &sc) {
		switch sc {
		case ua.StatusBadTimeout, ua.StatusBadSessionIDInvalid, ua.StatusBadSessionClosed, ua.StatusBadSessionNotActivated,
			ua.StatusBadSecureChannelIDInvalid, ua.StatusBadSecureChannelClosed, ua.StatusBadServerNotConnected,
			ua.StatusBadConnectionClosed, ua.StatusBadCommunicationError, ua.StatusBadShutdown,
			ua.StatusBadServerHalted, ua.StatusBadNotConnected, ua.StatusBadDisconnect, ua.StatusBadTooManySessions:
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

var policyURI = map[string]string{
	PolicyNone:           ua.SecurityPolicyURINone,
	PolicyBasic128Rsa15:  ua.SecurityPolicyURIBasic128Rsa15,
	PolicyBasic256:       ua.SecurityPolicyURIBasic256,
	PolicyBasic256Sha256: ua.SecurityPolicyURIBasic256Sha256,
}

var modeOf = map[string]ua.MessageSecurityMode{
	ModeNone:           ua.MessageSecurityModeNone,
	ModeSign:           ua.MessageSecurityModeSign,
	ModeSignAndEncrypt: ua.MessageSecurityModeSignAndEncrypt,
}

// DefaultApplicationURI is the client's ApplicationURI when "uri" is not set.
const DefaultApplicationURI = "urn:industryos:gateway:opcua-client"

func (c *Connector) appURI() string {
	if c.cfg.Server.URI != "" {
		return c.cfg.Server.URI
	}
	return DefaultApplicationURI
}

// certDir is clientCertDir, else the directory of the connector file when
// the runtime gave an absolute path, else the working directory.
func (c *Connector) certDir() string {
	if c.cfg.Server.CertDir != "" {
		return c.cfg.Server.CertDir
	}
	if filepath.IsAbs(c.file) {
		return filepath.Dir(c.file)
	}
	return "."
}

// session is one connected gopcua client. A lost session is never
// repaired in place: gopcua v0.8.0's own reconnect can leave subscriptions
// dead behind a "Connected" state (upstream #910), so Run builds a new
// session and recreates everything on it.
type session struct {
	c      *opcua.Client
	lost   chan struct{} // closed when the secure channel fails
	once   sync.Once
	stop   chan struct{}
	limits limits
}

type limits struct {
	read, browse, write, monitorPerCall, itemsPerSub int
}

func (s *session) markLost() { s.once.Do(func() { close(s.lost) }) }

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.c.Close(ctx)
	close(s.stop)
}

// dial connects one session: endpoint selection for secured policies,
// the client certificate, the identity.
func (c *Connector) dial(ctx context.Context) (*session, error) {
	srv := c.cfg.Server
	states := make(chan opcua.ConnState, 16)
	opts := []opcua.Option{
		// Our reconnect, not gopcua's: see session.
		opcua.AutoReconnect(false),
		opcua.RequestTimeout(srv.Timeout),
		opcua.DialTimeout(srv.Timeout),
		opcua.SessionTimeout(srv.SessionTimeout),
		opcua.ApplicationURI(c.appURI()),
		opcua.ApplicationName("IndustryOS gateway"),
		opcua.ProductURI("urn:industryos:gateway"),
		opcua.StateChangedCh(states),
	}
	tokenType := ua.UserTokenTypeAnonymous
	if srv.Identity.Type == IdentityUsername {
		tokenType = ua.UserTokenTypeUserName
		opts = append(opts, opcua.AuthUsername(srv.Identity.Username, srv.Identity.Password))
	} else {
		opts = append(opts, opcua.AuthAnonymous())
	}
	secured := srv.Security != PolicyNone
	if secured || tokenType != ua.UserTokenTypeAnonymous {
		eps, err := opcua.GetEndpoints(ctx, srv.URL, opcua.DialTimeout(srv.Timeout), opcua.RequestTimeout(srv.Timeout))
		if err != nil {
			return nil, connErr("opcua %s: get endpoints: %w", srv.URL, err)
		}
		ep, err := selectEndpoint(eps, srv.Security, srv.Mode, tokenType)
		if err != nil {
			return nil, fmt.Errorf("opcua %s: %w", srv.URL, err)
		}
		if secured {
			cert, err := c.clientCert()
			if err != nil {
				return nil, fmt.Errorf("opcua %s: %w", srv.URL, err)
			}
			opts = append(opts, opcua.Certificate(cert.DER), opcua.PrivateKey(cert.Key))
			// gopcua trusts whatever certificate the endpoint presents; with
			// caCert set the server's certificate must chain to it (or be it).
			if srv.Identity.CACert != "" {
				if err := verifyServerCert(ep.ServerCertificate, srv.Identity.CACert); err != nil {
					return nil, fmt.Errorf("opcua %s: %w", srv.URL, err)
				}
			}
		}
		// SecurityFromEndpoint takes the server certificate from the endpoint,
		// which is what the channel is encrypted for.
		opts = append(opts, opcua.SecurityFromEndpoint(ep, tokenType))
	} else {
		opts = append(opts, opcua.SecurityPolicy(ua.SecurityPolicyURINone), opcua.SecurityMode(ua.MessageSecurityModeNone))
	}
	cl, err := opcua.NewClient(srv.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("opcua %s: client options: %w", srv.URL, err)
	}
	s := &session{c: cl, lost: make(chan struct{}), stop: make(chan struct{})}
	// gopcua sends state changes with a blocking send, Close included, so
	// the channel is drained for the client's whole life.
	go func() {
		connected := false
		for {
			select {
			case st := <-states:
				switch st {
				case opcua.Connected:
					connected = true
				case opcua.Disconnected, opcua.Closed:
					if connected {
						s.markLost()
					}
				}
			case <-s.stop:
				return
			}
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, srv.Timeout+srv.Timeout/2+time.Second)
	defer cancel()
	if err := cl.Connect(cctx); err != nil {
		s.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connErr("opcua %s: connect: %w", srv.URL, err)
	}
	s.limits = readLimits(ctx, cl, srv.Timeout)
	return s, nil
}

// verifyServerCert checks the endpoint's certificate against caCert: the
// same certificate (self-signed servers), or one it signed. Host names are
// not checked: OPC-UA servers are commonly reached by address.
func verifyServerCert(der []byte, caFile string) error {
	caDER, err := readCert(caFile)
	if err != nil {
		return err
	}
	if bytes.Equal(caDER, der) {
		return nil
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("%w %s: %v", ErrCertificate, caFile, err)
	}
	sc, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: server certificate: %v", ErrCertificate, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := sc.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: server certificate %q is not trusted by caCert %s: %v", ErrCertificate, sc.Subject.CommonName, caFile, err)
	}
	return nil
}

func (c *Connector) clientCert() (*ClientCert, error) {
	id := c.cfg.Server.Identity
	if id.Cert != "" && id.PrivateKey != "" {
		return LoadClientCert(id.Cert, id.PrivateKey)
	}
	c.certMu.Lock()
	defer c.certMu.Unlock()
	if c.cert == nil {
		cert, err := EnsureClientCert(c.certDir(), c.appURI())
		if err != nil {
			return nil, err
		}
		if cert.Generated {
			c.log.Info().Str("cert", cert.CertFile).Str("uri", c.appURI()).Msg("opcua: generated a self-signed client certificate; the server must trust it")
		}
		c.cert = cert
	}
	return c.cert, nil
}

func selectEndpoint(eps []*ua.EndpointDescription, policy, mode string, token ua.UserTokenType) (*ua.EndpointDescription, error) {
	uri, m := policyURI[policy], modeOf[mode]
	var best *ua.EndpointDescription
	for _, ep := range eps {
		if ep.SecurityPolicyURI != uri || ep.SecurityMode != m {
			continue
		}
		hasToken := false
		for _, t := range ep.UserIdentityTokens {
			hasToken = hasToken || t.TokenType == token
		}
		if !hasToken {
			continue
		}
		if best == nil || ep.SecurityLevel > best.SecurityLevel {
			best = ep
		}
	}
	if best != nil {
		return best, nil
	}
	var offered []string
	for _, ep := range eps {
		var toks []string
		for _, t := range ep.UserIdentityTokens {
			toks = append(toks, strings.TrimPrefix(t.TokenType.String(), "UserTokenType"))
		}
		offered = append(offered, fmt.Sprintf("%s/%s[%s]", strings.TrimPrefix(ep.SecurityPolicyURI, "http://opcfoundation.org/UA/SecurityPolicy#"),
			strings.TrimPrefix(ep.SecurityMode.String(), "MessageSecurityMode"), strings.Join(toks, ",")))
	}
	return nil, fmt.Errorf("no endpoint offers security %s/%s with %s login (server offers: %s)",
		policy, mode, strings.TrimPrefix(token.String(), "UserTokenType"), strings.Join(offered, " "))
}

// readLimits reads the server's operation limits; a server that does not
// expose them (or says 0) gets upstream's batch size of 100.
func readLimits(ctx context.Context, cl *opcua.Client, timeout time.Duration) limits {
	l := limits{read: 100, browse: 100, write: 100, monitorPerCall: 100}
	ids := []uint32{11705, 11710, 11707, 11714, 24104} // MaxNodesPerRead, Browse, Write, MaxMonitoredItemsPerCall, MaxMonitoredItemsPerSubscription
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
	for _, i := range ids {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, i), AttributeID: ua.AttributeIDValue})
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := cl.Read(rctx, req)
	if err != nil || len(res.Results) != len(ids) {
		return l
	}
	get := func(i int, cur int) int {
		dv := res.Results[i]
		if dv == nil || dv.Value == nil || isBad(dv.Status) {
			return cur
		}
		var n int
		switch x := dv.Value.Value().(type) {
		case uint32:
			n = int(x)
		case uint16:
			n = int(x)
		case int32:
			n = int(x)
		}
		if n > 0 && (cur == 0 || n < cur) {
			return n
		}
		return cur
	}
	l.read = get(0, l.read)
	l.browse = get(1, l.browse)
	l.write = get(2, l.write)
	l.monitorPerCall = get(3, l.monitorPerCall)
	l.itemsPerSub = get(4, 0)
	return l
}
