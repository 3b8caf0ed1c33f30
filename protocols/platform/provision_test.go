package platform

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// responder plays the platform's provisioning service: it answers every
// request on /provision/request with answer(request).
type responder struct {
	mu       sync.Mutex
	requests []provisionRequest
	answer   func(provisionRequest) any
}

func (r *responder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

func (r *responder) last() provisionRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[len(r.requests)-1]
}

func (r *responder) handle(payload []byte, publish func([]byte)) {
	var req provisionRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, req)
	r.mu.Unlock()
	b, _ := json.Marshal(r.answer(req))
	publish(b)
}

// onMochi subscribes the responder with the broker's inline client.
func (r *responder) onMochi(t *testing.T, m *testpeer.Mochi) {
	t.Helper()
	err := m.Server.Subscribe(TopicProvisionRequest, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		payload := append([]byte(nil), pk.Payload...)
		// Inline handlers must not block the publisher's read loop.
		go r.handle(payload, func(b []byte) { _ = m.Publish(TopicProvisionResponse, b, 1) })
	})
	if err != nil {
		t.Fatal(err)
	}
}

func provisioningConfig(addr, dir string) Config {
	cfg := testConfig(addr)
	cfg.Security = Security{}
	cfg.Provisioning = &Provisioning{
		DeviceName: "Gateway A", Key: "pkey", Secret: "psecret",
		CredentialsFile: filepath.Join(dir, CredentialsFileName),
		Timeout:         5 * time.Second,
	}
	return cfg
}

// usernames records the username of every client that subscribes, so a
// test sees which credentials the gateway's session used.
type usernames struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (u *usernames) acl(username, topic string, write bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[string]bool{}
	}
	u.seen[username] = true
	return true
}

func (u *usernames) has(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[name]
}

func TestProvisionAccessTokenThenConnectAndRestart(t *testing.T) {
	var seen usernames
	// The platform hands out its own token: only it (and the provisioning
	// user) may connect, so connecting proves the gateway uses the answer.
	m := testpeer.StartMochi(t, testpeer.AllowTokens(ProvisionUsername, "platform-token"), testpeer.WithACL(seen.acl))
	r := &responder{answer: func(provisionRequest) any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "platform-token"}
	}}
	r.onMochi(t, m)
	dir := t.TempDir()
	cfg := provisioningConfig(m.Addr(), dir)

	h := startClient(t, cfg)
	h.waitUp(10 * time.Second)
	if !seen.has("platform-token") {
		t.Fatalf("session did not use the provisioned token; usernames %v", seen.seen)
	}
	if m.AuthRejections() != 0 {
		t.Fatalf("%d connects rejected", m.AuthRejections())
	}
	req := r.last()
	if req.Key != "pkey" || req.Secret != "psecret" || req.DeviceName != "Gateway A" ||
		req.CredentialsType != ProvisionAccessToken || len(req.Token) < 16 || !req.Gateway {
		t.Fatalf("request %+v", req)
	}
	file := filepath.Join(dir, CredentialsFileName)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(file)
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil || stored["credentialsValue"] != "platform-token" || stored["status"] != "SUCCESS" {
		t.Fatalf("stored %s (%v)", raw, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the credentials file", len(entries))
	}
	if strings.Contains(h.log.String(), "platform-token") {
		t.Fatalf("token logged:\n%s", h.log)
	}

	// A restart uses the file and asks nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := startClient(t, cfg)
	h2.waitUp(10 * time.Second)
	if n := r.count(); n != 1 {
		t.Fatalf("%d provisioning requests after a restart, want 1", n)
	}
	if !strings.Contains(h2.log.String(), "using the provisioned credentials") {
		t.Fatalf("restart log:\n%s", h2.log)
	}
}

