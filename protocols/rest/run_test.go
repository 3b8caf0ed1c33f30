package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// testFile is a connector on a free loopback port with every kind of
// endpoint; DEVICE_URL is where commands go.
const testFile = `{
  "server": {"host": "127.0.0.1", "port": 0},
  "maxBodySize": 1024,
  "mapping": [
    {"endpoint": "/push", "HTTPMethods": ["POST", "PUT"],
     "response": {"successResponse": "OK"},
     "converter": {"type": "json",
       "deviceInfo": {"deviceNameExpressionSource": "request", "deviceNameExpression": "${sensorName}",
                      "deviceProfileExpressionSource": "request", "deviceProfileExpression": "${sensorType}"},
       "reportStrategy": {"type": "ON_RECEIVED"},
       "attributes": [{"type": "string", "key": "model", "value": "${sensorModel}"}],
       "timeseries": [{"type": "double", "key": "temperature", "value": "${temp}"},
                      {"type": "int", "key": "humidity", "value": "${hum}"}]}},
    {"endpoint": "/secure/{room}", "HTTPMethods": ["GET", "POST"],
     "security": {"type": "basic", "username": "user", "password": "s3cret"},
     "converter": {"type": "json",
       "deviceInfo": {"deviceNameExpressionSource": "request", "deviceNameExpression": "Room ${room}"},
       "timeseries": [{"type": "int", "key": "co2", "value": "${co2}"}]}},
    {"endpoint": "/ask", "HTTPMethods": ["POST"],
     "response": {"responseExpected": true, "timeout": 20, "responseAttribute": "answer"},
     "converter": {"type": "json",
       "deviceInfo": {"deviceNameExpressionSource": "request", "deviceNameExpression": "${name}"},
       "timeseries": [{"type": "int", "key": "v", "value": "${v}"}]}}
  ],
  "requestsMapping": {
    "attributeRequests": [{"endpoint": "/attrs", "type": "shared", "HTTPMethods": ["POST"], "timeout": 5,
      "deviceNameExpression": "${deviceName}", "attributeNameExpression": "${attribute}${attribute1}"}],
    "attributeUpdates": [{"HTTPMethod": "PUT", "deviceNameFilter": "SN.*", "attributeFilter": "fw.*",
      "httpHeaders": {"Content-Type": "application/json"},
      "requestUrlExpression": "DEVICE_URL/${deviceName}/attr/${attributeKey}",
      "valueExpression": "{\"${attributeKey}\": \"${attributeValue}\"}"}],
    "serverSideRpc": [
      {"deviceNameFilter": ".*", "methodFilter": "echo", "HTTPMethod": "POST", "timeout": 5,
       "requestUrlExpression": "DEVICE_URL/${deviceName}/rpc/${methodName}?id=${requestId}",
       "valueExpression": "${params}", "httpHeaders": {"Content-Type": "application/json"}},
      {"deviceNameFilter": ".*", "methodFilter": "slow", "HTTPMethod": "GET", "timeout": 0.2,
       "requestUrlExpression": "DEVICE_URL/slow"}
    ]
  }
}`

// commitSink wraps a Recorder and remembers, per push, whether its Done ran:
// the proof that an answer came after the commit.
type commitSink struct {
	*sinktest.Recorder
	committed atomic.Int64
}

func (s *commitSink) Push(ctx context.Context, p protocols.Push) error {
	done := p.Done
	p.Done = func(err error) {
		s.committed.Add(1)
		if done != nil {
			done(err)
		}
	}
	return s.Recorder.Push(ctx, p)
}

func startConnector(t *testing.T, file string) (*Connector, *commitSink, string) {
	t.Helper()
	c, _ := build(t, "rest.json", []byte(file))
	s := &commitSink{Recorder: sinktest.New()}
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "server listening", func() bool { return s.Ups() == 1 })
	return c, s, "http://" + c.Addr()
}

type answer struct {
	code int
	body string
	hdr  http.Header
}

