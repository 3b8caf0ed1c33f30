package interop_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols/opcua/interop"
)

// server starts a node-opcua server for one test (about 3 s, most of it the
// standard nodeset load and the server certificate generation).
func server(t *testing.T) *interop.Server {
	t.Helper()
	return interop.Start(t, interop.Options{})
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a gopcua client and closes it when the test ends.
func connect(t *testing.T, ctx context.Context, endpoint string, opts ...opcua.Option) *opcua.Client {
	t.Helper()
	opts = append([]opcua.Option{
		opcua.RequestTimeout(10 * time.Second),
		opcua.DialTimeout(5 * time.Second),
		opcua.AutoReconnect(false),
	}, opts...)
	c, err := opcua.NewClient(endpoint, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	})
	return c
}

func endpoint(t *testing.T, ctx context.Context, srv *interop.Server, policy string, mode ua.MessageSecurityMode) *ua.EndpointDescription {
	t.Helper()
	eps, err := opcua.GetEndpoints(ctx, srv.URL)
	if err != nil {
		t.Fatalf("GetEndpoints: %v", err)
	}
	ep, err := opcua.SelectEndpoint(eps, policy, mode)
	if err != nil {
		t.Fatalf("SelectEndpoint(%s, %s): %v", policy, mode, err)
	}
	return ep
}

func read(t *testing.T, ctx context.Context, c *opcua.Client, nodeID string) any {
	t.Helper()
	id, err := ua.ParseNodeID(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Read(ctx, &ua.ReadRequest{
		NodesToRead:        []*ua.ReadValueID{{NodeID: id, AttributeID: ua.AttributeIDValue}},
		TimestampsToReturn: ua.TimestampsToReturnBoth,
	})
	if err != nil {
		t.Fatalf("Read %s: %v", nodeID, err)
	}
	if len(res.Results) != 1 || res.Results[0].Status != ua.StatusOK {
		t.Fatalf("Read %s: %+v", nodeID, res.Results)
	}
	return res.Results[0].Value.Value()
}

func call(t *testing.T, ctx context.Context, c *opcua.Client, srv *interop.Server, method string, args ...any) *ua.CallMethodResult {
	t.Helper()
	in := make([]*ua.Variant, len(args))
	for i, a := range args {
		in[i] = ua.MustVariant(a)
	}
	res, err := c.Call(ctx, &ua.CallMethodRequest{
		ObjectID:       ua.MustParseNodeID(srv.NodeID("Boiler1")),
		MethodID:       ua.MustParseNodeID(srv.NodeID("Boiler1." + method)),
		InputArguments: in,
	})
	if err != nil {
		t.Fatalf("Call %s: %v", method, err)
	}
	return res
}

// clientCert makes a self-signed RSA 2048 client certificate whose URI SAN is
// the ApplicationURI, as OPC UA requires.
func clientCert(t *testing.T, appURI string) ([]byte, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(appURI)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "iotgw interop test client", Organization: []string{"IndustryOS"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestAnonymousNone(t *testing.T) {
	t.Parallel()
	srv := server(t)
	ctx := ctxT(t)
	ep := endpoint(t, ctx, srv, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone)
	c := connect(t, ctx, ep.EndpointURL,
		opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous), opcua.AuthAnonymous())

	ns, err := c.FindNamespace(ctx, interop.NamespaceURI)
	if err != nil || int(ns) != srv.NamespaceIndex {
		t.Fatalf("FindNamespace = %d, %v; READY said %d", ns, err, srv.NamespaceIndex)
	}
	if got := read(t, ctx, c, srv.NodeID("Boiler1.Pressure")); got != interop.PressureValue {
		t.Errorf("Pressure = %#v", got)
	}
	if got := read(t, ctx, c, srv.NodeID("Boiler1.Status")); got != interop.StatusValue {
		t.Errorf("Status = %#v", got)
	}
	if got := read(t, ctx, c, srv.NodeID("Boiler1.Setpoint")); got != interop.SetpointDefault {
		t.Errorf("Setpoint = %#v", got)
	}

	// Temperature is a Double that changes every 100 ms: poll until it does.
	first, ok := read(t, ctx, c, srv.NodeID("Boiler1.Temperature")).(float64)
	if !ok {
		t.Fatalf("Temperature is not a Double")
	}
	for {
		if v := read(t, ctx, c, srv.NodeID("Boiler1.Temperature")).(float64); v != first {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Temperature stuck at %v", first)
		case <-time.After(20 * time.Millisecond):
		}
	}

	// The device tree is browsable: Objects -> Devices -> Boiler1 -> variables and methods.
	names := func(n *opcua.Node, ref uint32) map[string]bool {
		t.Helper()
		kids, err := n.ReferencedNodes(ctx, ref, ua.BrowseDirectionForward, ua.NodeClassAll, true)
		if err != nil {
			t.Fatalf("browse %s: %v", n.ID, err)
		}
		m := map[string]bool{}
		for _, k := range kids {
			bn, err := k.BrowseName(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m[bn.Name] = true
		}
		return m
	}
	objects := names(c.Node(ua.NewNumericNodeID(0, id.ObjectsFolder)), id.Organizes)
	if !objects["Devices"] {
		t.Fatalf("Objects has no Devices: %v", objects)
	}
	if devs := names(c.Node(ua.MustParseNodeID(srv.NodeID("Devices"))), id.Organizes); !devs["Boiler1"] {
		t.Fatalf("Devices has no Boiler1: %v", devs)
	}
	kids := names(c.Node(ua.MustParseNodeID(srv.NodeID("Boiler1"))), id.HasComponent)
	for _, want := range []string{"Temperature", "Pressure", "Status", "Setpoint", "ResetCount", "Multiply", "Reset"} {
		if !kids[want] {
			t.Errorf("Boiler1 has no %s: %v", want, kids)
		}
	}

	// Setpoint is writable (Double only), Temperature is not.
	write := func(nodeID string, v any) ua.StatusCode {
		t.Helper()
		res, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
			NodeID: ua.MustParseNodeID(nodeID), AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)},
		}}})
		if err != nil {
			t.Fatalf("Write %s: %v", nodeID, err)
		}
		return res.Results[0]
	}
	if st := write(srv.NodeID("Boiler1.Setpoint"), 72.5); st != ua.StatusOK {
		t.Fatalf("write Setpoint: %v", st)
	}
	if got := read(t, ctx, c, srv.NodeID("Boiler1.Setpoint")); got != 72.5 {
		t.Errorf("Setpoint after write = %#v", got)
	}
	if st := write(srv.NodeID("Boiler1.Setpoint"), int64(1)); st == ua.StatusOK {
		t.Errorf("writing an Int64 into the Double Setpoint succeeded")
	}
	if st := write(srv.NodeID("Boiler1.Temperature"), 1.0); st == ua.StatusOK {
		t.Errorf("writing the read-only Temperature succeeded")
	}
}