func TestProvisionMQTTBasic(t *testing.T) {
	m := testpeer.StartMochi(t, testpeer.AllowTokens(ProvisionUsername), testpeer.AllowUser("gw-user", "gw-pass"))
	r := &responder{answer: func(req provisionRequest) any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "MQTT_BASIC",
			"credentialsValue": map[string]string{"clientId": req.ClientID, "userName": req.Username, "password": req.Password}}
	}}
	r.onMochi(t, m)
	cfg := provisioningConfig(m.Addr(), t.TempDir())
	cfg.Provisioning.Type = ProvisionMQTTBasic
	cfg.Provisioning.ClientID, cfg.Provisioning.Username, cfg.Provisioning.Password = "gw-client", "gw-user", "gw-pass"

	h := startClient(t, cfg)
	h.waitUp(10 * time.Second)
	if _, ok := m.Server.Clients.Get("gw-client"); !ok {
		t.Fatal("the session does not use the provisioned client id")
	}
	if req := r.last(); req.CredentialsType != ProvisionMQTTBasic || req.Username != "gw-user" || req.Password != "gw-pass" || req.ClientID != "gw-client" {
		t.Fatalf("request %+v", req)
	}
	if strings.Contains(h.log.String(), "gw-pass") {
		t.Fatalf("password logged:\n%s", h.log)
	}
}

// TestProvisionRefused runs against mosquitto, as the platform would be
// reached: the refusal is one log line with the platform's message per
// attempt, retried with backoff, and nothing is stored.
func TestProvisionRefused(t *testing.T) {
	mq := testpeer.StartMosquitto(t)
	r := &responder{answer: func(provisionRequest) any {
		return map[string]any{"status": "FAILURE", "errorMsg": "Failed to provision device!"}
	}}
	platformSide(t, mq.Addr(), r)
	dir := t.TempDir()
	h := startClient(t, provisioningConfig(mq.Addr(), dir))
	testpeer.Eventually(t, 10*time.Second, "a provisioning retry", func() error {
		if r.count() < 2 {
			return errors.New("no retry yet")
		}
		if strings.Count(h.log.String(), "Failed to provision device!") < 2 {
			return errors.New("refusals not logged yet")
		}
		return nil
	})
	for _, line := range strings.Split(strings.TrimSpace(h.log.String()), "\n") {
		if strings.Contains(line, "Failed to provision device!") &&
			(!strings.Contains(line, `"level":"error"`) || !strings.Contains(line, "refused")) {
			t.Fatalf("refusal line %s", line)
		}
	}
	if h.c.Connected() {
		t.Fatal("connected without credentials")
	}
	if _, err := os.Stat(filepath.Join(dir, CredentialsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials file after a refusal: %v", err)
	}
	if !strings.Contains(h.c.Stats().LastError, "Failed to provision device!") {
		t.Fatalf("last error %q", h.c.Stats().LastError)
	}
}

// platformSide connects the responder to a broker as an ordinary client
// that answers on the response topic, as the platform would.
func platformSide(t *testing.T, addr string, r *responder) {
	t.Helper()
	var sub atomic.Pointer[testpeer.Subscriber]
	s := testpeer.SubscribeWith(t, addr, testpeer.SubscriberOptions{OnMessage: func(msg testpeer.Msg) {
		if msg.Topic != TopicProvisionRequest {
			return
		}
		go r.handle(msg.Payload, func(b []byte) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if s := sub.Load(); s != nil {
				_ = s.Publish(ctx, TopicProvisionResponse, b, 1)
			}
		})
	}}, TopicProvisionRequest)
	sub.Store(s)
}

// TestProvisionOverMosquitto is the success path through a real broker.
func TestProvisionOverMosquitto(t *testing.T) {
	mq := testpeer.StartMosquitto(t)
	r := &responder{answer: func(req provisionRequest) any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": req.Token}
	}}
	platformSide(t, mq.Addr(), r)
	dir := t.TempDir()
	cfg := provisioningConfig(mq.Addr(), dir)
	cfg.Provisioning.AccessToken = "my-token"
	h := startClient(t, cfg)
	h.waitUp(10 * time.Second)
	c, ok, err := LoadCredentials(filepath.Join(dir, CredentialsFileName))
	if err != nil || !ok || c.Security.AccessToken != "my-token" {
		t.Fatalf("stored %+v %v %v", c, ok, err)
	}
}