func do(t *testing.T, method, url, contentType, body string, mod ...func(*http.Request)) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, m := range mod {
		m(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

func TestPushConverted(t *testing.T) {
	_, s, base := startConnector(t, testFile)
	a := do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"thermo","sensorModel":"T1000","temp":"21.5","hum":40}`)
	if a.code != 200 || a.body != "OK" {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	if got := s.committed.Load(); got != 1 {
		t.Errorf("%d commits before the answer, want 1", got)
	}
	p := s.DataPushes()[0]
	if p.Device != "SN-1" || p.Profile != "thermo" {
		t.Errorf("push %+v", p)
	}
	if v, _ := s.Latest("SN-1", "temperature"); v.String() != "21.5" {
		t.Errorf("temperature %v", v)
	}
	if v, _ := s.Latest("SN-1", "humidity"); v.String() != "40" {
		t.Errorf("humidity %v", v)
	}
	if v, _ := s.Latest("SN-1", "model"); v.String() != "T1000" {
		t.Errorf("model %v", v)
	}
	// Query parameters join the data and win over the body, as upstream.
	a = do(t, "PUT", base+"/push?temp=30&sensorName=SN-2", "application/json", `{"sensorName":"x","sensorType":"t","temp":1}`)
	if a.code != 200 {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	if v, _ := s.Latest("SN-2", "temperature"); v.String() != "30" {
		t.Errorf("temperature from the query %v", v)
	}
	// A urlencoded form is read like upstream's form post.
	a = do(t, "POST", base+"/push", "application/x-www-form-urlencoded", "sensorName=SN-3&sensorType=t&temp=5")
	if a.code != 200 {
		t.Fatalf("form answer %d %q", a.code, a.body)
	}
	if v, _ := s.Latest("SN-3", "temperature"); v.String() != "5" {
		t.Errorf("temperature from a form %v", v)
	}
	// Missing keys of a push that still yields data are counted, not fatal.
	if n := len(s.MalformedReports()); n == 0 {
		t.Errorf("missing keys were not reported")
	}
}

func TestBadRequests(t *testing.T) {
	_, s, base := startConnector(t, testFile)
	for _, tc := range []struct {
		name, method, path, ct, body string
		code                         int
		want                         string
	}{
		{"bad JSON", "POST", "/push", "application/json", `{"sensorName": "a",`, 400, "invalid JSON"},
		{"not an object", "POST", "/push", "application/json", `42`, 400, "expected a JSON object or list"},
		{"no device", "POST", "/push", "application/json", `{"temp": 1}`, 400, "${sensorName}"},
		{"empty", "POST", "/push", "application/json", ``, 415, "no data"},
		{"method", "DELETE", "/push", "", ``, 405, "not allowed"},
		{"too large", "POST", "/push", "application/json", `{"sensorName":"` + strings.Repeat("x", 2000) + `"}`, 413, "larger than 1024"},
		{"unknown path", "POST", "/nowhere", "application/json", `{}`, 404, ""},
		{"multipart", "POST", "/push", "multipart/form-data; boundary=x", `--x--`, 400, "multipart"},
		{"no credentials", "POST", "/secure/1", "application/json", `{"co2": 1}`, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, base+tc.path, tc.ct, tc.body)
			if a.code != tc.code || !strings.Contains(a.body, tc.want) {
				t.Errorf("answer %d %q, want %d containing %q", a.code, a.body, tc.code, tc.want)
			}
			if tc.code == 405 && a.hdr.Get("Allow") != "POST, PUT" {
				t.Errorf("Allow %q", a.hdr.Get("Allow"))
			}
		})
	}
	if n := len(s.DataPushes()); n != 0 {
		t.Errorf("%d pushes from bad requests", n)
	}
}

func TestBasicAuthAndPathValues(t *testing.T) {
	_, s, base := startConnector(t, testFile)
	auth := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	if a := do(t, "POST", base+"/secure/7", "application/json", `{"co2": 400}`, auth("user", "wrong")); a.code != 401 {
		t.Errorf("wrong password answered %d", a.code)
	}
	if a := do(t, "POST", base+"/secure/7", "application/json", `{"co2": 400}`, auth("user", "s3cret")); a.code != 200 {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	// GET has no body: the query is the data.
	if a := do(t, "GET", base+"/secure/8?co2=500", "", "", auth("user", "s3cret")); a.code != 200 {
		t.Fatalf("GET answer %d %q", a.code, a.body)
	}
	if v, _ := s.Latest("Room 7", "co2"); v.String() != "400" {
		t.Errorf("Room 7 co2 %v", v)
	}
	if v, _ := s.Latest("Room 8", "co2"); v.String() != "500" {
		t.Errorf("Room 8 co2 %v", v)
	}
}

// TestAnswerAfterCommit: a push is answered only once the runtime commits
// it; while the journal holds it the device waits.
func TestAnswerAfterCommit(t *testing.T) {
	_, s, base := startConnector(t, testFile)
	s.Hold()
	got := make(chan answer, 1)
	go func() {
		got <- do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"t","temp":1}`)
	}()
	s.Wait(t, 10*time.Second, "push", func() bool { return len(s.DataPushes()) == 1 })
	select {
	case a := <-got:
		t.Fatalf("answered %d before the commit", a.code)
	default:
	}
	s.Release()
	a := <-got
	if a.code != 200 || s.committed.Load() != 1 {
		t.Fatalf("answer %d after %d commits", a.code, s.committed.Load())
	}
}

