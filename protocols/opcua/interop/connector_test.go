package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	_ "github.com/industryos/gateway/protocols/opcua" // registers "opcua"
	"github.com/industryos/gateway/protocols/opcua/interop"
)

// These tests drive the OPC-UA connector exactly as the runtime does — the
// factory from protocols.Lookup("opcua"), a parsed upstream config file, and
// either Source.Run into a Sink or Devices()/Poll — against node-opcua.

// sinkWait bounds every wait on the sink, as ctxT bounds a test.
const sinkWait = 60 * time.Second

// syncBuffer collects the connector's log for failure reports.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runningConnector is a connector started the way the runtime starts it.
type runningConnector struct {
	conn protocols.Connector
	sink *sinktest.Recorder
	// cmdMu serialises Poll and Commander calls per device, as the device
	// actor does.
	cmdMu   sync.Mutex
	devices map[string]protocols.Device // poll connectors only
}

// startConnector builds the "opcua" connector from cfg and runs it until the
// test ends.
func startConnector(t *testing.T, cfg string) *runningConnector {
	t.Helper()
	factory, ok := protocols.Lookup("opcua")
	if !ok {
		t.Fatalf("protocols.Lookup(%q): not registered (registered: %v)", "opcua", protocols.Types())
	}
	ps := &spec.Problems{}
	root := spec.Parse(ps, "opcua.json", []byte(cfg))
	if root == nil {
		t.Fatalf("config: %v", ps.Err())
	}
	logs := &syncBuffer{}
	conn, err := factory(protocols.ConnectorConfig{
		Name: "OPC-UA interop", Type: "opcua", Config: root,
		Logger: zerolog.New(logs).With().Timestamp().Logger(),
	})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if w := ps.Warnings(); len(w) > 0 {
		t.Logf("config warnings: %v", w)
	}
	rc := &runningConnector{conn: conn, sink: sinktest.New(), devices: map[string]protocols.Device{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	if src, ok := conn.(protocols.Source); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runErr = src.Run(ctx, rc.sink)
		}()
	} else {
		for _, d := range conn.Devices() {
			info := d.Info()
			rc.devices[info.Name] = d
			rc.sink.Connect(info.Name, info.Type)
			wg.Add(1)
			go func() {
				defer wg.Done()
				period := info.PollPeriod
				if period <= 0 {
					period = time.Second
				}
				for {
					pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
					rc.cmdMu.Lock()
					r, err := d.Poll(pctx)
					rc.cmdMu.Unlock()
					pcancel()
					if err == nil {
						_ = rc.sink.Push(ctx, protocols.Push{Device: info.Name, Profile: info.Type, Reading: r})
					} else if ctx.Err() == nil {
						rc.sink.Malformed("poll "+info.Name, err)
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(period):
					}
				}
			}()
		}
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Source.Run returned %v", runErr)
		}
		for _, d := range rc.devices {
			_ = d.Close()
		}
		if err := conn.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("connector log:\n%s\nsink: %s", logs.String(), rc.sink)
		}
	})
	return rc
}

// commander returns the device's Commander, as the runtime finds it.
func (rc *runningConnector) commander(t *testing.T, device, profile string) protocols.Commander {
	t.Helper()
	if dc, ok := rc.conn.(protocols.DeviceCommands); ok {
		if c := dc.Commander(device, profile); c != nil {
			return c
		}
	}
	if d, ok := rc.devices[device]; ok {
		if c, ok := d.(protocols.Commander); ok {
			return c
		}
	}
	t.Fatalf("device %q has no Commander (connector %T)", device, rc.conn)
	return nil
}

func (rc *runningConnector) rpc(t *testing.T, ctx context.Context, device, profile, method, params string) (json.RawMessage, error) {
	t.Helper()
	c := rc.commander(t, device, profile)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rc.cmdMu.Lock()
	defer rc.cmdMu.Unlock()
	req := protocols.RPCRequest{ID: 1, Device: device, Method: method}
	if params != "" {
		req.Params = json.RawMessage(params)
	}
	res, err := c.RPC(rctx, req)
	return json.RawMessage(res), err
}