func TestProvisionX509GeneratesIdentity(t *testing.T) {
	m := testpeer.StartMochi(t)
	r := &responder{answer: func(req provisionRequest) any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "X509_CERTIFICATE", "credentialsValue": req.Hash}
	}}
	r.onMochi(t, m)
	dir := t.TempDir()
	cfg := provisioningConfig(m.Addr(), dir)
	p := *cfg.Provisioning
	p.Type = ProvisionX509
	resp, err := Provision(context.Background(), ProvisionTarget{Host: cfg.Host, Port: cfg.Port}, p)
	if err != nil {
		t.Fatal(err)
	}
	if req := r.last(); req.CredentialsType != ProvisionX509 || !strings.HasPrefix(req.Hash, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("request %+v", req)
	}
	if err := SaveCredentials(p.CredentialsFile, resp); err != nil {
		t.Fatal(err)
	}
	c, ok, err := LoadCredentials(p.CredentialsFile)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if c.Security.Type != SecurityX509Certificate || c.Security.Cert != filepath.Join(dir, "cert.pem") || c.Security.PrivateKey != filepath.Join(dir, "key.pem") {
		t.Fatalf("security %+v", c.Security)
	}
	if _, err := tls.LoadX509KeyPair(c.Security.Cert, c.Security.PrivateKey); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(c.Security.PrivateKey); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
}

func TestProvisionTimeout(t *testing.T) {
	m := testpeer.StartMochi(t) // nobody answers
	cfg := provisioningConfig(m.Addr(), t.TempDir())
	p := *cfg.Provisioning
	p.Timeout = 300 * time.Millisecond
	_, err := Provision(context.Background(), ProvisionTarget{Host: cfg.Host, Port: cfg.Port}, p)
	if !errors.Is(err, ErrProvisionTimeout) {
		t.Fatalf("err %v", err)
	}
}

func TestLoadCredentialsUpstreamFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, CredentialsFileName)
	for _, tc := range []struct {
		name, content string
		want          Credentials
		err           string
	}{
		{"token", `{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":"abc"}`,
			Credentials{Security: Security{Type: SecurityAccessToken, AccessToken: "abc"}}, ""},
		{"basic", `{"credentialsValue":{"clientId":"c","userName":"u","password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}`,
			Credentials{Security: Security{Type: SecurityUsernamePassword, Username: "u", Password: "p"}, ClientID: "c"}, ""},
		{"x509", `{"status":"SUCCESS","credentialsType":"X509_CERTIFICATE","credentialsValue":"x","caCert":"ca.pem"}`,
			Credentials{Security: Security{Type: SecurityX509Certificate, CACert: "ca.pem", Cert: filepath.Join(dir, "cert.pem"), PrivateKey: filepath.Join(dir, "key.pem")}}, ""},
		{"not json", `{"status":`, Credentials{}, "not JSON"},
		{"empty token", `{"credentialsType":"ACCESS_TOKEN","credentialsValue":""}`, Credentials{}, "non-empty string"},
		{"unknown type", `{"credentialsType":"LWM2M","credentialsValue":""}`, Credentials{}, `unknown credentialsType "LWM2M"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			c, ok, err := LoadCredentials(file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), file) {
					t.Fatalf("err %v, want %q naming the file", err, tc.err)
				}
				return
			}
			if err != nil || !ok || c != tc.want {
				t.Fatalf("got %+v %v %v, want %+v", c, ok, err, tc.want)
			}
		})
	}
	if _, ok, err := LoadCredentials(filepath.Join(dir, "absent")); ok || err != nil {
		t.Fatalf("absent file: %v %v", ok, err)
	}
}

func TestProvisioningValidate(t *testing.T) {
	cfg := testConfig("127.0.0.1:1883")
	cfg.Security = Security{}
	cfg.Provisioning = &Provisioning{Type: "PSK", CredentialsFile: "x"}
	err := cfg.Validate()
	for _, want := range []string{"provisionDeviceKey is required", "provisionDeviceSecret is required", `unknown type "PSK"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	cfg.Provisioning = &Provisioning{Key: "k", Secret: "s", CredentialsFile: "x"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzProvisionResponse(f *testing.F) {
	f.Add([]byte(`{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":"abc"}`))
	f.Add([]byte(`{"status":"SUCCESS","credentialsType":"MQTT_BASIC","credentialsValue":{"clientId":"c","userName":"u","password":"p"}}`))
	f.Add([]byte(`{"status":"FAILURE","errorMsg":"no"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r ProvisionResponse
		if json.Unmarshal(b, &r) != nil {
			return
		}
		c, err := r.credentials("/d")
		if err == nil && c.Security.effectiveType() == "" {
			t.Fatalf("accepted %s without credentials", b)
		}
	})
}

// TestProvisionAnswerThenClose: the platform answers and drops the
// connection at once; the answer still counts.
func TestProvisionAnswerThenClose(t *testing.T) {
	m := testpeer.StartMochi(t)
	err := m.Server.Subscribe(TopicProvisionRequest, 1, func(cl *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		go func() {
			b, _ := json.Marshal(map[string]any{"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "t1"})
			_ = m.Publish(TopicProvisionResponse, b, 1)
			cl.Stop(errors.New("provisioning done"))
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := provisioningConfig(m.Addr(), t.TempDir())
	resp, err := Provision(context.Background(), ProvisionTarget{Host: cfg.Host, Port: cfg.Port}, *cfg.Provisioning)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.CredentialsValue) != `"t1"` {
		t.Fatalf("response %+v", resp)
	}
}

// TestProvisionRequestRefusedByBroker: a negative PUBACK is an error at
// once, not a wait for the timeout.
func TestProvisionRequestRefusedByBroker(t *testing.T) {
	m := testpeer.StartMochi(t, testpeer.WithACL(func(_, topic string, write bool) bool {
		return !(write && topic == TopicProvisionRequest)
	}))
	cfg := provisioningConfig(m.Addr(), t.TempDir())
	p := *cfg.Provisioning
	p.Timeout = time.Minute
	_, err := Provision(context.Background(), ProvisionTarget{Host: cfg.Host, Port: cfg.Port}, p)
	if err == nil || errors.Is(err, ErrProvisionTimeout) || !strings.Contains(err.Error(), "provisioning request") {
		t.Fatalf("err %v", err)
	}
}

func TestProvisioningStringMasksSecrets(t *testing.T) {
	p := Provisioning{Key: "the-key", Secret: "the-secret", AccessToken: "the-token", Password: "the-pass", Username: "u"}
	for _, s := range []string{p.String(), fmt.Sprintf("%v", p), fmt.Sprintf("%+v", &p), fmt.Sprintf("%#v", p)} {
		for _, secret := range []string{"the-key", "the-secret", "the-token", "the-pass"} {
			if strings.Contains(s, secret) {
				t.Fatalf("%q shows %s", s, secret)
			}
		}
	}
}

// TestProvisionX509ThenConnectsWithTheCertificate: over TLS, the gateway
// registers a generated certificate and its session then presents exactly
// that certificate.
func TestProvisionX509ThenConnectsWithTheCertificate(t *testing.T) {
	tf := testpeer.GenerateTLS(t)
	pair, err := tls.LoadX509KeyPair(tf.ServerCert, tf.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	// The platform asks for a client certificate but, like the provisioning
	// endpoint, does not require one.
	m := testpeer.StartMochi(t, testpeer.MochiTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}))
	srv := m.Server
	r := &responder{answer: func(req provisionRequest) any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "X509_CERTIFICATE", "credentialsValue": req.Hash}
	}}
	err = srv.Subscribe(TopicProvisionRequest, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		payload := append([]byte(nil), pk.Payload...)
		go r.handle(payload, func(b []byte) { _ = srv.Publish(TopicProvisionResponse, b, false, 1) })
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := provisioningConfig(m.Addr(), dir)
	cfg.Provisioning.Type = ProvisionX509
	cfg.Provisioning.CACert = tf.CACert
	h := startClient(t, cfg)
	h.waitUp(10 * time.Second)

	block, _ := pem.Decode([]byte(r.last().Hash))
	if block == nil {
		t.Fatalf("hash %q is not PEM", r.last().Hash)
	}
	found := false
	for _, cl := range srv.Clients.GetAll() {
		if tc, ok := cl.Net.Conn.(*tls.Conn); ok && !cl.Closed() {
			for _, c := range tc.ConnectionState().PeerCertificates {
				found = found || bytes.Equal(c.Raw, block.Bytes)
			}
		}
	}
	if !found {
		t.Fatal("no session presents the registered certificate")
	}
	c, ok, err := LoadCredentials(filepath.Join(dir, CredentialsFileName))
	if err != nil || !ok || c.Security.CACert != tf.CACert || c.Security.Type != SecurityX509Certificate {
		t.Fatalf("stored %+v %v %v", c, ok, err)
	}
}