// TestOverload: a runtime that cannot take data (back-pressure past the
// wait, a refused push) and a full set of in-flight requests are answered
// 503 with Retry-After; nothing is acknowledged that was not committed.
func TestOverload(t *testing.T) {
	c, s, base := startConnector(t, testFile)
	c.pushWait = 100 * time.Millisecond
	gate := make(chan struct{})
	s.SetGate(gate)
	a := do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"t","temp":1}`)
	if a.code != 503 || a.hdr.Get("Retry-After") == "" {
		t.Errorf("blocked runtime answered %d %q (Retry-After %q)", a.code, a.body, a.hdr.Get("Retry-After"))
	}
	close(gate)
	s.SetGate(nil)
	s.FailNext(errors.New("connector stopping"))
	if a := do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"t","temp":1}`); a.code != 503 || !strings.Contains(a.body, "connector stopping") {
		t.Errorf("refused push answered %d %q", a.code, a.body)
	}

	// Every slot taken by a request waiting for its commit: one more is 503.
	c.slots = make(chan struct{}, 1)
	s.Hold()
	first := make(chan answer, 1)
	go func() {
		first <- do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"t","temp":2}`)
	}()
	s.Wait(t, 10*time.Second, "held push", func() bool { return len(s.DataPushes()) == 1 })
	if a := do(t, "POST", base+"/push", "application/json", `{"sensorName":"SN-1","sensorType":"t","temp":3}`); a.code != 503 || a.hdr.Get("Retry-After") != "1" {
		t.Errorf("second request answered %d %q", a.code, a.body)
	}
	s.Release()
	if a := <-first; a.code != 200 {
		t.Errorf("held request answered %d", a.code)
	}
	if n := len(s.DataPushes()); n != 1 {
		t.Errorf("%d pushes, want 1", n)
	}
	if n := c.Busy(); n != 3 {
		t.Errorf("%d answers counted as 503, want 3", n)
	}
}

func TestAttributeRequest(t *testing.T) {
	_, s, base := startConnector(t, testFile)
	s.SetAttributes(map[string]json.RawMessage{"fw": []byte(`"1.2"`), "mode": []byte(`{"a":1}`)})
	a := do(t, "POST", base+"/attrs", "application/json", `{"deviceName":"SN-1","attribute":"fw","attribute1":"mode"}`)
	if a.code != 200 || a.body != `{"device":"SN-1","values":{"fw":"1.2","mode":{"a":1}}}` {
		t.Errorf("answer %d %s", a.code, a.body)
	}
	a = do(t, "POST", base+"/attrs", "application/json", `{"deviceName":"SN-1","attribute":"fw"}`)
	if a.code != 200 || a.body != `{"device":"SN-1","value":"1.2"}` {
		t.Errorf("answer %d %s", a.code, a.body)
	}
	if got := strings.Join(s.AttrRequests(), ";"); !strings.Contains(got, "SN-1") {
		t.Errorf("attribute requests %q", got)
	}
	if a := do(t, "POST", base+"/attrs", "application/json", `{"deviceName":"SN-1"}`); a.code != 400 {
		t.Errorf("request naming no attribute answered %d %s", a.code, a.body)
	}
}

// TestResponseExpected: the answer waits for the platform's value of the
// responseAttribute for that device.
func TestResponseExpected(t *testing.T) {
	c, s, base := startConnector(t, testFile)
	got := make(chan answer, 1)
	go func() { got <- do(t, "POST", base+"/ask", "application/json", `{"name":"D1","v":1}`) }()
	s.Wait(t, 10*time.Second, "push", func() bool { return len(s.DataPushes()) == 1 })
	if v, _ := s.Latest("D1", "responseExpected"); v.String() != "true" {
		t.Errorf("responseExpected attribute %v", v)
	}
	cm := c.Commander("D1", "default")
	testWait(t, "waiter registered", func() bool {
		c.respMu.Lock()
		defer c.respMu.Unlock()
		return len(c.respWait["D1"]) == 1
	})
	ignored, err := cm.UpdateAttributes(context.Background(), map[string]json.RawMessage{"answer": []byte(`"go ahead"`)})
	if err != nil || len(ignored) != 0 {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	if a := <-got; a.code != 200 || a.body != "go ahead" {
		t.Errorf("answer %d %q", a.code, a.body)
	}
}

func testWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, testpeer.MinTimeout, what, testpeer.True(cond))
}

// device is a test device's HTTP side: it records what the gateway sends.
type device struct {
	mu   sync.Mutex
	reqs []string
	hit  chan struct{}
}

func startDevice(t *testing.T) (*device, string) {
	t.Helper()
	d := &device{hit: make(chan struct{}, 16)}
	srv := newLocalServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, fmt.Sprintf("%s %s %s %s", r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), b))
		d.mu.Unlock()
		select {
		case d.hit <- struct{}{}:
		default:
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow"):
			<-r.Context().Done()
		case strings.Contains(r.URL.Path, "/rpc/"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"echo":%s}`, b)
		case strings.Contains(r.URL.Path, "missing"):
			http.NotFound(w, r)
		}
	}))
	return d, srv
}