// connectorConfig is an upstream opcua.json for Boiler1 of the interop
// server; server is spliced into the "server" section.
func connectorConfig(srv *interop.Server, server string) string {
	return `{
  "name": "OPC-UA interop",
  "server": {
    "url": "` + srv.URL + `",
    "timeoutInMillis": 5000,
    "scanPeriodInMillis": 3600000,
    "pollPeriodInMillis": 200,
    "enableSubscriptions": true,
    "subCheckPeriodInMillis": 100,
    "reconnectBackoffInitialDelay": 0.2` + server + `
  },
  "mapping": [{
    "deviceNodeSource": "path",
    "deviceNodePattern": "Root\\.Objects\\.Devices\\.Boiler1",
    "deviceInfo": {
      "deviceNameExpression": "Boiler 1", "deviceNameExpressionSource": "constant",
      "deviceProfileExpression": "Boiler", "deviceProfileExpressionSource": "constant"
    },
    "attributes": [
      {"key": "status", "type": "path", "value": "${Status}"}
    ],
    "timeseries": [
      {"key": "temperature", "type": "path", "value": "${Temperature}"},
      {"key": "pressure", "type": "identifier", "value": "${` + srv.NodeID("Boiler1.Pressure") + `}"},
      {"key": "setpoint", "type": "path", "value": "${Root\\.Objects\\.Devices\\.Boiler1\\.Setpoint}"}
    ],
    "attributes_updates": [
      {"key": "setpoint", "type": "path", "value": "${Setpoint}"}
    ],
    "rpc_methods": [
      {"method": "Multiply", "arguments": [{"type": "double", "value": 3}, {"type": "double", "value": 4}]},
      {"method": "Reset"}
    ]
  }]
}`
}

const (
	boiler  = "Boiler 1"
	profile = "Boiler"
)

// waitData waits until temperature changed at least twice and status,
// pressure arrived.
func waitData(t *testing.T, rc *runningConnector) {
	t.Helper()
	rc.sink.Wait(t, sinkWait, "Boiler 1 data", func() bool {
		temps := map[float64]bool{}
		for _, v := range rc.sink.Values(boiler, "temperature") {
			if f, ok := v.Float64(); ok {
				temps[f] = true
			}
		}
		st := rc.sink.Values(boiler, "status")
		pr := rc.sink.Values(boiler, "pressure")
		return len(temps) >= 3 && len(st) > 0 && len(pr) > 0
	})
	if st := rc.sink.Values(boiler, "status"); st[0] != protocols.String(interop.StatusValue) {
		t.Errorf("status = %v", st[0])
	}
	if pr := rc.sink.Values(boiler, "pressure"); pr[0] != protocols.Float(interop.PressureValue) {
		t.Errorf("pressure = %v", pr[0])
	}
}