func TestUsernameLogin(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{Username: "operator", Password: "s3cret"})
	ctx := ctxT(t)
	ep := endpoint(t, ctx, srv, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone)

	c := connect(t, ctx, ep.EndpointURL,
		opcua.AuthUsername("operator", "s3cret"), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName))
	if got := read(t, ctx, c, srv.NodeID("Boiler1.Status")); got != interop.StatusValue {
		t.Errorf("Status = %#v", got)
	}

	bad, err := opcua.NewClient(ep.EndpointURL, opcua.AutoReconnect(false), opcua.RequestTimeout(10*time.Second),
		opcua.AuthUsername("operator", "wrong"), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Connect(ctx)
	_ = bad.Close(ctx)
	if !errors.Is(err, ua.StatusBadUserAccessDenied) && !errors.Is(err, ua.StatusBadIdentityTokenRejected) &&
		!errors.Is(err, ua.StatusBadIdentityTokenInvalid) {
		t.Fatalf("wrong password: Connect = %v, want an access-denied status", err)
	}
}

func TestBasic256Sha256(t *testing.T) {
	t.Parallel()
	srv := server(t)
	ctx := ctxT(t)
	const appURI = "urn:industryos:iotgw:interop-test"
	cert, key := clientCert(t, appURI)

	for _, tc := range []struct {
		name string
		mode ua.MessageSecurityMode
		auth ua.UserTokenType
	}{
		{"SignAndEncrypt/anonymous", ua.MessageSecurityModeSignAndEncrypt, ua.UserTokenTypeAnonymous},
		{"SignAndEncrypt/username", ua.MessageSecurityModeSignAndEncrypt, ua.UserTokenTypeUserName},
		{"Sign/anonymous", ua.MessageSecurityModeSign, ua.UserTokenTypeAnonymous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := endpoint(t, ctx, srv, ua.SecurityPolicyURIBasic256Sha256, tc.mode)
			opts := []opcua.Option{opcua.Certificate(cert), opcua.PrivateKey(key), opcua.ApplicationURI(appURI)}
			if tc.auth == ua.UserTokenTypeUserName {
				opts = append(opts, opcua.AuthUsername(srv.Username, srv.Password))
			} else {
				opts = append(opts, opcua.AuthAnonymous())
			}
			opts = append(opts, opcua.SecurityFromEndpoint(ep, tc.auth))
			c := connect(t, ctx, ep.EndpointURL, opts...)
			if sc := c.SecureChannel(); sc == nil {
				t.Fatal("no secure channel")
			}
			if got := read(t, ctx, c, srv.NodeID("Boiler1.Pressure")); got != interop.PressureValue {
				t.Errorf("Pressure = %#v", got)
			}
			res := call(t, ctx, c, srv, "Multiply", 1.5, 2.0)
			if res.StatusCode != ua.StatusOK || len(res.OutputArguments) != 1 || res.OutputArguments[0].Value() != 3.0 {
				t.Errorf("Multiply over %s: %v %v", tc.name, res.StatusCode, res.OutputArguments)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	srv := server(t)
	ctx := ctxT(t)
	c := connect(t, ctx, srv.URL,
		opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.SecurityPolicy(ua.SecurityPolicyURINone), opcua.AuthAnonymous())

	res := call(t, ctx, c, srv, "Multiply", 3.0, 4.0)
	if res.StatusCode != ua.StatusOK {
		t.Fatalf("Multiply(3, 4): %v", res.StatusCode)
	}
	if len(res.OutputArguments) != 1 || res.OutputArguments[0].Value() != 12.0 {
		t.Fatalf("Multiply(3, 4) = %v, want [12]", res.OutputArguments)
	}

	// The server checks argument types and count, as a PLC would.
	if res := call(t, ctx, c, srv, "Multiply", int64(3), int64(4)); res.StatusCode == ua.StatusOK {
		t.Errorf("Multiply with Int64 arguments succeeded: %v", res.OutputArguments)
	}
	if res := call(t, ctx, c, srv, "Multiply", 3.0); res.StatusCode == ua.StatusOK {
		t.Errorf("Multiply with one argument succeeded")
	}

	// Reset: Setpoint back to its default, ResetCount += 1.
	if got := read(t, ctx, c, srv.NodeID("Boiler1.ResetCount")); got != int32(0) {
		t.Fatalf("ResetCount = %#v", got)
	}
	if res := call(t, ctx, c, srv, "Reset"); res.StatusCode != ua.StatusOK || len(res.OutputArguments) != 0 {
		t.Fatalf("Reset(): %v %v", res.StatusCode, res.OutputArguments)
	}
	if got := read(t, ctx, c, srv.NodeID("Boiler1.ResetCount")); got != int32(1) {
		t.Fatalf("ResetCount after Reset = %#v", got)
	}
}

func TestSubscriptionAndRestart(t *testing.T) {
	t.Parallel()
	srv := server(t)
	ctx := ctxT(t)
	c := connect(t, ctx, srv.URL,
		opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.SecurityPolicy(ua.SecurityPolicyURINone), opcua.AuthAnonymous())

	notify := make(chan *opcua.PublishNotificationData, 64)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 100 * time.Millisecond}, notify)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	mres, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth,
		opcua.NewMonitoredItemCreateRequestWithDefaults(ua.MustParseNodeID(srv.NodeID("Boiler1.Temperature")), ua.AttributeIDValue, 7))
	if err != nil || mres.Results[0].StatusCode != ua.StatusOK {
		t.Fatalf("Monitor: %v %+v", err, mres)
	}
	seen := map[float64]bool{}
	for len(seen) < 3 {
		select {
		case n := <-notify:
			if n.Error != nil {
				t.Fatalf("notification: %v", n.Error)
			}
			if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
				for _, it := range dc.MonitoredItems {
					if it.ClientHandle == 7 {
						seen[it.Value.Value.Value().(float64)] = true
					}
				}
			}
		case <-ctx.Done():
			t.Fatalf("only %d distinct Temperature values", len(seen))
		}
	}
	_ = sub.Cancel(ctx)

	cert, err := os.ReadFile(srv.ServerCertFile)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL
	srv.Restart()
	if srv.URL != url || !srv.Running() {
		t.Fatalf("after Restart: URL %s (was %s), running %v", srv.URL, url, srv.Running())
	}
	if again, err := os.ReadFile(srv.ServerCertFile); err != nil || string(again) != string(cert) {
		t.Fatalf("server certificate changed across Restart (%v)", err)
	}
	c2 := connect(t, ctx, srv.URL,
		opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.SecurityPolicy(ua.SecurityPolicyURINone), opcua.AuthAnonymous())
	if got := read(t, ctx, c2, srv.NodeID("Boiler1.Status")); got != interop.StatusValue {
		t.Errorf("Status after restart = %#v", got)
	}

	srv.Stop()
	if srv.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := opcua.GetEndpoints(ctx, srv.URL); err == nil {
		t.Fatal("GetEndpoints succeeded on a stopped server")
	}
}

// The upstream connector's default policy is Basic128Rsa15: the server offers
// it (and Basic256) with LegacyPolicies.
func TestLegacyPolicies(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{LegacyPolicies: true})
	ctx := ctxT(t)
	const appURI = "urn:industryos:iotgw:interop-test"
	cert, key := clientCert(t, appURI)
	for _, policy := range []string{ua.SecurityPolicyURIBasic128Rsa15, ua.SecurityPolicyURIBasic256} {
		t.Run(policy[strings.LastIndex(policy, "#")+1:], func(t *testing.T) {
			ep := endpoint(t, ctx, srv, policy, ua.MessageSecurityModeSignAndEncrypt)
			c := connect(t, ctx, ep.EndpointURL, opcua.Certificate(cert), opcua.PrivateKey(key),
				opcua.AuthUsername(srv.Username, srv.Password), opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeUserName))
			res := call(t, ctx, c, srv, "Multiply", 3.0, 4.0)
			if res.StatusCode != ua.StatusOK || len(res.OutputArguments) != 1 || res.OutputArguments[0].Value() != 12.0 {
				t.Fatalf("Multiply: %v %v", res.StatusCode, res.OutputArguments)
			}
		})
	}
}