func (d *device) last() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reqs[len(d.reqs)-1]
}

func TestCommands(t *testing.T) {
	d, devURL := startDevice(t)
	c, _ := build(t, "rest.json", []byte(strings.ReplaceAll(testFile, "DEVICE_URL", devURL)))
	cm := c.Commander("SN-1", "default")
	ctx := context.Background()
	ignored, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"fwVersion": []byte(`"2.0 beta"`), "other": []byte(`1`)})
	if err != nil || strings.Join(ignored, ",") != "other" {
		t.Fatalf("update: ignored %v, %v", ignored, err)
	}
	// URL values are escaped as upstream's quote() does; the body is not.
	if got := d.last(); got != `PUT /SN-1/attr/fwVersion application/json {"fwVersion": "2.0 beta"}` {
		t.Errorf("device got %q", got)
	}
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 7, Device: "SN-1", Method: "echo", Params: []byte(`{"x":1}`)})
	if err != nil || string(res) != `{"result":{"echo":{"x":1}}}` {
		t.Fatalf("rpc: %s, %v", res, err)
	}
	if got := d.last(); got != `POST /SN-1/rpc/echo?id=7 application/json {"x":1}` {
		t.Errorf("device got %q", got)
	}
	_, err = cm.RPC(ctx, protocols.RPCRequest{ID: 8, Device: "SN-1", Method: "slow"})
	if !errors.Is(err, protocols.ErrTimeout) {
		t.Errorf("slow rpc: %v, want a timeout", err)
	}
	_, err = cm.RPC(ctx, protocols.RPCRequest{ID: 9, Device: "SN-1", Method: "nope"})
	if !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("unknown rpc: %v", err)
	}
	// Reserved set: the request is in the params.
	res, err = cm.RPC(ctx, protocols.RPCRequest{ID: 10, Device: "SN-1", Method: "set",
		Params: []byte(`"requestUrlExpression=` + devURL + `/missing;HTTPMethod=POST;value={\"a\":1};"`)})
	if err != nil || string(res) != `{"result":{"error":"Not Found","code":404}}` {
		t.Errorf("reserved set: %s, %v", res, err)
	}
	// A device the filter does not take gets no attribute updates.
	if ig, _ := c.Commander("XX", "default").UpdateAttributes(ctx, map[string]json.RawMessage{"fw": []byte(`1`)}); len(ig) != 1 {
		t.Errorf("ignored %v", ig)
	}
}

func newLocalServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := listenLocal()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestCurl: the Debian curl client pushes JSON and gets upstream's answers.
func TestCurl(t *testing.T) {
	curl := testpeer.NeedProgram(t, "curl", "curl")
	_, s, base := startConnector(t, testFile)
	run := func(args ...string) (string, string) {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "-o", "-", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		o := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(o, '\n')
		return o[i+1:], strings.TrimSpace(o[:max(i, 0)])
	}
	if code, body := run("-H", "Content-Type: application/json", "-d", `{"sensorName":"SN-9","sensorType":"t","temp":12.5}`, base+"/push"); code != "200" || body != "OK" {
		t.Errorf("push: %s %q", code, body)
	}
	if v, _ := s.Latest("SN-9", "temperature"); v.String() != "12.5" {
		t.Errorf("temperature %v", v)
	}
	if code, body := run("-H", "Content-Type: application/json", "-d", `{"sensorName":`, base+"/push"); code != "400" || !strings.Contains(body, "invalid JSON") {
		t.Errorf("bad JSON: %s %q", code, body)
	}
	if code, _ := run("-u", "user:s3cret", "-d", `co2=410`, base+"/secure/3"); code != "200" {
		t.Errorf("form with basic auth: %s", code)
	}
	if v, _ := s.Latest("Room 3", "co2"); v.String() != "410" {
		t.Errorf("co2 %v", v)
	}
	var big bytes.Buffer
	big.WriteString(`{"sensorName":"`)
	big.WriteString(strings.Repeat("y", 4096))
	big.WriteString(`"}`)
	if code, _ := run("-H", "Content-Type: application/json", "--data-binary", big.String(), base+"/push"); code != "413" {
		t.Errorf("large body: %s", code)
	}
}

// TestListenDefaults: without a host the server binds loopback only.
func TestListenDefaults(t *testing.T) {
	c, _ := build(t, "rest.json", []byte(`{"server":{"port":0},"mapping":[]}`))
	ln, err := c.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().String(); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("listening on %s, want loopback", a)
	}
}

// TestTLS: SSL without a certificate generates a self-signed one next to
// the connector file, as upstream does, and serves HTTPS with it.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	c, _ := build(t, "rest.json", []byte(`{"server":{"port":0,"SSL":true},"mapping":[{"endpoint":"/d","converter":{"deviceInfo":{"deviceNameExpression":"${n}"},"timeseries":[{"key":"v","value":"${v}"}]}}]}`))
	c.file = dir + "/rest.json"
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, 10*time.Second, "listening", func() bool { return s.Ups() == 1 })
	pem, err := os.ReadFile(dir + "/domain_srv.crt")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("generated certificate does not parse")
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Post("https://"+c.Addr()+"/d", "application/json", strings.NewReader(`{"n":"D","v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("answer %d", resp.StatusCode)
	}
	// Plain HTTP is not served on a TLS port.
	if resp, err := http.Post("http://"+c.Addr()+"/d", "application/json", strings.NewReader(`{"n":"D","v":1}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP accepted")
		}
	}
}

// TestRoutes: "/" and "/a/" match only themselves, as upstream's router
// does; a pattern ServeMux cannot take leaves that endpoint out, not the rest.
func TestRoutes(t *testing.T) {
	conv := `"converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"D"},"timeseries":[{"key":"v","value":"${v}"}]}`
	_, s, base := startConnector(t, `{"server":{"port":0},"mapping":[
		{"endpoint":"/",`+conv+`},{"endpoint":"/a/",`+conv+`},{"endpoint":"/b/{id:\\d+}",`+conv+`}]}`)
	for path, code := range map[string]int{"/": 200, "/a/": 200, "/x": 404, "/a/b": 404, "/b/1": 404} {
		if a := do(t, "POST", base+path, "application/json", `{"v":1}`); a.code != code {
			t.Errorf("%s: %d, want %d", path, a.code, code)
		}
	}
	if n := len(s.DataPushes()); n != 2 {
		t.Errorf("%d pushes, want 2", n)
	}
}

func TestConnectorRPC(t *testing.T) {
	d, devURL := startDevice(t)
	c, _ := build(t, "rest.json", []byte(strings.ReplaceAll(testFile, "DEVICE_URL", devURL)))
	res, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{ID: 3, Method: "rest_get",
		Params: []byte(`"device=SN-5 requestUrlExpression=` + devURL + `/rpc/${deviceName};HTTPMethod=GET;"`)})
	// The test device's echo of an empty body is not JSON: it comes back as text.
	if err != nil || string(res) != `{"result":"{\"echo\":}"}` {
		t.Fatalf("rest_get: %s, %v", res, err)
	}
	if got := d.last(); !strings.HasPrefix(got, "GET /rpc/SN-5 ") {
		t.Errorf("device got %q", got)
	}
	if _, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: "rest_x", Params: []byte(`"device=a"`)}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("rest_x: %v", err)
	}
	if _, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: "rest_get", Params: []byte(`"requestUrlExpression=x"`)}); err == nil {
		t.Errorf("params without a device accepted")
	}
}