// methodResult decodes a method reply, {"result":<output>}.
func methodResult(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var r map[string]json.RawMessage
	if err := json.Unmarshal(raw, &r); err != nil || r["result"] == nil || len(r) != 1 {
		t.Fatalf("RPC result %s: want {\"result\":…} (%v)", raw, err)
	}
	var v any
	if err := json.Unmarshal(r["result"], &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// valueResult decodes a get/set reply, {"result":{"value":<value>}}.
func valueResult(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var r struct {
		Result struct {
			Value *any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Result.Value == nil {
		t.Fatalf("RPC result %s: want {\"result\":{\"value\":…}} (%v)", raw, err)
	}
	return *r.Result.Value
}

func TestConnectorRPCMethods(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{})
	ctx := ctxT(t)
	rc := startConnector(t, connectorConfig(srv, ""))
	waitData(t, rc)
	for _, p := range rc.sink.Pushes() {
		if p.Device == boiler && p.Profile != profile {
			t.Fatalf("push with profile %q, want %q", p.Profile, profile)
		}
	}

	// Arguments from the config: Multiply(3, 4).
	res, err := rc.rpc(t, ctx, boiler, profile, "Multiply", "")
	if err != nil {
		t.Fatalf("Multiply with config arguments: %v", err)
	}
	if got := methodResult(t, res); got != 12.0 {
		t.Fatalf("Multiply(3, 4) = %s, want {\"result\":12}", res)
	}

	// Arguments from params win over the config; untyped ones take the
	// config's types, and integer-typed ones are converted to the method's
	// declared Double after the server refuses them.
	for _, params := range []string{
		`{"arguments":[{"type":"double","value":2.5},{"type":"double","value":4}]}`,
		`{"arguments":[{"value":2.5},{"value":4}]}`,
		`[2.5, 4]`,
		`{"arguments":[{"type":"integer","value":5},{"type":"integer","value":2}]}`,
	} {
		res, err = rc.rpc(t, ctx, boiler, profile, "Multiply", params)
		if err != nil {
			t.Errorf("Multiply params %s: %v", params, err)
			continue
		}
		if got := methodResult(t, res); got != 10.0 {
			t.Errorf("Multiply params %s = %s, want 10", params, res)
		}
	}
	if _, err = rc.rpc(t, ctx, boiler, profile, "Multiply", `[1]`); err == nil {
		t.Errorf("Multiply with one argument succeeded")
	}

	// A method without arguments or output; its effect is visible.
	if res, err = rc.rpc(t, ctx, boiler, profile, "Reset", ""); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if got := methodResult(t, res); got != nil {
		t.Errorf("Reset() = %s, want {\"result\":null}", res)
	}
	res, err = rc.rpc(t, ctx, boiler, profile, "get", `"`+srv.NodeID("Boiler1.ResetCount")+`;"`)
	if err != nil {
		t.Fatalf("get ResetCount: %v", err)
	}
	if got := valueResult(t, res); got != 1.0 {
		t.Errorf("ResetCount after Reset = %s", res)
	}

	if _, err = rc.rpc(t, ctx, boiler, profile, "NoSuchMethod", ""); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("unknown method: %v, want ErrUnknownMethod", err)
	}

	// Reserved set / get, by node id and by relative path.
	res, err = rc.rpc(t, ctx, boiler, profile, "set", `"`+srv.NodeID("Boiler1.Setpoint")+`; 61.5;"`)
	if err != nil {
		t.Fatalf("set: %v", err)
	}
	if got := valueResult(t, res); got != 61.5 {
		t.Errorf("set = %s", res)
	}
	res, err = rc.rpc(t, ctx, boiler, profile, "get", `"Setpoint"`)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got := valueResult(t, res); got != 61.5 {
		t.Errorf("get Setpoint after set = %s", res)
	}
	// An integer text into the Double node: the write is retried converted.
	if _, err = rc.rpc(t, ctx, boiler, profile, "set", `"Setpoint= 70 ;"`); err != nil {
		t.Fatalf("set 70: %v", err)
	}
	if res, err = rc.rpc(t, ctx, boiler, profile, "get", `"`+srv.NodeID("Boiler1.Setpoint")+`"`); err != nil || valueResult(t, res) != 70.0 {
		t.Errorf("get after set 70 = %s, %v", res, err)
	}

	// Shared attribute update of a declared attributes_updates key.
	cmd := rc.commander(t, boiler, profile)
	if keys := cmd.SharedAttributeKeys(); len(keys) != 1 || keys[0] != "setpoint" {
		t.Errorf("SharedAttributeKeys = %v", keys)
	}
	rc.cmdMu.Lock()
	ignored, err := cmd.UpdateAttributes(ctx, map[string]json.RawMessage{"setpoint": json.RawMessage("42.25"), "other": json.RawMessage("1")})
	rc.cmdMu.Unlock()
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("UpdateAttributes = %v, %v", ignored, err)
	}
	if res, err = rc.rpc(t, ctx, boiler, profile, "get", `"Setpoint"`); err != nil || valueResult(t, res) != 42.25 {
		t.Errorf("Setpoint after attribute update = %s, %v", res, err)
	}

	// Connector-level RPC: opcua_<method> on every device that has it.
	crpc, ok := rc.conn.(protocols.ConnectorRPC)
	if !ok {
		t.Fatalf("%T is not a protocols.ConnectorRPC", rc.conn)
	}
	out, err := crpc.ConnectorRPC(ctx, protocols.RPCRequest{ID: 2, Method: "opcua_Multiply", Params: json.RawMessage(`{"arguments":[{"value":6},{"value":7}]}`)})
	if err != nil {
		t.Fatalf("opcua_Multiply: %v", err)
	}
	if got := methodResult(t, json.RawMessage(out)); got != 42.0 {
		t.Errorf("opcua_Multiply(6, 7) = %s", out)
	}
}

// pemDER reads the first PEM block of file (or the file itself as DER).
func pemDER(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		return blk.Bytes
	}
	return b
}

// serverTrusts reports whether node-opcua's PKI (auto-accept puts every
// client certificate it saw under server/trusted/certs) holds der.
func serverTrusts(t *testing.T, srv *interop.Server, der []byte) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(srv.PKIDir, "server", "trusted", "certs", "*"))
	for _, f := range files {
		if bytes.Equal(pemDER(t, f), der) {
			return true
		}
	}
	t.Logf("trusted certificates: %v", files)
	return false
}

