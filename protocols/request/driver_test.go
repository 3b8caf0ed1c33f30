package request

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// peer is a real HTTP server on a free loopback port that records what
// it was asked.
type peer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

type seen struct {
	Method, Path, Body, User, ContentType string
}

func (p *peer) seen() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seen(nil), p.reqs...)
}

func (p *peer) count(path string) int {
	n := 0
	for _, r := range p.seen() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// startPeer serves mux; tlsFiles non-nil serves HTTPS with that certificate.
func startPeer(t *testing.T, mux *http.ServeMux, tlsFiles *testpeer.TLSFiles) *peer {
	t.Helper()
	p := &peer{}
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, _, _ := r.BasicAuth()
		p.mu.Lock()
		p.reqs = append(p.reqs, seen{r.Method, r.URL.EscapedPath(), string(b), u, r.Header.Get("Content-Type")})
		p.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	p.Server = httptest.NewUnstartedServer(rec)
	if tlsFiles != nil {
		cert, err := tls.LoadX509KeyPair(tlsFiles.ServerCert, tlsFiles.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		p.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		p.StartTLS()
	} else {
		p.Start()
	}
	t.Cleanup(p.Close)
	return p
}

func newConnector(t testing.TB, raw string) (*Connector, *spec.Problems) {
	t.Helper()
	var ps spec.Problems
	root := spec.Parse(&ps, "request.json", []byte(raw))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "request-test", Type: "request", Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c, &ps
}

func jsonHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func basicOnly(user, pass string, h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}
}

// Upstream's default file, pointed at the test server: the json mappings
// are polled with basic auth and delivered decoded; the custom-converter
// mapping is skipped with a line naming it; subRequests' processing
// function runs.
func TestUpstreamDefaultPolls(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/getdata", basicOnly("user", "password", jsonHandler(`{"serial":"SN-1","Developer":"Tester","hum":41.5}`)))
	mux.Handle("/devices", basicOnly("user", "password", jsonHandler(`[{"id":3,"type":"UMG","serialNr":"S3","name":"n","description":"d"}]`)))
	mux.Handle("/devices/3/hist/values/ActiveEnergy/SUM13/3600", jsonHandler(`{"values":[{"avg":"2500"}]}`))
	srv := startPeer(t, mux, nil)
	raw, err := readUpstream("thingsboard_gateway/config/request.json")
	if err != nil {
		t.Skip(err)
	}
	raw = strings.Replace(raw, `"http://127.0.0.1:5000"`, `"`+srv.URL+`"`, 1)
	c, ps := newConnector(t, raw)
	var skips []string
	for _, p := range ps.Skips() {
		skips = append(skips, p.String())
	}
	if len(skips) != 1 || !strings.Contains(skips[0], `mapping[1].converter.extension: custom converter "CustomRequestUplinkConverter" is not built in`) {
		t.Fatalf("skips = %q", skips)
	}
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "both devices", func() bool {
		_, a := s.Latest("SD8500", "combine")
		_, b := s.Latest("3-UMG", "cumPwr")
		return a && b
	})
	want := map[[2]string]string{
		{"SD8500", "serialNumber"}: `"SN-1"`, {"SD8500", "Maintainer"}: `"Tester"`, {"SD8500", "combine"}: `"Tester:41.5"`,
		{"3-UMG", "id"}: `3`, {"3-UMG", "serialNr"}: `"S3"`, {"3-UMG", "cumPwr"}: `2.5`,
	}
	for k, w := range want {
		v, _ := s.Latest(k[0], k[1])
		if got := string(v.AppendJSON(nil)); got != w {
			t.Errorf("%s %s = %s, want %s", k[0], k[1], got, w)
		}
	}
	for _, p := range s.DataPushes() {
		if p.Device == "3-UMG" && p.Profile != "GridVis" {
			t.Errorf("profile %q", p.Profile)
		}
	}
	for _, r := range srv.seen() {
		if r.Path == "/getdata" && r.User != "user" {
			t.Errorf("getdata without basic auth: %+v", r)
		}
	}
	if len(s.MalformedReports()) != 0 {
		t.Errorf("malformed: %v", s.MalformedReports())
	}
}