func TestConnectorSecurity(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{Username: "operator", Password: "s3cret"})
	certDirs := map[string]string{}
	dir := func(name string) string { certDirs[name] = t.TempDir(); return certDirs[name] }
	for _, tc := range []struct{ name, server string }{
		{"username/None", `,
    "identity": {"type": "basic", "username": "operator", "password": "s3cret"}`},
		{"Basic256Sha256/SignAndEncrypt/anonymous", `,
    "security": "Basic256Sha256", "mode": "SignAndEncrypt", "clientCertDir": "` + dir("Basic256Sha256/SignAndEncrypt/anonymous") + `",
    "identity": {"type": "anonymous"}`},
		{"Basic256Sha256/SignAndEncrypt/username", `,
    "security": "Basic256Sha256", "mode": "SignAndEncrypt", "clientCertDir": "` + dir("Basic256Sha256/SignAndEncrypt/username") + `",
    "identity": {"type": "basic", "username": "operator", "password": "s3cret"}`},
		{"Basic256Sha256/Sign", `,
    "security": "Basic256Sha256", "clientCertDir": "` + dir("Basic256Sha256/Sign") + `",
    "identity": {"type": "anonymous", "mode": "Sign"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			rc := startConnector(t, connectorConfig(srv, tc.server))
			waitData(t, rc)
			res, err := rc.rpc(t, ctx, boiler, profile, "Multiply", "")
			if err != nil {
				t.Fatalf("Multiply: %v", err)
			}
			if got := methodResult(t, res); got != 12.0 {
				t.Fatalf("Multiply = %s", res)
			}
			if d, ok := certDirs[tc.name]; ok {
				// The connector generated its certificate there, and the
				// server saw (and auto-trusted) exactly that certificate.
				crt, _ := filepath.Glob(filepath.Join(d, "*.crt.pem"))
				if len(crt) != 1 {
					t.Fatalf("client certificates in clientCertDir: %v", crt)
				}
				if !serverTrusts(t, srv, pemDER(t, crt[0])) {
					t.Fatalf("the server's trusted/ has no copy of %s", crt[0])
				}
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		rc := startConnector(t, connectorConfig(srv, `,
    "reconnectRetriesCount": 0,
    "identity": {"type": "basic", "username": "operator", "password": "wrong"}`))
		var down error
		rc.sink.Wait(t, sinkWait, "a down link", func() bool {
			for _, e := range rc.sink.Links() {
				if !e.Up {
					down = e.Err
					return true
				}
			}
			return false
		})
		if n := rc.sink.Pushed(); n != 0 {
			t.Fatalf("%d pushes with a wrong password", n)
		}
		if down == nil || !strings.Contains(down.Error(), "BadUserAccessDenied") && !strings.Contains(down.Error(), "BadIdentityTokenRejected") {
			t.Errorf("link error does not say why: %v", down)
		}
	})
}

// The upstream default policy, Basic128Rsa15 (node-opcua offers it with
// LegacyPolicies), with the upstream way of asking for it: a policy and a mode.
func TestConnectorBasic128Rsa15(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{LegacyPolicies: true})
	ctx := ctxT(t)
	rc := startConnector(t, connectorConfig(srv, `,
    "security": "Basic128Rsa15", "mode": "SignAndEncrypt", "clientCertDir": "`+t.TempDir()+`",
    "identity": {"type": "basic", "username": "`+srv.Username+`", "password": "`+srv.Password+`"}`))
	waitData(t, rc)
	res, err := rc.rpc(t, ctx, boiler, profile, "Multiply", `[1.5, 2]`)
	if err != nil || methodResult(t, res) != 3.0 {
		t.Fatalf("Multiply = %s, %v", res, err)
	}
}

// A server outage: the link goes down, the connector reconnects by itself
// when the server is back (same endpoint and certificate), and data resumes.
func TestConnectorServerRestart(t *testing.T) {
	t.Parallel()
	srv := interop.Start(t, interop.Options{})
	ctx := ctxT(t)
	rc := startConnector(t, connectorConfig(srv, `,
    "security": "Basic256Sha256", "mode": "SignAndEncrypt", "clientCertDir": "`+t.TempDir()+`",
    "reconnectRetriesCount": 0, "reconnectBackoffFactor": 1`))
	waitData(t, rc)

	linkEvents := func() (downs, upsAfterDown int) {
		for _, e := range rc.sink.Links() {
			switch {
			case !e.Up:
				downs++
				upsAfterDown = 0
			case downs > 0:
				upsAfterDown++
			}
		}
		return
	}
	srv.Stop()
	rc.sink.Wait(t, sinkWait, "the link to go down", func() bool { d, _ := linkEvents(); return d > 0 })
	if _, err := rc.rpc(t, ctx, boiler, profile, "Multiply", ""); err == nil {
		t.Errorf("Multiply succeeded with the server down")
	}
	before := len(rc.sink.Values(boiler, "temperature"))

	srv.Restart()
	rc.sink.Wait(t, sinkWait, "the link to come back", func() bool { _, u := linkEvents(); return u > 0 })
	rc.sink.Wait(t, sinkWait, "new data after the restart", func() bool {
		return len(rc.sink.Values(boiler, "temperature")) >= before+3
	})
	// Commands work on the new session.
	rc.sink.Wait(t, sinkWait, "Multiply on the new session", func() bool {
		res, err := rc.rpc(t, ctx, boiler, profile, "Multiply", "")
		return err == nil && methodResult(t, res) == 12.0
	})
}