// A mapping whose endpoint hangs never delays another mapping's schedule:
// the fast one polls again and again while the slow one waits for its
// timeout.
func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	var fast atomic.Int64
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"n":%d}`, fast.Add(1))
	})
	srv := startPeer(t, mux, nil)
	t.Cleanup(func() { close(release) })
	c, _ := newConnector(t, `{"host":"`+srv.URL+`","mapping":[
	  {"url":"slow","timeout":30,"scanPeriod":60,"converter":{"deviceNameJsonExpression":"slow","telemetry":[{"key":"n","type":"int","value":"${n}"}]}},
	  {"url":"fast","timeout":1,"scanPeriod":0.02,"converter":{"deviceNameJsonExpression":"fast","telemetry":[{"key":"n","type":"int","value":"${n}"}]}}]}`)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	<-entered
	start := fast.Load()
	s.Wait(t, 10*time.Second, "five fast polls while slow hangs", func() bool { return fast.Load() >= start+5 })
	if len(s.Values("fast", "n")) < 5 {
		t.Fatalf("fast values %v", s.Values("fast", "n"))
	}
	if len(s.Values("slow", "n")) != 0 || srv.count("/slow") != 1 {
		t.Fatalf("slow polled %d times", srv.count("/slow"))
	}
}

// A timeout, a refused status and garbage each fail one poll with a
// clear error; the link goes down only when every endpoint fails and comes
// back with the first success.
func TestPollFailures(t *testing.T) {
	var mode atomic.Value
	mode.Store("500")
	mux := http.NewServeMux()
	mux.HandleFunc("/x", func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "500":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "html":
			io.WriteString(w, "<html>")
		case "ok":
			io.WriteString(w, `{"v":1}`)
		}
	})
	srv := startPeer(t, mux, nil)
	c, _ := newConnector(t, `{"host":"`+srv.URL+`","mapping":[
	  {"url":"x","scanPeriod":0.02,"converter":{"deviceNameJsonExpression":"d","telemetry":[{"key":"v","value":"${v}"}]}}]}`)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link down", func() bool {
		l := s.Links()
		return len(l) > 0 && !l[0].Up
	})
	if err := s.Links()[0].Err; !errors.Is(err, ErrHTTPStatus) || !errors.Is(err, protocols.ErrIO) || !strings.Contains(err.Error(), "answered 500 Internal Server Error: broken") {
		t.Fatalf("link error %v", err)
	}
	mode.Store("html")
	s.Wait(t, 10*time.Second, "malformed report", func() bool { return len(s.MalformedReports()) > 0 })
	if r := s.MalformedReports()[0]; r.Where != "x" || !errors.Is(r.Err, ErrMalformed) || !strings.Contains(r.Err.Error(), "response is not JSON") {
		t.Fatalf("report %v", r)
	}
	mode.Store("ok")
	s.Wait(t, 10*time.Second, "value", func() bool { _, ok := s.Latest("d", "v"); return ok })
	if l := s.Links(); !l[len(l)-1].Up {
		t.Fatalf("links %v", l)
	}
}

// A poll that outlasts its timeout fails with ErrTimeout.
func TestPollTimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := startPeer(t, mux, nil)
	c, _ := newConnector(t, `{"host":"`+srv.URL+`","mapping":[
	  {"url":"hang","timeout":0.05,"scanPeriod":60,"converter":{"deviceNameJsonExpression":"d","telemetry":[{"key":"v","value":"${v}"}]}}]}`)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "link down", func() bool { return len(s.Links()) > 0 })
	if err := s.Links()[0].Err; !errors.Is(err, protocols.ErrTimeout) {
		t.Fatalf("err %v", err)
	}
}

// HTTPS: the server's certificate is checked by default (the test CA is
// not trusted, so polling fails), SSLVerify naming the CA file trusts it,
// and "SSLVerify": false skips the check.
func TestHTTPS(t *testing.T) {
	files := testpeer.GenerateTLS(t)
	mux := http.NewServeMux()
	mux.Handle("/d", jsonHandler(`{"v":5}`))
	srv := startPeer(t, mux, &files)
	conf := func(verify string) string {
		return `{"host":"` + srv.URL + `",` + verify + `"mapping":[{"url":"d","timeout":10,"scanPeriod":60,"converter":{"deviceNameJsonExpression":"d","telemetry":[{"key":"v","value":"${v}"}]}}]}`
	}
	t.Run("default verifies", func(t *testing.T) {
		c, _ := newConnector(t, conf(""))
		s := sinktest.New()
		sinktest.Run(t, c, s)
		s.Wait(t, 10*time.Second, "link down", func() bool { return len(s.Links()) > 0 })
		if err := s.Links()[0].Err; err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err %v", err)
		}
	})
	for name, v := range map[string]string{"CA file": `"SSLVerify":"` + files.CACert + `",`, "off": `"SSLVerify":false,`} {
		t.Run(name, func(t *testing.T) {
			c, _ := newConnector(t, conf(v))
			s := sinktest.New()
			sinktest.Run(t, c, s)
			s.Wait(t, 10*time.Second, "value", func() bool { _, ok := s.Latest("d", "v"); return ok })
		})
	}
}

func readUpstream(rel string) (string, error) {
	b, err := os.ReadFile(upstreamDir + "/" + rel)
	if err != nil {
		return "", fmt.Errorf("upstream config corpus not found at %s: %v", upstreamDir, err)
	}
	return string(b), nil
}

// downlinkPeer answers the downlink requests of upstream's default file.
func downlinkPeer(t *testing.T) *peer {
	mux := http.NewServeMux()
	mux.HandleFunc("/sensor/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/request/echo/"):
			io.WriteString(w, `{"temp":21.5,"unit":"C"}`)
		case strings.Contains(r.URL.Path, "/request/broken/"):
			http.Error(w, "nope", http.StatusBadGateway)
		case strings.Contains(r.URL.Path, "/request/hang/"):
			<-r.Context().Done()
		default:
			io.WriteString(w, "ok")
		}
	})
	return startPeer(t, mux, nil)
}

func TestDownlink(t *testing.T) {
	srv := downlinkPeer(t)
	raw, err := readUpstream("thingsboard_gateway/config/request.json")
	if err != nil {
		t.Skip(err)
	}
	raw = strings.Replace(raw, `"http://127.0.0.1:5000"`, `"`+srv.URL+`"`, 1)
	c, _ := newConnector(t, raw)
	cm := c.Commander("SD 8500/x", "SD")
	ctx := context.Background()

	ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"send_data": []byte(`true`), "other": []byte(`1`)})
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("ignored %v err %v", ignored, err)
	}
	last := srv.seen()[len(srv.seen())-1]
	// Names are escaped as one path segment each.
	if last.Method != "POST" || last.Path != "/sensor/SD%208500%2Fx/send_data" || last.Body != `{"send_data":"true"}` || last.ContentType != "application/json" || last.User != "user" {
		t.Fatalf("attribute update sent %+v", last)
	}

	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 7, Device: "SD 8500/x", Method: "echo", Params: []byte(`{"a":1}`)})
	if err != nil || string(res) != `{"result":{"value":21.5}}` {
		t.Fatalf("echo = %s, %v", res, err)
	}
	if last := srv.seen()[len(srv.seen())-1]; last.Method != "GET" || last.Path != "/sensor/SD%208500%2Fx/request/echo/7" {
		t.Fatalf("echo sent %+v", last)
	}
	res, err = cm.RPC(ctx, protocols.RPCRequest{ID: 8, Method: "no-reply", Params: []byte(`{"speed":3,"on":true}`)})
	if err != nil || string(res) != `{"result":{"value":"ok"}}` {
		t.Fatalf("no-reply = %s, %v", res, err)
	}
	if last := srv.seen()[len(srv.seen())-1]; last.Method != "POST" || last.Body != `{"on":true,"speed":3}` {
		t.Fatalf("no-reply sent %+v", last)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 9, Method: "unknown"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Fatalf("unknown: %v", err)
	}
}

// Reserved get/set and the connector RPC name their request in params.
func TestReservedAndConnectorRPC(t *testing.T) {
	srv := downlinkPeer(t)
	c, _ := newConnector(t, `{"host":"`+srv.URL+`","mapping":[]}`)
	cm := c.Commander("dev", "")
	ctx := context.Background()
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 1, Method: "get", Params: []byte(`"requestUrlExpression=sensor/${deviceName}/request/echo/${requestId}; responseValueExpression=${temp} ${unit};"`)})
	if err != nil || string(res) != `{"result":{"value":"21.5 C"}}` {
		t.Fatalf("get = %s, %v", res, err)
	}
	res, err = cm.RPC(ctx, protocols.RPCRequest{ID: 2, Method: "set", Params: []byte(`"requestUrlExpression=sensor/dev/set;httpMethod=post;value={\"on\": 1};"`)})
	if err != nil || string(res) != `{"result":{"value":"ok"}}` {
		t.Fatalf("set = %s, %v", res, err)
	}
	if last := srv.seen()[len(srv.seen())-1]; last.Method != "POST" || last.Body != `{"on": 1}` {
		t.Fatalf("set sent %+v", last)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 3, Method: "get", Params: []byte(`"httpMethod=GET;"`)}); err == nil || !strings.Contains(err.Error(), "requestUrlExpression parameter is required") {
		t.Fatalf("missing url: %v", err)
	}
	_, err = cm.RPC(ctx, protocols.RPCRequest{ID: 4, Method: "get", Params: []byte(`"requestUrlExpression=sensor/dev/request/broken/1;"`)})
	if !errors.Is(err, ErrHTTPStatus) || !strings.Contains(err.Error(), "502 Bad Gateway: nope") {
		t.Fatalf("broken: %v", err)
	}
	_, err = cm.RPC(ctx, protocols.RPCRequest{ID: 5, Method: "get", Params: []byte(`"requestUrlExpression=sensor/dev/request/hang/1;timeout=5;responseTimeout=0.05;"`)})
	if !errors.Is(err, protocols.ErrTimeout) {
		t.Fatalf("hang: %v", err)
	}
	res, err = c.ConnectorRPC(ctx, protocols.RPCRequest{ID: 6, Method: "request_get", Params: []byte(`{"requestUrlExpression":"sensor/x/request/echo/6"}`)})
	if err != nil || string(res) != `[{"success":true,"result":{"temp":21.5,"unit":"C"},"status":200}]` {
		t.Fatalf("connector rpc = %s, %v", res, err)
	}
	res, err = c.ConnectorRPC(ctx, protocols.RPCRequest{ID: 7, Method: "request_get", Params: []byte(`{"requestUrlExpression":"sensor/x/request/broken/7"}`)})
	if err != nil || !strings.HasPrefix(string(res), `[{"success":false,"error":`) || !strings.HasSuffix(string(res), `"status":502}]`) {
		t.Fatalf("connector rpc = %s, %v", res, err)
	}
}

func connectorConfig(root *spec.Obj) protocols.ConnectorConfig {
	return protocols.ConnectorConfig{Name: "fuzz", Type: "request", Config: root, Logger: zerolog.Nop()}
}

func rpcReq(params []byte) protocols.RPCRequest {
	return protocols.RPCRequest{ID: 1, Device: "d", Method: "set", Params: params}
}
